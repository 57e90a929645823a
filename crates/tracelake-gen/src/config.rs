//! Generator configuration ([`GenConfig`]), planted latency regressions ([`Regression`]) and
//! the crate's error type ([`GenError`]).

use std::fmt;
use std::str::FromStr;

/// 2026-11-01T00:00:00Z in nanoseconds since the Unix epoch (the default window start).
pub const DEFAULT_START_UNIX_NANOS: u64 = 1_793_491_200 * 1_000_000_000;

/// Nanoseconds per hour.
pub(crate) const NANOS_PER_HOUR: u64 = 3_600 * 1_000_000_000;

/// Everything that determines a generated workload. Two generators built from equal configs
/// produce byte-identical output.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Seed of every random choice (topology, traces, timing).
    pub seed: u64,
    /// Exact number of spans produced in total over all yielded requests.
    pub spans: u64,
    /// Number of services (default 12). The first ones get realistic names
    /// (`frontend`, `api-gateway`, `checkout`, …), later ones are called `service-N`.
    pub services: usize,
    /// Total number of distinct (service, operation) pairs of the topology (default 60);
    /// at least `services` (every service has at least one operation).
    pub operations: usize,
    /// Maximum call depth of a trace (default 6): the root operation is depth 1, every nested
    /// operation (a remote call, a database call or an in-process step) adds one.
    pub max_depth: usize,
    /// Maximum number of distinct downstream calls per operation (default 4).
    pub max_fanout: usize,
    /// Base probability that a span fails on its own (default 0.01); some operations are
    /// 3–5× worse, and errors propagate to callers.
    pub error_rate: f64,
    /// Start of the time window, nanoseconds since the Unix epoch (default 2026-11-01T00:00:00Z).
    pub start_unix_nanos: u64,
    /// Length of the time window in hours (default 24); trace start times are spread evenly
    /// over `[start, start + hours)`.
    pub hours: u32,
    /// Fraction of traces made partial (default 0.002): one non-root span with children is
    /// dropped, so its children become orphans.
    pub orphan_rate: f64,
    /// `service.version` values (default `["v1", "v2"]`); each trace picks one per service
    /// uniformly at random.
    pub versions: Vec<String>,
    /// Planted latency regressions (default none).
    pub regressions: Vec<Regression>,
    /// Traces per yielded `ExportTraceServiceRequest` (default 64).
    pub traces_per_request: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 0,
            spans: 10_000,
            services: 12,
            operations: 60,
            max_depth: 6,
            max_fanout: 4,
            error_rate: 0.01,
            start_unix_nanos: DEFAULT_START_UNIX_NANOS,
            hours: 24,
            orphan_rate: 0.002,
            versions: vec!["v1".to_string(), "v2".to_string()],
            regressions: Vec::new(),
            traces_per_request: 64,
        }
    }
}

impl GenConfig {
    /// Checks the configuration on its own (regression targets are checked against the
    /// topology by [`crate::Generator::new`]).
    pub fn validate(&self) -> Result<(), GenError> {
        if self.services == 0 {
            return Err(GenError::NoServices);
        }
        if self.services > u16::MAX as usize {
            return Err(GenError::TooManyServices(self.services));
        }
        if self.operations < self.services {
            return Err(GenError::TooFewOperations { operations: self.operations, services: self.services });
        }
        if self.operations > u16::MAX as usize {
            return Err(GenError::TooManyOperations(self.operations));
        }
        if self.max_depth == 0 {
            return Err(GenError::ZeroDepth);
        }
        if self.hours == 0 {
            return Err(GenError::ZeroHours);
        }
        check_rate("error_rate", self.error_rate)?;
        check_rate("orphan_rate", self.orphan_rate)?;
        if self.start_unix_nanos == 0 {
            return Err(GenError::ZeroStart);
        }
        // Leave an hour of headroom after the window for trace durations.
        let window = u64::from(self.hours).checked_mul(NANOS_PER_HOUR);
        if window
            .and_then(|w| w.checked_add(NANOS_PER_HOUR))
            .and_then(|w| w.checked_add(self.start_unix_nanos))
            .is_none()
        {
            return Err(GenError::WindowOverflow);
        }
        if self.versions.is_empty() {
            return Err(GenError::NoVersions);
        }
        if self.versions.len() > u8::MAX as usize {
            return Err(GenError::TooManyVersions(self.versions.len()));
        }
        for (i, v) in self.versions.iter().enumerate() {
            if v.is_empty() {
                return Err(GenError::EmptyVersion);
            }
            if self.versions[..i].contains(v) {
                return Err(GenError::DuplicateVersion(v.clone()));
            }
        }
        if self.traces_per_request == 0 {
            return Err(GenError::ZeroTracesPerRequest);
        }
        for r in &self.regressions {
            if !(r.latency_factor.is_finite() && r.latency_factor > 0.0) {
                return Err(GenError::InvalidRegression(format!(
                    "{r}: latency factor must be a positive finite number"
                )));
            }
            if !self.versions.contains(&r.version) {
                return Err(GenError::UnknownRegressionVersion {
                    regression: r.to_string(),
                    versions: self.versions.clone(),
                });
            }
        }
        Ok(())
    }
}

