//! One trace: a plan of spans drawn from the RNG (structure, ids, self times, errors), then a
//! pure timing pass that lays the spans out in time and applies planted regressions.
//!
//! All random draws happen in the plan, none depend on regressions, so a run with a regression
//! differs from one without only in timestamps.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::topology::{OperationKind, Topology};

/// "No node" marker for the index links of [`Node`].
pub(crate) const NONE: u32 = u32::MAX;

const MS: f64 = 1_000_000.0;

/// Probability that an execution hits the slow tail (self time × 5–20).
const SLOW_TAIL_RATE: f64 = 0.01;
/// Probability that a queue consumer runs detached and may outlive its producer.
const ASYNC_CONSUMER_RATE: f64 = 0.005;
/// Upper bound of one execution's own work (a typical request timeout).
const MAX_SELF_TIME_NANOS: u64 = 8_000_000_000;
/// Once a trace has this many spans, no further calls fire (guards against configurations
/// with huge fan-out and depth).
pub(crate) const MAX_TRACE_SPANS: usize = 20_000;
/// Probability that a child's error fails its parent too.
const ERROR_PROPAGATION: f64 = 0.5;

/// The role of a span in the call model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An operation serving a remote call (HTTP / gRPC SERVER span).
    Server,
    /// The caller side of a remote call (CLIENT span).
    Client,
    /// A database call (CLIENT span).
    Db,
    /// An in-process step (INTERNAL span).
    Internal,
    /// Publishing a message (PRODUCER span).
    Producer,
    /// Processing a message (CONSUMER span).
    Consumer,
}

/// One planned span. Layout fields describe its position relative to its parent: the parent's
/// own work before its group (`gap`), its offset within a parallel group (`stagger`).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub parent: u32,
    pub first_child: u32,
    pub last_child: u32,
    pub next_sibling: u32,
    pub span_id: u64,
    /// Service emitting the span.
    pub service: u16,
    /// Service owning `op` (the callee for Client / Producer spans).
    pub op_service: u16,
    /// Operation the span is about (the callee's for Client / Producer spans).
    pub op: u16,
    pub role: Role,
    pub new_group: bool,
    /// Detached consumer: starts `gap` after the parent's start and may outlive it.
    pub is_async: bool,
    pub error: bool,
    pub dropped: bool,
    /// HTTP status code, or gRPC status code for gRPC spans.
    pub status: u16,
    pub gap: u64,
    pub stagger: u64,
    /// Own work after the last child group (the whole duration of a leaf).
    pub post: u64,
    /// Child whose error propagated to this span.
    pub error_from: u32,
    /// Random bits for attribute values.
    pub bits: u64,
    // Timing (filled by `TraceBuf::layout`).
    pub factor: f64,
    pub dur0: u64,
    pub dur1: u64,
    pub start: u64,
}

/// The spans of one trace in pre-order (parents before children) plus its per-service picks.
#[derive(Debug, Default)]
pub(crate) struct TraceBuf {
    pub trace_id: [u8; 16],
    /// Version index per service for this trace.
    pub versions: Vec<u8>,
    /// Host index per service for this trace.
    pub hosts: Vec<u8>,
    pub nodes: Vec<Node>,
    /// Fired calls waiting to be expanded (a stack shared by the recursion).
    scratch: Vec<(u32, u32)>,
}

/// Draws a non-zero u64.
pub(crate) fn nonzero_u64(rng: &mut ChaCha8Rng) -> u64 {
    loop {
        let v: u64 = rng.random();
        if v != 0 {
            return v;
        }
    }
}

fn ms(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> u64 {
    (rng.random_range(lo..hi) * MS) as u64
}

/// Planning state of one trace.
pub(crate) struct Planner<'a> {
    pub topo: &'a Topology,
    pub rng: &'a mut ChaCha8Rng,
    pub buf: &'a mut TraceBuf,
    pub max_depth: usize,
    /// Number of configured versions.
    pub versions: usize,
}

struct Layout {
    gap: u64,
    stagger: u64,
    new_group: bool,
    is_async: bool,
}

