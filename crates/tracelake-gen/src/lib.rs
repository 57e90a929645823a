//! Deterministic synthetic OpenTelemetry trace workloads for tracelake.
//!
//! This crate owns `tracelake gen`'s data model: a seeded service topology (a DAG of realistic
//! services with HTTP, gRPC, database and queue operations), the traces drawn from it
//! (CLIENT/SERVER pairs across services, log-normal latencies with slow tails, errors that
//! propagate, partial traces, planted latency regressions per service version), and their
//! grouping into OTLP `ExportTraceServiceRequest`s. Same [`GenConfig`] ⇒ byte-identical output.
//!
//! ```
//! use tracelake_gen::{GenConfig, Generator};
//! let config = GenConfig { seed: 7, spans: 1_000, ..GenConfig::default() };
//! let generator = Generator::new(config).expect("valid config");
//! let spans: usize = generator
//!     .flat_map(|req| req.resource_spans)
//!     .flat_map(|rs| rs.scope_spans)
//!     .map(|ss| ss.spans.len())
//!     .sum();
//! assert_eq!(spans, 1_000);
//! ```
//!
//! Modules:
//! - [`config`]: [`GenConfig`], [`Regression`] (`SERVICE[/OPERATION]@VERSION*FACTOR`), [`GenError`].
//! - [`topology`]: [`Topology`], services, operations and call lists derived from the seed
//!   (naming material in `catalog`, per-service blueprints in `blueprint`).
//! - `trace`: one trace — the random plan, then the timing pass that applies regressions.
//! - `span`: OTLP spans, attributes, events, links, resources and scopes.
//! - [`request`]: the [`Generator`] iterator and the grouping of spans into requests.
#![warn(missing_docs)]

mod blueprint;
mod catalog;
pub mod config;
pub mod request;
mod span;
pub mod topology;
mod trace;

pub use catalog::DbSystem;
pub use config::{DEFAULT_START_UNIX_NANOS, GenConfig, GenError, Regression};
pub use request::{Generator, SCHEMA_URL};
pub use span::ASYNC_ATTRIBUTE;
pub use topology::{Call, EntryPoint, OperationKind, OperationSpec, ServiceSpec, Topology};