fn check_rate(name: &'static str, value: f64) -> Result<(), GenError> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(GenError::InvalidRate { name, value }) }
}

/// A planted latency regression: spans of `service` (optionally only those named `operation`)
/// in traces where that service runs `version` become `latency_factor` times slower.
///
/// The extra time is added as the span's own work at its end, so its descendants keep their
/// timing exactly; callers (and later sequential siblings) are pushed later. All random draws
/// are independent of regressions: a run with and without one differs only in timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    /// `service.name` of the affected spans.
    pub service: String,
    /// Span name of the affected spans; `None` means every span of the service.
    pub operation: Option<String>,
    /// `service.version` of the affected spans.
    pub version: String,
    /// Duration multiplier (e.g. `1.3` = 30 % slower); must be positive and finite.
    pub latency_factor: f64,
}

impl FromStr for Regression {
    type Err = GenError;

    /// Parses `SERVICE[/OPERATION]@VERSION*FACTOR`, e.g. `checkout@v2*1.3` or
    /// `checkout/POST /api/checkout@v2*1.3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            GenError::InvalidRegression(format!(
                "{s:?}: {why} (expected SERVICE[/OPERATION]@VERSION*FACTOR, e.g. checkout@v2*1.3)"
            ))
        };
        let (target, factor) = s.rsplit_once('*').ok_or_else(|| bad("missing '*FACTOR'"))?;
        let latency_factor: f64 =
            factor.trim().parse().map_err(|_| bad(&format!("factor {factor:?} is not a number")))?;
        if !(latency_factor.is_finite() && latency_factor > 0.0) {
            return Err(bad("factor must be a positive finite number"));
        }
        let (target, version) = target.rsplit_once('@').ok_or_else(|| bad("missing '@VERSION'"))?;
        let version = version.trim();
        if version.is_empty() {
            return Err(bad("empty version"));
        }
        let (service, operation) = match target.split_once('/') {
            Some((svc, op)) => {
                if op.trim().is_empty() {
                    return Err(bad("empty operation after '/'"));
                }
                (svc, Some(op.trim().to_string()))
            }
            None => (target, None),
        };
        let service = service.trim();
        if service.is_empty() {
            return Err(bad("empty service"));
        }
        Ok(Regression { service: service.to_string(), operation, version: version.to_string(), latency_factor })
    }
}

impl fmt::Display for Regression {
    /// Formats in the syntax accepted by [`FromStr`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.service)?;
        if let Some(op) = &self.operation {
            write!(f, "/{op}")?;
        }
        write!(f, "@{}*{}", self.version, self.latency_factor)
    }
}