impl Planner<'_> {
    /// Plans a whole trace rooted at the entry operation; ids, versions and hosts are drawn here.
    pub fn plan(&mut self, entry_service: usize, entry_op: usize, orphan_rate: f64) {
        self.buf.nodes.clear();
        self.buf.scratch.clear();
        let mut id = [0u8; 16];
        while id == [0u8; 16] {
            self.rng.fill(&mut id);
        }
        self.buf.trace_id = id;
        self.buf.versions.clear();
        self.buf.hosts.clear();
        self.plan_picks();
        let root = Layout { gap: 0, stagger: 0, new_group: true, is_async: false };
        self.operation(entry_service, entry_op, NONE, 1, root);
        // Partial trace: drop one non-root span that has children.
        if self.rng.random::<f64>() < orphan_rate {
            let candidates = self.buf.nodes.iter().skip(1).filter(|n| n.first_child != NONE).count();
            if candidates > 0 {
                let pick = self.rng.random_range(0..candidates);
                if let Some(n) = self.buf.nodes.iter_mut().skip(1).filter(|n| n.first_child != NONE).nth(pick) {
                    n.dropped = true;
                }
            }
        }
    }

    fn plan_picks(&mut self) {
        // One u64 per service decides both its version and its host in this trace.
        for s in &self.topo.services {
            let x: u64 = self.rng.random();
            self.buf.hosts.push(((x >> 32) % s.hosts.len() as u64) as u8);
            self.buf.versions.push(((x & 0xffff_ffff) % self.versions as u64) as u8);
        }
    }

    fn push(&mut self, service: usize, op_service: usize, op: usize, role: Role, parent: u32, l: Layout) -> u32 {
        let idx = self.buf.nodes.len() as u32;
        let span_id = nonzero_u64(self.rng);
        let bits: u64 = self.rng.random();
        self.buf.nodes.push(Node {
            parent,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            span_id,
            service: service as u16,
            op_service: op_service as u16,
            op: op as u16,
            role,
            new_group: l.new_group,
            is_async: l.is_async,
            error: false,
            dropped: false,
            status: 0,
            gap: l.gap,
            stagger: l.stagger,
            post: 0,
            error_from: NONE,
            bits,
            factor: 1.0,
            dur0: 0,
            dur1: 0,
            start: 0,
        });
        if parent != NONE {
            let p = parent as usize;
            match self.buf.nodes[p].last_child {
                NONE => self.buf.nodes[p].first_child = idx,
                last => self.buf.nodes[last as usize].next_sibling = idx,
            }
            self.buf.nodes[p].last_child = idx;
        }
        idx
    }

    /// Plans one execution of operation `o` of service `s` (and everything it calls).
    fn operation(&mut self, s: usize, o: usize, parent: u32, depth: usize, l: Layout) -> u32 {
        let topo = self.topo;
        let op = &topo.services[s].operations[o];
        let role = match op.kind {
            OperationKind::HttpServer { .. } | OperationKind::GrpcServer { .. } => Role::Server,
            OperationKind::Consumer { .. } => Role::Consumer,
            OperationKind::Database { .. } => Role::Db,
            OperationKind::Internal => Role::Internal,
        };
        let idx = self.push(s, s, o, role, parent, l);
        let z: f64 = self.rng.sample(StandardNormal);
        let mut work = op.median_ms * MS * (op.sigma * z).exp();
        if self.rng.random::<f64>() < SLOW_TAIL_RATE {
            work *= self.rng.random_range(5.0..20.0);
        }
        // At least 1 µs; at most the 8 s a client would wait before timing out.
        let work = (work as u64).clamp(1_000, MAX_SELF_TIME_NANOS);
        let own_error = self.rng.random::<f64>() < op.error_rate;
        self.buf.nodes[idx as usize].error = own_error;

        // Which calls fire this time, and how often.
        let base = self.buf.scratch.len();
        if depth < self.max_depth && self.buf.nodes.len() < MAX_TRACE_SPANS {
            for (ci, c) in op.calls.iter().enumerate() {
                if c.probability >= 1.0 || self.rng.random::<f64>() < c.probability {
                    let reps = if c.max_repeat > 1 { self.rng.random_range(1..=c.max_repeat) } else { 1 };
                    self.buf.scratch.push((ci as u32, reps));
                }
            }
        }
        let fired = self.buf.scratch.len() - base;
        let mut groups = 0u64;
        let mut prev_parallel = false;
        for i in 0..fired {
            let (ci, reps) = self.buf.scratch[base + i];
            let parallel = op.calls[ci as usize].parallel;
            for _ in 0..reps {
                if !(parallel && prev_parallel) {
                    groups += 1;
                }
                prev_parallel = parallel;
            }
        }
        if groups == 0 {
            self.buf.nodes[idx as usize].post = work;
        } else {
            let pre = (work as f64 * self.rng.random_range(0.1..0.4)) as u64;
            // Own work after the first group: one equal share between groups and at the end.
            let share = (work - pre).checked_div(groups).unwrap_or(0);
            self.buf.nodes[idx as usize].post = share;
            let mut prev_parallel = false;
            let mut first = true;
            for i in 0..fired {
                let (ci, reps) = self.buf.scratch[base + i];
                let c = &op.calls[ci as usize];
                for _ in 0..reps {
                    let new_group = !(c.parallel && prev_parallel);
                    prev_parallel = c.parallel;
                    let (gap, stagger) = match (new_group, first) {
                        (true, true) => (pre, 0),
                        (true, false) => (share, 0),
                        (false, _) => (0, ms(self.rng, 0.01, 0.3)),
                    };
                    first = false;
                    let l = Layout { gap, stagger, new_group, is_async: false };
                    self.call(s, c.service, c.operation, idx, depth, l);
                }
            }
        }
        self.buf.scratch.truncate(base);

        // Errors of children fail this span with some probability.
        let mut child = self.buf.nodes[idx as usize].first_child;
        while child != NONE {
            let (err, next) = {
                let n = &self.buf.nodes[child as usize];
                (n.error && !n.is_async, n.next_sibling)
            };
            if err && !self.buf.nodes[idx as usize].error && self.rng.random::<f64>() < ERROR_PROPAGATION {
                self.buf.nodes[idx as usize].error = true;
                self.buf.nodes[idx as usize].error_from = child;
            }
            child = next;
        }
        let node = &mut self.buf.nodes[idx as usize];
        node.status = status_code(&op.kind, node.error, node.bits);
        idx
    }

    /// Plans a call from an execution of service `s` (node `parent`) to `(t, o)`.
    fn call(&mut self, s: usize, t: usize, o: usize, parent: u32, depth: usize, l: Layout) {
        let topo = self.topo;
        let kind = &topo.services[t].operations[o].kind;
        if t == s {
            self.operation(t, o, parent, depth + 1, l);
            return;
        }
        if let OperationKind::Consumer { .. } = kind {
            let p = self.push(s, t, o, Role::Producer, parent, l);
            let publish = ms(self.rng, 0.2, 1.5);
            let ack = ms(self.rng, 0.05, 0.5);
            let queue = ms(self.rng, 0.5, 20.0);
            let is_async = self.rng.random::<f64>() < ASYNC_CONSUMER_RATE;
            let cl = Layout { gap: publish + queue, stagger: 0, new_group: true, is_async };
            let c = self.operation(t, o, p, depth + 1, cl);
            let consumer_error = self.buf.nodes[c as usize].error;
            let n = &mut self.buf.nodes[p as usize];
            n.post = if is_async { publish + ack } else { ack };
            if consumer_error && !is_async {
                n.error = true;
                n.error_from = c;
            }
            return;
        }
        let cidx = self.push(s, t, o, Role::Client, parent, l);
        // Network overhead of 0.1–2 ms in total, skewed towards the low end.
        let u: f64 = self.rng.random();
        let net = (0.1 + 1.9 * u * u) * MS;
        let out_frac = self.rng.random_range(0.3..0.7);
        let net_out = (net * out_frac) as u64;
        let net_back = (net as u64).saturating_sub(net_out).max(1);
        let sl = Layout { gap: net_out, stagger: 0, new_group: true, is_async: false };
        let server = self.operation(t, o, cidx, depth + 1, sl);
        let (err, status) = {
            let sv = &self.buf.nodes[server as usize];
            (sv.error, sv.status)
        };
        let n = &mut self.buf.nodes[cidx as usize];
        n.post = net_back;
        n.error = err;
        n.status = status;
        if err {
            n.error_from = server;
        }
    }
}

