//! The gate file: a TOML file committed next to a service that says what its gate compares
//! and how strict it is. Command-line flags override it. Example: `deploy/ci/gate.toml`.
//!
//! ```toml
//! unit = "spans"                    # or "traces"
//! service = "checkout"              # optional scope
//! # operation = "POST /api/checkout"
//! per_operation = false
//!
//! [baseline]
//! predicate = "resource_attributes['service.version'] = 'v1'"
//! # from = "2026-11-01T00:00:00Z"   to = "2026-11-02T00:00:00Z"
//! # data = "./baseline-data"        flight = "http://127.0.0.1:50051"
//!
//! [candidate]
//! predicate = "resource_attributes['service.version'] = 'v2'"
//!
//! [thresholds]
//! p50 = "+10%"
//! p99 = ["+10%", "+5ms"]            # several rules on one metric: each is checked
//! error_rate = "+0.5pp"
//!
//! [statistics]
//! confidence = 0.95
//! bootstrap_resamples = 2000
//! seed = 42
//! min_samples = 100
//! min_tail_samples = 10
//! correction = "holm"               # or "bh", "none"
//! strict = false                     # true: noisy changes beyond a rule are inconclusive
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::stats::Correction;
use crate::threshold::{Metric, Threshold, ThresholdError};

/// The parsed gate file (every key optional).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    /// `spans` or `traces`.
    pub unit: Option<String>,
    /// Restrict to one service.
    pub service: Option<String>,
    /// Restrict to one operation (span name).
    pub operation: Option<String>,
    /// Gate every (service, operation).
    pub per_operation: Option<bool>,
    /// The baseline selection.
    #[serde(default)]
    pub baseline: SideSection,
    /// The candidate selection.
    #[serde(default)]
    pub candidate: SideSection,
    /// Metric → rule(s): `"+10%"` or `["+10%", "+5ms"]`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, OneOrMany>,
    /// Statistics settings.
    #[serde(default)]
    pub statistics: StatisticsSection,
}

/// One side's selection.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SideSection {
    /// SQL predicate over the `spans` table.
    pub predicate: Option<String>,
    /// Window start (RFC 3339), inclusive.
    pub from: Option<String>,
    /// Window end (RFC 3339), exclusive.
    pub to: Option<String>,
    /// A different data location for this side.
    pub data: Option<String>,
    /// A Flight SQL server for this side.
    pub flight: Option<String>,
}

/// `[statistics]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatisticsSection {
    /// Confidence level in (0.5, 1).
    pub confidence: Option<f64>,
    /// Bootstrap resamples.
    pub bootstrap_resamples: Option<usize>,
    /// Bootstrap seed.
    pub seed: Option<u64>,
    /// Minimum spans (or traces) per side.
    pub min_samples: Option<usize>,
    /// Minimum values beyond a quantile per side.
    pub min_tail_samples: Option<usize>,
    /// `holm`, `bh` or `none`.
    pub correction: Option<String>,
    /// Noisy changes beyond a threshold are inconclusive instead of passing.
    pub strict: Option<bool>,
}

/// A threshold value: one rule or a list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `p99 = "+10%"`.
    One(String),
    /// `p99 = ["+10%", "+5ms"]`.
    Many(Vec<String>),
}

/// A gate file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GateFileError {
    /// Reading failed.
    #[error("gate file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML or unknown keys.
    #[error("gate file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        message: String,
    },
    /// A threshold rule is invalid.
    #[error("gate file {path}: {source}")]
    Threshold {
        /// The file.
        path: String,
        /// The rule error.
        source: ThresholdError,
    },
}

impl GateFile {
    /// Reads and parses a gate file.
    pub fn load(path: &Path) -> Result<Self, GateFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GateFileError::Read { path: shown.clone(), source })?;
        let file: GateFile = toml::from_str(&text).map_err(|e| GateFileError::Parse { path: shown.clone(), message: e.to_string() })?;
        file.thresholds().map_err(|source| GateFileError::Threshold { path: shown.clone(), source })?;
        if let Some(c) = &file.statistics.correction {
            c.parse::<Correction>().map_err(|message| GateFileError::Parse { path: shown, message })?;
        }
        Ok(file)
    }

    /// The `[thresholds]` rules, in metric order.
    pub fn thresholds(&self) -> Result<Vec<Threshold>, ThresholdError> {
        let mut rules = Vec::new();
        for (metric, changes) in &self.thresholds {
            let metric: Metric = metric.parse()?;
            let changes = match changes {
                OneOrMany::One(c) => std::slice::from_ref(c),
                OneOrMany::Many(cs) => cs.as_slice(),
            };
            for change in changes {
                rules.push(Threshold::parse_change(metric, change)?);
            }
        }
        rules.sort_by_key(|t| t.metric);
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start_matches(' ')))
            .collect();
        let file: GateFile = toml::from_str(&example).unwrap();
        assert_eq!(file.service.as_deref(), Some("checkout"));
        let rules = file.thresholds().unwrap();
        let text: Vec<String> = rules.iter().map(|t| t.to_string()).collect();
        assert_eq!(text, ["p50 +10%", "p99 +10%", "p99 +5ms", "error_rate +0.5pp"]);
        assert_eq!(file.statistics.correction.as_deref(), Some("holm"));
    }

    #[test]
    fn errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.toml");
        std::fs::write(&path, "[thresholds]\np98 = \"+10%\"\n").unwrap();
        assert!(GateFile::load(&path).unwrap_err().to_string().contains("unknown metric \"p98\""));
        std::fs::write(&path, "servise = \"x\"\n").unwrap();
        assert!(GateFile::load(&path).unwrap_err().to_string().contains("unknown field `servise`"));
        assert!(GateFile::load(&dir.path().join("missing.toml")).unwrap_err().to_string().contains("missing.toml"));
    }
}