/// Invalid generator configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenError {
    /// `services` is 0.
    #[error("invalid config: services must be at least 1")]
    NoServices,
    /// `services` is beyond what the generator supports.
    #[error("invalid config: at most 65535 services are supported, got {0}")]
    TooManyServices(usize),
    /// `operations < services`.
    #[error("invalid config: operations ({operations}) must be at least services ({services})")]
    TooFewOperations {
        /// Configured operation count.
        operations: usize,
        /// Configured service count.
        services: usize,
    },
    /// `operations` is beyond what the generator supports.
    #[error("invalid config: at most 65535 operations are supported, got {0}")]
    TooManyOperations(usize),
    /// `max_depth` is 0.
    #[error("invalid config: max_depth must be at least 1")]
    ZeroDepth,
    /// `hours` is 0.
    #[error("invalid config: hours must be at least 1")]
    ZeroHours,
    /// A probability outside `[0, 1]`.
    #[error("invalid config: {name} must be within [0, 1], got {value}")]
    InvalidRate {
        /// Field name.
        name: &'static str,
        /// Offending value.
        value: f64,
    },
    /// `start_unix_nanos` is 0 (spans must start after the epoch).
    #[error("invalid config: start_unix_nanos must be positive")]
    ZeroStart,
    /// The time window does not fit into u64 nanoseconds.
    #[error("invalid config: start_unix_nanos + hours overflows the u64 nanosecond range")]
    WindowOverflow,
    /// `versions` is empty.
    #[error("invalid config: at least one service version is required")]
    NoVersions,
    /// More than 255 versions.
    #[error("invalid config: at most 255 versions are supported, got {0}")]
    TooManyVersions(usize),
    /// An empty version string.
    #[error("invalid config: service versions must not be empty")]
    EmptyVersion,
    /// The same version listed twice.
    #[error("invalid config: version {0:?} is listed twice")]
    DuplicateVersion(String),
    /// `traces_per_request` is 0.
    #[error("invalid config: traces_per_request must be at least 1")]
    ZeroTracesPerRequest,
    /// A regression that does not parse or has an invalid factor.
    #[error("invalid regression {0}")]
    InvalidRegression(String),
    /// A regression names a version not in `versions`.
    #[error("invalid regression {regression}: version not among the configured versions {versions:?}")]
    UnknownRegressionVersion {
        /// The regression, formatted.
        regression: String,
        /// Configured versions.
        versions: Vec<String>,
    },
    /// A regression names a service that is not in the topology.
    #[error("invalid regression {regression}: no service of that name (services: {services})")]
    UnknownRegressionService {
        /// The regression, formatted.
        regression: String,
        /// The topology's service names, comma separated.
        services: String,
    },
    /// A regression names an operation the service never emits.
    #[error("invalid regression {regression}: the service emits no span of that name (span names: {names})")]
    UnknownRegressionOperation {
        /// The regression, formatted.
        regression: String,
        /// The service's span names, comma separated.
        names: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_regressions() {
        let r: Regression = "checkout@v2*1.3".parse().expect("parse");
        assert_eq!(r.service, "checkout");
        assert_eq!(r.operation, None);
        assert_eq!(r.version, "v2");
        assert_eq!(r.latency_factor, 1.3);
        let r: Regression = "checkout/POST /api/checkout@v2*1.5".parse().expect("parse");
        assert_eq!(r.operation.as_deref(), Some("POST /api/checkout"));
        assert_eq!(r.to_string(), "checkout/POST /api/checkout@v2*1.5");
        for bad in [
            "checkout",
            "checkout@v2",
            "checkout*1.3",
            "@v2*1.3",
            "checkout@*1.3",
            "checkout@v2*x",
            "checkout@v2*-1",
            "checkout@v2*0",
            "checkout/@v2*2",
            "checkout@v2*inf",
        ] {
            let err = bad.parse::<Regression>().expect_err(bad);
            assert!(err.to_string().contains("SERVICE[/OPERATION]@VERSION*FACTOR"), "{err}");
        }
    }

    #[test]
    fn validates() {
        assert_eq!(GenConfig::default().validate(), Ok(()));
        let bad = [
            GenConfig { services: 0, ..Default::default() },
            GenConfig { operations: 5, ..Default::default() },
            GenConfig { hours: 0, ..Default::default() },
            GenConfig { error_rate: 1.5, ..Default::default() },
            GenConfig { orphan_rate: -0.1, ..Default::default() },
            GenConfig { max_depth: 0, ..Default::default() },
            GenConfig { versions: vec![], ..Default::default() },
            GenConfig { traces_per_request: 0, ..Default::default() },
            GenConfig { start_unix_nanos: u64::MAX - 5, ..Default::default() },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