/// HTTP status (HTTP servers) or gRPC status code (gRPC servers); 0 otherwise.
fn status_code(kind: &OperationKind, error: bool, bits: u64) -> u16 {
    let r = (bits >> 40) % 1000;
    match kind {
        OperationKind::HttpServer { method, route } => {
            if error {
                if r < 150 { 503 } else { 500 }
            } else if route.contains('{') && r < 20 {
                404
            } else if method != "GET" && r < 15 {
                400
            } else if method == "POST" && r < 300 {
                201
            } else {
                200
            }
        }
        OperationKind::GrpcServer { .. } => {
            if !error {
                0
            } else {
                [2, 4, 13, 14][(r % 4) as usize]
            }
        }
        _ => 0,
    }
}

impl TraceBuf {
    /// Lays the planned spans out in time from `start`; each node's `factor` must hold its
    /// regression factor (1.0 = unaffected).
    ///
    /// A span's duration is its own work (`gap`s and `post`) plus its child groups, each group
    /// as long as its longest member; a regressed span (factor f ≥ 1) becomes f times as long
    /// as it would be without any regression, the extra time appended at its end. With f < 1
    /// the span's own work shrinks by f instead.
    pub fn layout(&mut self, start: u64) {
        for i in (0..self.nodes.len()).rev() {
            let scale = self.nodes[i].factor.min(1.0);
            let (mut gs0, mut ge0, mut gs1, mut ge1) = (0u64, 0u64, 0u64, 0u64);
            let mut c = self.nodes[i].first_child;
            while c != NONE {
                let ch = &self.nodes[c as usize];
                if !ch.is_async {
                    if ch.new_group {
                        gs0 = ge0 + ch.gap;
                        ge0 = gs0;
                        gs1 = ge1 + scaled(ch.gap, scale);
                        ge1 = gs1;
                    }
                    ge0 = ge0.max(gs0 + ch.stagger + ch.dur0);
                    ge1 = ge1.max(gs1 + ch.stagger + ch.dur1);
                }
                c = ch.next_sibling;
            }
            let n = &mut self.nodes[i];
            n.dur0 = ge0 + n.post;
            n.dur1 = ge1 + scaled(n.post, scale);
            if n.factor != 1.0 {
                n.dur1 = n.dur1.max((n.dur0 as f64 * n.factor).round() as u64);
            }
        }
        if let Some(root) = self.nodes.first_mut() {
            root.start = start;
        }
        for i in 0..self.nodes.len() {
            let (pstart, scale) = (self.nodes[i].start, self.nodes[i].factor.min(1.0));
            let (mut gs, mut ge) = (pstart, pstart);
            let mut c = self.nodes[i].first_child;
            while c != NONE {
                let ch = &mut self.nodes[c as usize];
                if ch.is_async {
                    ch.start = pstart + scaled(ch.gap, scale);
                } else {
                    if ch.new_group {
                        gs = ge + scaled(ch.gap, scale);
                        ge = gs;
                    }
                    ch.start = gs + ch.stagger;
                    ge = ge.max(ch.start + ch.dur1);
                }
                c = ch.next_sibling;
            }
        }
    }

    /// Number of leading nodes (in pre-order) to keep so that exactly `want` non-dropped spans
    /// are emitted (all of them if the trace has fewer).
    pub fn prefix_for(&self, want: u64) -> usize {
        let mut kept = 0u64;
        for (i, n) in self.nodes.iter().enumerate() {
            if kept == want {
                return i;
            }
            if !n.dropped {
                kept += 1;
            }
        }
        self.nodes.len()
    }
}

fn scaled(v: u64, scale: f64) -> u64 {
    if scale == 1.0 { v } else { (v as f64 * scale).round() as u64 }
}
