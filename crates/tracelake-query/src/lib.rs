//! Query session setup: the one place that turns a data location into a DataFusion
//! `SessionContext` with everything tracelake users can query.
//!
//! - [`session`]: [`SessionBuilder`] — configuration, the `spans` table, trace functions, views.
//! - [`views`]: SQL of the derived views `traces` and `service_edges`.
//! - [`safety`]: read-only SQL execution ([`QueryPolicy`]).
//! - [`output`]: result formats (table, CSV, JSON, typed JSON rows, Parquet, Arrow IPC).
//!
//! Every front end (CLI, Flight SQL, HTTP, Ballista) builds its sessions here, so they all see
//! the same tables and functions.
#![warn(missing_docs)]

pub mod error;
pub mod output;
pub mod safety;
pub mod session;
pub mod views;

pub use error::{Error, Result};
pub use safety::QueryPolicy;
pub use session::{SessionBuilder, SessionOptions, shared_metadata_cache};
