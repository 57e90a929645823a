//! The [`Generator`]: draws traces one after another, spreads them over the time window, and
//! groups their spans into `ExportTraceServiceRequest`s (ResourceSpans per (service, version,
//! host), one ScopeSpans per instrumentation scope).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalog::SCOPE_COUNT;
use crate::config::{GenConfig, GenError, NANOS_PER_HOUR};
use crate::span::SpanFactory;
use crate::topology::Topology;
use crate::trace::{Planner, TraceBuf};

/// Semantic-conventions schema the generated attributes follow.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.27.0";

/// Trace start times stay this far before the window end, so that (almost) every span starts
/// inside the window even when more traces than expected bunch up at its end.
const END_MARGIN_NANOS: u64 = 10 * 1_000_000_000;

/// A regression resolved against the topology.
struct Resolved {
    service: usize,
    version: u8,
    name: Option<String>,
    factor: f64,
}

/// Deterministic synthetic trace workload: an iterator of `ExportTraceServiceRequest`s that
/// together hold exactly `config.spans` spans.
pub struct Generator {
    config: GenConfig,
    topology: Topology,
    factory: SpanFactory,
    rng: ChaCha8Rng,
    regressions: Vec<Resolved>,
    /// Cumulative entry-point weights.
    entry_cum: Vec<f64>,
    mean_spans: f64,
    expected_traces: f64,
    window_nanos: u64,
    /// Offset of the previous trace's start from the window start.
    last_offset: f64,
    emitted: u64,
    trace_index: u64,
    buf: TraceBuf,
    max_hosts: usize,
    /// `[((service * versions + version) * max_hosts + host) * SCOPE_COUNT + scope]`.
    buckets: Vec<Vec<Span>>,
}

impl Generator {
    /// Validates `config`, derives the topology from its seed and resolves its regressions.
    pub fn new(config: GenConfig) -> Result<Self, GenError> {
        config.validate()?;
        let mut topo_rng = ChaCha8Rng::seed_from_u64(config.seed);
        let topology = Topology::generate(&config, &mut topo_rng);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(1);

        let mut regressions = Vec::new();
        for r in &config.regressions {
            let Some(service) = topology.services.iter().position(|s| s.name == r.service) else {
                let names: Vec<&str> = topology.services.iter().map(|s| s.name.as_str()).collect();
                return Err(GenError::UnknownRegressionService {
                    regression: r.to_string(),
                    services: names.join(", "),
                });
            };
            if let Some(op) = &r.operation {
                let names = topology.span_names(service);
                if !names.contains(op) {
                    return Err(GenError::UnknownRegressionOperation {
                        regression: r.to_string(),
                        names: names.join(", "),
                    });
                }
            }
            let version = config.versions.iter().position(|v| *v == r.version).ok_or_else(|| {
                GenError::UnknownRegressionVersion { regression: r.to_string(), versions: config.versions.clone() }
            })?;
            regressions.push(Resolved {
                service,
                version: version as u8,
                name: r.operation.clone(),
                factor: r.latency_factor,
            });
        }

        let mut acc = 0.0;
        let entry_cum = topology
            .entry_points
            .iter()
            .map(|e| {
                acc += e.weight;
                acc
            })
            .collect();
        let mean_spans =
            (topology.mean_spans_per_trace() - config.orphan_rate).clamp(1.0, crate::trace::MAX_TRACE_SPANS as f64);
        let expected_traces = (config.spans as f64 / mean_spans).max(1.0);
        let window_nanos = u64::from(config.hours) * NANOS_PER_HOUR;
        let factory = SpanFactory::new(&topology, &config.versions);
        let max_hosts = topology.services.iter().map(|s| s.hosts.len()).max().unwrap_or(1);
        let keys = topology.services.len() * config.versions.len() * max_hosts;
        Ok(Generator {
            last_offset: 0.0,
            window_nanos,
            expected_traces,
            mean_spans,
            entry_cum,
            regressions,
            factory,
            rng,
            emitted: 0,
            trace_index: 0,
            buf: TraceBuf::default(),
            max_hosts,
            buckets: (0..keys * SCOPE_COUNT).map(|_| Vec::new()).collect(),
            topology,
            config,
        })
    }

    /// The service topology traces are drawn from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The configuration this generator was built from.
    pub fn config(&self) -> &GenConfig {
        &self.config
    }

    /// Expected spans per trace (used to spread traces over the time window).
    pub fn mean_spans_per_trace(&self) -> f64 {
        self.mean_spans
    }

