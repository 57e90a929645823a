//! tracelake on Apache DataFusion Ballista: the same SQL, functions and `spans` table, run by a
//! Ballista scheduler and its executors.
//!
//! - [`codec`]: how the `spans` table travels from the client to the scheduler (its data
//!   location; the scheduler rebuilds the table and plans the scan). The Parquet scan it plans
//!   is a stock `DataSourceExec`, which Ballista ships to executors as is.
//! - [`cluster`]: a scheduler and executors that know tracelake's functions.
//! - [`client`]: a session whose queries run on a remote scheduler (`df://host:port`).
//!
//! Views (`traces`, `service_edges`) are expanded on the client, so only functions and the
//! table need to be known remotely.

pub mod client;
pub mod cluster;
pub mod codec;
