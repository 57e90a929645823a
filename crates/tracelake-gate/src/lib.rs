//! `tracelake gate`'s statistics: does a candidate's latency distribution regress against a
//! baseline's, beyond user thresholds, by more than noise can explain?
//!
//! This crate knows nothing about SQL or storage: it takes two [`Sample`]s (durations, error
//! flags, time window) per compared scope and returns a [`GateReport`]. The CLI
//! (`tracelake gate`) fetches the samples and prints the report.
//!
//! Modules:
//! - [`stats`]: quantiles, the two-sample Kolmogorov–Smirnov and Mann–Whitney U tests, normal
//!   tail probabilities, Holm / Benjamini–Hochberg corrections.
//! - [`bootstrap`]: seeded bootstrap of quantile changes, drawn through order statistics so a
//!   1M-value sample costs microseconds per resample.
//! - [`threshold`]: the rules users write (`p99 +10%`, `p99 +5ms`, `error_rate +0.5pp`).
//! - [`config`]: the TOML gate file.
//! - [`compare`]: one scope's comparison: statistics, tests, each rule's change and p-value.
//! - [`gate`]: the verdicts, with the multiple-comparison correction over all scopes.
//! - [`report`]: terminal table, Markdown and JSON.
//! - [`plot`]: overlaid CDFs as PNG or SVG.
#![warn(missing_docs)]

pub mod bootstrap;
pub mod compare;
pub mod config;
pub mod gate;
pub mod plot;
pub mod report;
pub mod stats;
pub mod threshold;

pub use compare::{Comparison, GateSettings, RuleResult, Sample, ScopeKey, SideStats, Verdict};
pub use gate::{GateMode, GateReport, SkippedScope, run_gate};
pub use report::GateContext;
pub use config::{GateFile, GateFileError};
pub use threshold::{Metric, Threshold, ThresholdError};