    /// Expected number of traces of the whole run.
    pub fn expected_traces(&self) -> f64 {
        self.expected_traces
    }

    /// Spans emitted so far.
    pub fn spans_emitted(&self) -> u64 {
        self.emitted
    }

    /// Traces started so far (the last one possibly cut).
    pub fn traces_emitted(&self) -> u64 {
        self.trace_index
    }

    /// Generates the next trace and files its spans (at most `remaining`) into the buckets.
    fn next_trace(&mut self, remaining: u64) -> u64 {
        // Spread the remaining traces evenly over the remaining window: the gap to the previous
        // trace is the remaining time over the expected remaining trace count, times a jitter
        // of mean 1. Re-estimating every time keeps the stream from bunching up at the end.
        let jitter: f64 = self.rng.random();
        let usable = self.window_nanos.saturating_sub(END_MARGIN_NANOS) as f64;
        let expected_left = remaining as f64 / self.mean_spans;
        let gap = (usable - self.last_offset).max(0.0) / (expected_left + 1.0) * 2.0 * jitter;
        self.last_offset = (self.last_offset + gap).min(usable);
        let start = self.config.start_unix_nanos + self.last_offset as u64;
        let total = self.entry_cum.last().copied().unwrap_or(0.0);
        let u = self.rng.random::<f64>() * total;
        let e = self.entry_cum.partition_point(|&c| c <= u).min(self.entry_cum.len().saturating_sub(1));
        let entry = &self.topology.entry_points[e];
        Planner {
            topo: &self.topology,
            rng: &mut self.rng,
            buf: &mut self.buf,
            max_depth: self.config.max_depth,
            versions: self.config.versions.len(),
        }
        .plan(entry.service, entry.operation, self.config.orphan_rate);
        self.trace_index += 1;

        // Regression factors, then timing.
        let versions = &self.buf.versions;
        for n in self.buf.nodes.iter_mut() {
            let mut f = 1.0;
            for r in &self.regressions {
                if r.service == n.service as usize
                    && r.version == versions[r.service]
                    && r.name.as_deref().is_none_or(|name| self.factory.name(n) == name)
                {
                    f *= r.factor;
                }
            }
            n.factor = f;
        }
        self.buf.layout(start);

        let keep = self.buf.prefix_for(remaining);
        let versions = self.config.versions.len();
        let mut count = 0;
        for i in 0..keep {
            let n = &self.buf.nodes[i];
            if n.dropped {
                continue;
            }
            let s = n.service as usize;
            let key = (s * versions + self.buf.versions[s] as usize) * self.max_hosts + self.buf.hosts[s] as usize;
            let (scope, span) = self.factory.build(&self.topology, &self.buf, i);
            self.buckets[key * SCOPE_COUNT + scope as usize].push(span);
            count += 1;
        }
        count
    }

    /// Moves the buffered spans into a request, in (service, version, host, scope) order.
    fn flush(&mut self) -> ExportTraceServiceRequest {
        let versions = self.config.versions.len();
        let mut resource_spans = Vec::new();
        for (key, group) in self.buckets.chunks_mut(SCOPE_COUNT).enumerate() {
            if group.iter().all(Vec::is_empty) {
                continue;
            }
            let host = key % self.max_hosts;
            let version = (key / self.max_hosts) % versions;
            let service = key / self.max_hosts / versions;
            let scope_spans = group
                .iter_mut()
                .enumerate()
                .filter(|(_, spans)| !spans.is_empty())
                .map(|(k, spans)| ScopeSpans {
                    scope: Some(self.factory.scopes[service][k].clone()),
                    spans: std::mem::take(spans),
                    schema_url: SCHEMA_URL.to_string(),
                })
                .collect();
            resource_spans.push(ResourceSpans {
                resource: Some(self.factory.resources[service][version][host].clone()),
                scope_spans,
                schema_url: SCHEMA_URL.to_string(),
            });
        }
        ExportTraceServiceRequest { resource_spans }
    }
}

impl Iterator for Generator {
    type Item = ExportTraceServiceRequest;

    /// The next request with up to `traces_per_request` traces; `None` once exactly
    /// `config.spans` spans were emitted.
    fn next(&mut self) -> Option<ExportTraceServiceRequest> {
        if self.emitted >= self.config.spans {
            return None;
        }
        for _ in 0..self.config.traces_per_request {
            let remaining = self.config.spans - self.emitted;
            if remaining == 0 {
                break;
            }
            self.emitted += self.next_trace(remaining);
        }
        Some(self.flush())
    }
}
