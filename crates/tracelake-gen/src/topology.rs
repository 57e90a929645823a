//! The seeded service topology: services (layered into a DAG), their operations with latency
//! and error parameters, and every operation's downstream call list.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::blueprint::{blueprints, operations};
use crate::catalog::{self, DbSystem, Lang};
use crate::config::GenConfig;

/// The services of a generated workload. Calls only go from a service to services later in
/// `services`, so the service graph is a DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// All services, in call order (entry points first).
    pub services: Vec<ServiceSpec>,
    /// Operations at which traces start, with their relative traffic weights.
    pub entry_points: Vec<EntryPoint>,
}

/// An operation at which traces start.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPoint {
    /// Index into [`Topology::services`].
    pub service: usize,
    /// Index into [`ServiceSpec::operations`].
    pub operation: usize,
    /// Relative traffic weight.
    pub weight: f64,
}

/// One service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// `service.name`.
    pub name: String,
    /// `telemetry.sdk.language`.
    pub language: String,
    /// `host.name` values of its instances.
    pub hosts: Vec<String>,
    /// Indices of the services it calls (all greater than its own index).
    pub downstream: Vec<usize>,
    /// Its operations: server operations (HTTP, gRPC, queue consumers) first, then in-process
    /// steps, then database calls.
    pub operations: Vec<OperationSpec>,
    pub(crate) lang: Lang,
}

/// One (service, operation) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationSpec {
    /// Span name of the operation (SERVER / CONSUMER / INTERNAL / database CLIENT span).
    pub name: String,
    /// What kind of operation it is.
    pub kind: OperationKind,
    /// Median of the log-normal self time, in milliseconds.
    pub median_ms: f64,
    /// Sigma of the log-normal self time.
    pub sigma: f64,
    /// Probability that one execution fails on its own.
    pub error_rate: f64,
    /// Downstream calls, in execution order.
    pub calls: Vec<Call>,
    /// Deepest call depth at which the operation can run (root = 1); `None` if unreachable.
    pub depth: Option<usize>,
    /// Which optional, non-string attribute its spans carry (round-robin over all kinds).
    pub(crate) extra: u8,
}

/// What an operation is.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationKind {
    /// An HTTP server route (SERVER span; callers emit an HTTP CLIENT span of the same name).
    HttpServer {
        /// `http.request.method`.
        method: String,
        /// `http.route`.
        route: String,
    },
    /// A gRPC method (SERVER span; callers emit a gRPC CLIENT span of the same name).
    GrpcServer {
        /// `rpc.service`.
        service: String,
        /// `rpc.method`.
        method: String,
    },
    /// A queue consumer (CONSUMER span; callers emit a PRODUCER span `publish TOPIC`).
    Consumer {
        /// `messaging.destination.name`.
        topic: String,
    },
    /// A database call of the owning service (leaf CLIENT span).
    Database {
        /// `db.system`.
        system: DbSystem,
        /// `db.operation.name`.
        operation: String,
        /// `db.collection.name` (table, collection or key prefix).
        collection: String,
        /// `db.query.text`.
        query: String,
    },
    /// An in-process step (INTERNAL span).
    Internal,
}

impl OperationKind {
    /// Whether other services can call it (HTTP, gRPC or consumer).
    pub fn is_server(&self) -> bool {
        matches!(
            self,
            OperationKind::HttpServer { .. } | OperationKind::GrpcServer { .. } | OperationKind::Consumer { .. }
        )
    }
}

/// A downstream call of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Callee service index (the caller's own index for database calls and in-process steps).
    pub service: usize,
    /// Callee operation index.
    pub operation: usize,
    /// Probability that the call happens in one execution (1.0 = always).
    pub probability: f64,
    /// Runs concurrently with adjacent parallel calls.
    pub parallel: bool,
    /// The call repeats 1..=max_repeat times (uniformly).
    pub max_repeat: u32,
}

impl Topology {
    /// Expected number of spans of one trace (before orphan dropping and the final cut).
    pub fn mean_spans_per_trace(&self) -> f64 {
        let mut memo: Vec<Vec<Option<f64>>> = self.services.iter().map(|s| vec![None; s.operations.len()]).collect();
        let total_w: f64 = self.entry_points.iter().map(|e| e.weight).sum();
        if total_w <= 0.0 {
            return 1.0;
        }
        self.entry_points.iter().map(|e| e.weight * self.expected_spans(e.service, e.operation, &mut memo)).sum::<f64>()
            / total_w
    }

