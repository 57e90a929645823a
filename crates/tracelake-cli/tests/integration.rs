//! End-to-end tests of the embedded engine, in one test binary (each test binary links all of
//! DataFusion, so there is only one).

mod integration {
    pub mod common;
    mod ingest_errors;
    mod pruning;
    mod reports;
    mod sqllogictests;
}
