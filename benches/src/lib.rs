//! Benchmarks of tracelake's hot paths live in `benches/` of this crate (criterion) and in
//! `../foundation.py` (end to end, against DuckDB). Results go to `BENCHMARKS.md`.