    fn expected_spans(&self, s: usize, o: usize, memo: &mut Vec<Vec<Option<f64>>>) -> f64 {
        if let Some(v) = memo[s][o] {
            return v;
        }
        let mut total = 1.0;
        for c in &self.services[s].operations[o].calls {
            let mean_repeat = (1.0 + f64::from(c.max_repeat)) / 2.0;
            let hop = if c.service != s { 1.0 } else { 0.0 };
            total += c.probability * mean_repeat * (hop + self.expected_spans(c.service, c.operation, memo));
        }
        memo[s][o] = Some(total);
        total
    }

    /// Every span name the service can emit: its own operations plus the CLIENT / PRODUCER
    /// spans of its remote calls. Sorted, without duplicates.
    pub fn span_names(&self, service: usize) -> Vec<String> {
        let Some(svc) = self.services.get(service) else { return Vec::new() };
        let mut names: Vec<String> = Vec::new();
        for op in &svc.operations {
            names.push(op.name.clone());
            for c in &op.calls {
                if c.service != service {
                    names.push(self.client_span_name(c.service, c.operation).to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Name of the caller-side span of a remote call: the callee's name, or `publish TOPIC`.
    pub(crate) fn client_span_name(&self, service: usize, operation: usize) -> String {
        let op = &self.services[service].operations[operation];
        match &op.kind {
            OperationKind::Consumer { topic } => format!("publish {topic}"),
            _ => op.name.clone(),
        }
    }
}

/// Draws a downstream call's probability / parallelism / repetition.
fn call(service: usize, operation: usize, db: bool, consumer: bool, rng: &mut ChaCha8Rng) -> Call {
    let probability = if rng.random_bool(if db { 0.75 } else { 0.65 }) { 1.0 } else { rng.random_range(0.3..0.95) };
    let parallel = !consumer && rng.random_bool(if db { 0.1 } else { 0.35 });
    let max_repeat = if consumer {
        1
    } else if db && rng.random_bool(0.2) {
        rng.random_range(2..=4)
    } else if !db && rng.random_bool(0.05) {
        2
    } else {
        1
    };
    Call { service, operation, probability, parallel, max_repeat }
}

/// Lowercase words of at least 4 letters of an operation name, without `api`, singularized.
fn tokens(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(|w| {
            let w = w.to_ascii_lowercase();
            match w.strip_suffix('s') {
                Some(stem) if stem.len() >= 4 => stem.to_string(),
                _ => w,
            }
        })
        .collect()
}

/// Picks `0..=3` with the given cumulative percentages.
fn pick_count(rng: &mut ChaCha8Rng, cumulative: [u32; 3]) -> usize {
    let r = rng.random_range(0..100u32);
    cumulative.iter().position(|&c| r < c).unwrap_or(cumulative.len())
}

impl Topology {
    /// Derives the topology from `config` (only `services`, `operations`, `max_depth`,
    /// `max_fanout` and `error_rate` matter) and the topology RNG.
    pub(crate) fn generate(config: &GenConfig, rng: &mut ChaCha8Rng) -> Topology {
        let n = config.services;
        let mut bps = blueprints(n, rng);

        // Operation counts: one each, the rest weighted by how much each service has to offer.
        let weights: Vec<f64> = bps
            .iter()
            .map(|b| (b.endpoints.len() + b.internals.len() + b.db.as_ref().map_or(0, |d| d.1.len() + 1)) as f64)
            .collect();
        let total_w: f64 = weights.iter().sum();
        let mut counts = vec![1usize; n];
        for _ in 0..config.operations - n {
            let mut r = rng.random::<f64>() * total_w;
            let mut pick = n - 1;
            for (i, w) in weights.iter().enumerate() {
                if r < *w {
                    pick = i;
                    break;
                }
                r -= w;
            }
            counts[pick] += 1;
        }

        let mut services: Vec<ServiceSpec> = Vec::with_capacity(n);
        let mut extra_base = 0;
        for (i, b) in bps.iter_mut().enumerate() {
            let host_n = if i == 0 { 4 } else { rng.random_range(2..=4usize) };
            let hosts = (0..host_n)
                .map(|_| {
                    let rs: String =
                        (0..5).map(|_| char::from(catalog::ALNUM[rng.random_range(0..catalog::ALNUM.len())])).collect();
                    format!("{}-{:09x}-{rs}", b.name, rng.random::<u64>() & 0xf_ffff_ffff)
                })
                .collect();
            let ops = operations(b, counts[i], extra_base, config.error_rate, rng);
            extra_base += ops.len();
            services.push(ServiceSpec {
                name: b.name.clone(),
                language: b.lang.as_str().to_string(),
                hosts,
                downstream: std::mem::take(&mut b.downstream),
                operations: ops,
                lang: b.lang,
            });
        }

        // Entry points: the frontend's routes (Zipf-like popularity), plus the gateway's.
        let mut entry_points = Vec::new();
        let entry_services = if n >= 4 { 2 } else { 1 };
        for (s, svc) in services.iter_mut().enumerate().take(entry_services) {
            let scale = if s == 0 { 1.0 } else { 0.3 };
            for (o, op) in svc.operations.iter_mut().enumerate() {
                if op.kind.is_server() {
                    op.depth = Some(1);
                    entry_points.push(EntryPoint { service: s, operation: o, weight: scale / (o as f64 + 1.0) });
                }
            }
        }

        let mut topo = Topology { services, entry_points };
        topo.wire_calls(config, rng);
        topo
    }

    /// Builds call lists in service order, so that every callee is still unbuilt when a call to
    /// it is added: depths are final before an operation's own calls are chosen, and no trace
    /// gets deeper than `max_depth`.
    fn wire_calls(&mut self, config: &GenConfig, rng: &mut ChaCha8Rng) {
        let (max_depth, fanout) = (config.max_depth, config.max_fanout);
        for s in 0..self.services.len() {
            for o in 0..self.services[s].operations.len() {
                if self.services[s].operations[o].depth.is_none() {
                    self.attach_orphan_operation(s, o, max_depth, fanout, rng);
                }
                let Some(depth) = self.services[s].operations[o].depth else { continue };
                if depth >= max_depth || fanout == 0 {
                    continue;
                }
                let calls = self.choose_calls(s, o, fanout, rng);
                for c in &calls {
                    let d = &mut self.services[c.service].operations[c.operation].depth;
                    *d = Some(d.map_or(depth + 1, |x| x.max(depth + 1)));
                }
                self.services[s].operations[o].calls = calls;
            }
        }
    }

    fn choose_calls(&self, s: usize, o: usize, fanout: usize, rng: &mut ChaCha8Rng) -> Vec<Call> {
        let svc = &self.services[s];
        let kind = &svc.operations[o].kind;
        let internal: Vec<usize> =
            (0..svc.operations.len()).filter(|&i| matches!(svc.operations[i].kind, OperationKind::Internal)).collect();
        let dbs: Vec<usize> = (0..svc.operations.len())
            .filter(|&i| matches!(svc.operations[i].kind, OperationKind::Database { .. }))
            .collect();
        let (mut n_remote, mut n_db, mut n_int) = match kind {
            OperationKind::Database { .. } => return Vec::new(),
            OperationKind::Internal => (0, pick_count(rng, [40, 85, 100]), 0),
            _ => {
                let remote = if svc.downstream.is_empty() {
                    0
                } else if s < 2 {
                    1 + pick_count(rng, [45, 80, 100])
                } else {
                    pick_count(rng, [30, 70, 90])
                };
                (remote, pick_count(rng, [30, 75, 100]), usize::from(rng.random_bool(0.3)))
            }
        };
        n_db = n_db.min(dbs.len());
        n_int = n_int.min(internal.len());
        n_remote = n_remote.min(fanout);
        n_db = n_db.min(fanout - n_remote);
        n_int = n_int.min(fanout - n_remote - n_db);

        let mut calls: Vec<Call> = Vec::with_capacity(n_remote + n_db + n_int);
        let mut attempts = 0;
        let caller_name = &svc.operations[o].name;
        let mut affine = false;
        while calls.len() < n_remote && attempts < 20 {
            attempts += 1;
            let mut t = svc.downstream[rng.random_range(0..svc.downstream.len())];
            let servers = |t: usize| -> Vec<usize> {
                (0..self.services[t].operations.len())
                    .filter(|&i| self.services[t].operations[i].kind.is_server())
                    .collect()
            };
            let mut op = {
                let ops = servers(t);
                ops[rng.random_range(0..ops.len())]
            };
            // The first call of a route usually goes where its name points: a gateway's
            // `POST /api/checkout` calls checkout's `POST /api/checkout`.
            let mut matched = false;
            if calls.is_empty() {
                let toks = tokens(caller_name);
                if let Some(&ts) =
                    svc.downstream.iter().find(|&&d| toks.iter().any(|k| self.services[d].name.starts_with(k.as_str())))
                {
                    t = ts;
                    op = servers(t)[0];
                    matched = true;
                }
                if let Some(&m) = servers(t).iter().find(|&&i| {
                    let other = tokens(&self.services[t].operations[i].name);
                    toks.iter().any(|k| other.contains(k))
                }) {
                    op = m;
                    matched = true;
                }
            }
            if calls.iter().any(|c| c.service == t && c.operation == op) {
                continue;
            }
            let consumer = matches!(self.services[t].operations[op].kind, OperationKind::Consumer { .. });
            let mut c = call(t, op, false, consumer, rng);
            if matched {
                // The forwarded request always happens, and happens first.
                c.probability = 1.0;
                c.max_repeat = 1;
                affine = true;
            }
            calls.push(c);
        }
        let mut pool = dbs;
        pool.shuffle(rng);
        for &d in pool.iter().take(n_db) {
            calls.push(call(s, d, true, false, rng));
        }
        // `affine` implies a first call exists.
        calls[usize::from(affine)..].shuffle(rng);
        if n_int > 0 {
            let i = internal[rng.random_range(0..internal.len())];
            // In-process steps run first (validation) or last (rendering).
            let c = Call { service: s, operation: i, probability: 1.0, parallel: false, max_repeat: 1 };
            if rng.random_bool(0.5) { calls.insert(0, c) } else { calls.push(c) }
        }
        calls
    }

    /// Gives an operation nobody calls a caller (one with room and depth to spare).
    fn attach_orphan_operation(&mut self, s: usize, o: usize, max_depth: usize, fanout: usize, rng: &mut ChaCha8Rng) {
        let kind = self.services[s].operations[o].kind.clone();
        let ok = |op: &OperationSpec| op.depth.is_some_and(|d| d < max_depth) && op.calls.len() < fanout;
        let mut candidates: Vec<(usize, usize)> = Vec::new();
        match kind {
            OperationKind::Internal | OperationKind::Database { .. } => {
                let is_db = matches!(kind, OperationKind::Database { .. });
                for (i, op) in self.services[s].operations.iter().enumerate() {
                    let can_call = op.kind.is_server() || (is_db && matches!(op.kind, OperationKind::Internal));
                    if i != o && can_call && ok(op) {
                        candidates.push((s, i));
                    }
                }
            }
            _ => {
                // Prefer services that already depend on this one.
                for prefer in [true, false] {
                    for (cs, svc) in self.services[..s].iter().enumerate() {
                        if prefer != svc.downstream.contains(&s) {
                            continue;
                        }
                        for (i, op) in svc.operations.iter().enumerate() {
                            if op.kind.is_server() && ok(op) {
                                candidates.push((cs, i));
                            }
                        }
                    }
                    if !candidates.is_empty() {
                        break;
                    }
                }
            }
        }
        if candidates.is_empty() {
            return;
        }
        let (cs, co) = candidates[rng.random_range(0..candidates.len())];
        let db = matches!(kind, OperationKind::Database { .. });
        let consumer = matches!(kind, OperationKind::Consumer { .. });
        let c = if matches!(kind, OperationKind::Internal) {
            Call { service: s, operation: o, probability: 1.0, parallel: false, max_repeat: 1 }
        } else {
            call(s, o, db, consumer, rng)
        };
        let caller_depth = self.services[cs].operations[co].depth.unwrap_or(1);
        self.services[cs].operations[co].calls.push(c);
        if cs != s && !self.services[cs].downstream.contains(&s) {
            self.services[cs].downstream.push(s);
        }
        self.services[s].operations[o].depth = Some(caller_depth + 1);
    }
}
