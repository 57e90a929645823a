//! Behavioural tests of the workload generator (each runs well under a second in debug).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tracelake_gen::{ASYNC_ATTRIBUTE, DEFAULT_START_UNIX_NANOS, GenConfig, GenError, Generator, Regression};

/// A span with the resource attributes it was filed under.
struct Flat {
    service: String,
    version: String,
    host: String,
    scope: String,
    span: Span,
}

fn cfg(seed: u64, spans: u64) -> GenConfig {
    GenConfig { seed, spans, ..GenConfig::default() }
}

fn requests(config: GenConfig) -> Vec<ExportTraceServiceRequest> {
    Generator::new(config).expect("valid config").collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn str_attr(attrs: &[KeyValue], key: &str) -> String {
    match attr(attrs, key) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn flatten(reqs: Vec<ExportTraceServiceRequest>) -> Vec<Flat> {
    let mut out = Vec::new();
    for req in reqs {
        for rs in req.resource_spans {
            let res = rs.resource.expect("resource").attributes;
            for ss in rs.scope_spans {
                let scope = ss.scope.expect("scope").name;
                for span in ss.spans {
                    out.push(Flat {
                        service: str_attr(&res, "service.name"),
                        version: str_attr(&res, "service.version"),
                        host: str_attr(&res, "host.name"),
                        scope: scope.clone(),
                        span,
                    });
                }
            }
        }
    }
    out
}

fn span_count(reqs: &[ExportTraceServiceRequest]) -> u64 {
    reqs.iter().flat_map(|r| &r.resource_spans).flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len() as u64).sum()
}

fn by_span_id(flat: &[Flat]) -> HashMap<(Vec<u8>, Vec<u8>), usize> {
    flat.iter().enumerate().map(|(i, f)| ((f.span.trace_id.clone(), f.span.span_id.clone()), i)).collect()
}

fn parent_of(flat: &[Flat], index: &HashMap<(Vec<u8>, Vec<u8>), usize>, i: usize) -> Option<usize> {
    let s = &flat[i].span;
    if s.parent_span_id.is_empty() {
        return None;
    }
    index.get(&(s.trace_id.clone(), s.parent_span_id.clone())).copied()
}

fn duration(s: &Span) -> u64 {
    s.end_time_unix_nano - s.start_time_unix_nano
}

#[test]
fn deterministic_per_seed() {
    let a = requests(cfg(42, 3_000));
    let b = requests(cfg(42, 3_000));
    assert_eq!(a, b);
    let bytes = |r: &[ExportTraceServiceRequest]| r.iter().map(|r| r.encode_to_vec()).collect::<Vec<_>>();
    assert_eq!(bytes(&a), bytes(&b), "byte-identical protobuf");
    let c = requests(cfg(43, 3_000));
    assert_ne!(a, c);
    // Same seed, another size: same topology.
    let g1 = Generator::new(cfg(42, 10)).expect("config");
    let g2 = Generator::new(cfg(42, 10_000_000)).expect("config");
    assert_eq!(g1.topology(), g2.topology());
}

#[test]
fn exact_span_count() {
    for n in [0, 1, 7, 1_000, 12_345] {
        let reqs = requests(cfg(n + 3, n));
        assert_eq!(span_count(&reqs), n, "n = {n}");
        assert!(reqs.iter().all(|r| !r.resource_spans.is_empty()), "no empty requests");
    }
    // Orphan-heavy traces and small requests still add up.
    let reqs = requests(GenConfig { orphan_rate: 0.5, traces_per_request: 3, ..cfg(5, 4_321) });
    assert_eq!(span_count(&reqs), 4_321);
    let flat = flatten(reqs.clone());
    let per_req: Vec<usize> = reqs
        .iter()
        .map(|r| {
            let ids: BTreeSet<&Vec<u8>> = r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| &s.trace_id)
                .collect();
            ids.len()
        })
        .collect();
    assert!(per_req.iter().all(|&n| n <= 3), "{per_req:?}");
    assert!(flat.len() == 4_321);
}

#[test]
fn every_span_is_valid_and_no_orphans() {
    let config = GenConfig { orphan_rate: 0.0, ..cfg(7, 20_000) };
    let window_end = DEFAULT_START_UNIX_NANOS + 24 * 3_600 * 1_000_000_000;
    let flat = flatten(requests(config));
    assert_eq!(flat.len(), 20_000);
    let index = by_span_id(&flat);
    assert_eq!(index.len(), flat.len(), "span ids are unique");
    let mut roots: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut versions: HashMap<(Vec<u8>, String), String> = HashMap::new();
    for (i, f) in flat.iter().enumerate() {
        let s = &f.span;
        assert_eq!(s.trace_id.len(), 16);
        assert!(s.trace_id.iter().any(|&b| b != 0));
        assert_eq!(s.span_id.len(), 8);
        assert!(s.span_id.iter().any(|&b| b != 0));
        assert!(s.parent_span_id.is_empty() || s.parent_span_id.len() == 8);
        assert!(s.start_time_unix_nano > 0 && s.end_time_unix_nano >= s.start_time_unix_nano);
        assert!(s.start_time_unix_nano >= DEFAULT_START_UNIX_NANOS);
        assert!(s.start_time_unix_nano < window_end + 5_000_000_000, "starts at most a few s after the window");
        assert!(!s.name.is_empty() && s.kind != SpanKind::Unspecified as i32);
        if s.parent_span_id.is_empty() {
            *roots.entry(s.trace_id.clone()).or_default() += 1;
        } else {
            let p = parent_of(&flat, &index, i).expect("parent present in the same trace");
            assert_eq!(flat[p].span.trace_id, s.trace_id);
        }
        // One version per service per trace.
        let v = versions.entry((s.trace_id.clone(), f.service.clone())).or_insert_with(|| f.version.clone());
        assert_eq!(*v, f.version);
    }
    let traces: BTreeSet<&Vec<u8>> = flat.iter().map(|f| &f.span.trace_id).collect();
    assert_eq!(roots.len(), traces.len(), "every trace has a root");
    assert!(roots.values().all(|&n| n == 1), "exactly one root per trace");
}

#[test]
fn partial_traces_have_orphans() {
    let flat = flatten(requests(GenConfig { orphan_rate: 0.3, ..cfg(9, 10_000) }));
    let index = by_span_id(&flat);
    let orphans =
        (0..flat.len()).filter(|&i| !flat[i].span.parent_span_id.is_empty() && parent_of(&flat, &index, i).is_none());
    assert!(orphans.count() > 10);
    let roots = flat.iter().filter(|f| f.span.parent_span_id.is_empty()).count();
    let traces: BTreeSet<&Vec<u8>> = flat.iter().map(|f| &f.span.trace_id).collect();
    assert_eq!(roots, traces.len(), "the root is never dropped");
}

#[test]
fn children_inside_parents() {
    let flat = flatten(requests(cfg(11, 30_000)));
    let index = by_span_id(&flat);
    let (mut checked, mut async_spans) = (0, 0);
    for i in 0..flat.len() {
        let Some(p) = parent_of(&flat, &index, i) else { continue };
        let (c, p) = (&flat[i].span, &flat[p].span);
        assert!(p.start_time_unix_nano <= c.start_time_unix_nano, "{} starts before its parent {}", c.name, p.name);
        if matches!(attr(&c.attributes, ASYNC_ATTRIBUTE), Some(Value::BoolValue(true))) {
            assert_eq!(c.kind, SpanKind::Consumer as i32);
            async_spans += 1;
            continue;
        }
        assert!(c.end_time_unix_nano <= p.end_time_unix_nano, "{} ends after its parent {}", c.name, p.name);
        checked += 1;
    }
    assert!(checked > 20_000);
    assert!(async_spans < 30, "async consumers are rare: {async_spans}");
}

#[test]
fn trace_starts_are_ordered_and_spread() {
    let reqs = requests(GenConfig { traces_per_request: 8, ..cfg(13, 20_000) });
    let mut prev_max = 0;
    let mut hours = [0u32; 24];
    for req in &reqs {
        let roots: Vec<u64> = req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .filter(|s| s.parent_span_id.is_empty())
            .map(|s| s.start_time_unix_nano)
            .collect();
        let min = roots.iter().copied().min().expect("a root per request");
        assert!(min >= prev_max, "trace starts are non-decreasing across requests");
        prev_max = roots.iter().copied().max().unwrap_or(min);
        for r in roots {
            hours[((r - DEFAULT_START_UNIX_NANOS) / 3_600_000_000_000) as usize] += 1;
        }
    }
    let total: u32 = hours.iter().sum();
    for h in hours {
        assert!(f64::from(h) > f64::from(total) / 24.0 * 0.6, "{hours:?}");
    }
}

#[test]
fn cross_service_calls_and_semantics() {
    let flat = flatten(requests(cfg(17, 20_000)));
    let index = by_span_id(&flat);
    let mut cross = 0;
    let mut messaging = 0;
    let mut kinds: BTreeSet<&'static str> = BTreeSet::new();
    for i in 0..flat.len() {
        let f = &flat[i];
        let s = &f.span;
        if let Some(p) = parent_of(&flat, &index, i) {
            if s.kind == SpanKind::Server as i32 && flat[p].span.kind == SpanKind::Client as i32 {
                assert_ne!(flat[p].service, f.service, "SERVER under a CLIENT of another service");
                assert_eq!(flat[p].span.name, s.name);
                cross += 1;
            }
            if s.kind == SpanKind::Consumer as i32 {
                assert_eq!(flat[p].span.kind, SpanKind::Producer as i32);
                assert_eq!(s.links.len(), 1);
                assert_eq!(s.links[0].span_id, flat[p].span.span_id);
                messaging += 1;
            }
        }
        for kv in &s.attributes {
            kinds.insert(match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(_)) => "string",
                Some(Value::BoolValue(_)) => "bool",
                Some(Value::IntValue(_)) => "int",
                Some(Value::DoubleValue(_)) => "double",
                Some(Value::ArrayValue(_)) => "array",
                Some(Value::KvlistValue(_)) => "kvlist",
                Some(Value::BytesValue(_)) => "bytes",
                _ => "other",
            });
        }
        if s.kind == SpanKind::Server as i32 && f.scope == "io.opentelemetry.http" {
            assert!(attr(&s.attributes, "http.route").is_some());
            assert!(matches!(attr(&s.attributes, "http.response.status_code"), Some(Value::IntValue(_))));
        }
        if f.scope == "io.opentelemetry.grpc" {
            assert_eq!(str_attr(&s.attributes, "rpc.system"), "grpc");
        }
        if s.kind == SpanKind::Client as i32 && attr(&s.attributes, "db.system").is_some() {
            assert!(
                attr(&s.attributes, "db.query.text").is_some() && attr(&s.attributes, "db.operation.name").is_some()
            );
        }
        assert!(f.host.starts_with(&f.service));
    }
    assert!(cross > 1_000, "{cross}");
    assert!(messaging > 0);
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["array", "bool", "bytes", "double", "int", "kvlist", "string"]);
    let systems: BTreeSet<String> = flat
        .iter()
        .filter_map(|f| match attr(&f.span.attributes, "db.system") {
            Some(Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(systems.len() >= 3, "{systems:?}");
}

#[test]
fn error_rate_near_config() {
    for rate in [0.01, 0.05] {
        let flat = flatten(requests(GenConfig { error_rate: rate, ..cfg(19, 20_000) }));
        let errors: Vec<&Span> =
            flat.iter().map(|f| &f.span).filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2)).collect();
        let observed = errors.len() as f64 / flat.len() as f64;
        assert!(observed > rate / 3.0 && observed < rate * 3.0, "rate {rate}: observed {observed}");
        for s in errors {
            assert!(s.events.iter().any(|e| e.name == "exception"
                && attr(&e.attributes, "exception.type").is_some()
                && attr(&e.attributes, "exception.message").is_some()));
            if let Some(Value::IntValue(code)) = attr(&s.attributes, "http.response.status_code") {
                assert!(*code >= 500, "{code}");
            }
        }
    }
    let none = flatten(requests(GenConfig { error_rate: 0.0, ..cfg(19, 5_000) }));
    assert!(none.iter().all(|f| f.span.status.is_none()));
}

#[test]
fn regression_only_slows_the_target() {
    let base = GenConfig { orphan_rate: 0.0, ..cfg(23, 18_000) };
    let slow = GenConfig { regressions: vec!["checkout@v2*1.3".parse().expect("regression")], ..base.clone() };
    let a = flatten(requests(base));
    let b = flatten(requests(slow));
    assert_eq!(a.len(), b.len());
    let ids = |f: &[Flat]| f.iter().map(|f| (f.span.trace_id.clone(), f.span.span_id.clone())).collect::<BTreeSet<_>>();
    assert_eq!(ids(&a), ids(&b), "same trace and span ids");
    let a_index = by_span_id(&a);
    let b_index = by_span_id(&b);

    // Spans that are affected or ancestors of affected spans (in run b).
    let mut touched: BTreeSet<usize> = BTreeSet::new();
    for i in 0..b.len() {
        if b[i].service == "checkout" && b[i].version == "v2" {
            let mut j = Some(i);
            while let Some(k) = j {
                touched.insert(k);
                j = parent_of(&b, &b_index, k);
            }
        }
    }
    let (mut base_d, mut slow_d) = (Vec::new(), Vec::new());
    let mut unchanged = 0;
    for (i, fb) in b.iter().enumerate() {
        let fa = &a[a_index[&(fb.span.trace_id.clone(), fb.span.span_id.clone())]];
        assert_eq!((&fa.span.name, &fa.service, &fa.version), (&fb.span.name, &fb.service, &fb.version));
        assert_eq!(fa.span.attributes, fb.span.attributes);
        if fb.service == "checkout" && fb.version == "v2" && fb.span.kind == SpanKind::Server as i32 {
            base_d.push(duration(&fa.span));
            slow_d.push(duration(&fb.span));
        } else if !touched.contains(&i) {
            assert_eq!(duration(&fa.span), duration(&fb.span), "{} of {} changed", fb.span.name, fb.service);
            unchanged += 1;
        }
    }
    assert!(base_d.len() > 50, "checkout v2 server spans: {}", base_d.len());
    base_d.sort_unstable();
    slow_d.sort_unstable();
    let ratio = slow_d[slow_d.len() / 2] as f64 / base_d[base_d.len() / 2] as f64;
    assert!((1.2..=1.4).contains(&ratio), "median ratio {ratio}");
    assert!(unchanged > b.len() / 2);
    // A service never upstream of checkout (recommendation) keeps every duration.
    for (fa, fb) in a.iter().zip(&b) {
        assert_eq!(fa.span.span_id, fb.span.span_id, "same output order");
        if fa.service == "recommendation" {
            assert_eq!(duration(&fa.span), duration(&fb.span));
        }
    }
}

#[test]
fn operation_regression_and_speedup() {
    let base = cfg(31, 8_000);
    let a = flatten(requests(base.clone()));
    for (spec, factor) in [("checkout/POST /api/checkout@v1*2", 2.0), ("checkout@v1*0.5", 0.5)] {
        let b = flatten(requests(GenConfig { regressions: vec![spec.parse().expect("regression")], ..base.clone() }));
        let b_index = by_span_id(&b);
        let mut hits = 0;
        for (i, (fa, fb)) in a.iter().zip(&b).enumerate() {
            assert_eq!(fa.span.span_id, fb.span.span_id);
            let matches = fb.service == "checkout"
                && fb.version == "v1"
                && (factor < 1.0 || fb.span.name == "POST /api/checkout");
            if matches && factor > 1.0 {
                hits += 1;
                let expected = (duration(&fa.span) as f64 * factor).round() as u64;
                assert_eq!(duration(&fb.span), expected);
            }
            if fb.service == "checkout" && fb.version == "v1" && factor < 1.0 {
                hits += 1;
                assert!(duration(&fb.span) <= duration(&fa.span));
            }
            // Children stay inside their parents whatever the factor.
            if let Some(p) = parent_of(&b, &b_index, i) {
                assert!(b[p].span.start_time_unix_nano <= fb.span.start_time_unix_nano);
                if attr(&fb.span.attributes, ASYNC_ATTRIBUTE).is_none() {
                    assert!(fb.span.end_time_unix_nano <= b[p].span.end_time_unix_nano);
                }
            }
        }
        assert!(hits >= 3, "{spec}: {hits}");
    }
}

#[test]
fn tiny_and_extreme_configs() {
    let configs = [
        GenConfig { services: 1, operations: 1, ..cfg(1, 50) },
        GenConfig { services: 3, operations: 3, versions: vec!["1.0.0".into()], hours: 1, ..cfg(2, 500) },
        GenConfig { max_fanout: 0, ..cfg(3, 100) },
        GenConfig { max_depth: 1, ..cfg(4, 100) },
        GenConfig { max_depth: 2, max_fanout: 1, traces_per_request: 1, ..cfg(5, 300) },
        GenConfig { error_rate: 1.0, orphan_rate: 1.0, ..cfg(6, 2_000) },
        GenConfig { services: 30, operations: 200, max_depth: 30, max_fanout: 16, ..cfg(7, 5_000) },
    ];
    for c in configs {
        let shallow = c.max_depth <= 1 || c.max_fanout == 0 || c.services == 1 && c.operations == 1;
        let n = c.spans;
        let reqs = requests(c.clone());
        assert_eq!(span_count(&reqs), n, "{c:?}");
        let flat = flatten(reqs);
        if shallow {
            assert!(flat.iter().all(|f| f.span.parent_span_id.is_empty()), "{c:?}");
        }
        for f in &flat {
            assert!(f.span.end_time_unix_nano >= f.span.start_time_unix_nano && f.span.start_time_unix_nano > 0);
        }
    }
}

#[test]
fn regression_targets_are_checked() {
    let bad = |r: &str| Generator::new(GenConfig { regressions: vec![r.parse().expect("syntax")], ..cfg(1, 10) }).err();
    assert!(matches!(bad("nosuch@v2*1.3"), Some(GenError::UnknownRegressionService { .. })));
    assert!(matches!(bad("checkout/GET /nope@v2*1.3"), Some(GenError::UnknownRegressionOperation { .. })));
    assert!(matches!(bad("checkout@v9*1.3"), Some(GenError::UnknownRegressionVersion { .. })));
    assert!(bad("checkout/POST /api/checkout@v2*1.3").is_none());
    let r: Result<Regression, _> = "checkout@v2".parse();
    assert!(r.is_err());
}

#[test]
fn topology_shape() {
    let g = Generator::new(GenConfig { services: 30, operations: 200, ..cfg(29, 0) }).expect("config");
    let topo = g.topology();
    assert_eq!(topo.services.len(), 30);
    assert_eq!(topo.services.iter().map(|s| s.operations.len()).sum::<usize>(), 200);
    let names: Vec<&str> = topo.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(&names[..4], ["frontend", "api-gateway", "checkout", "cart"]);
    assert!(names.contains(&"service-29"));
    for (i, s) in topo.services.iter().enumerate() {
        let mut ops: Vec<&str> = s.operations.iter().map(|o| o.name.as_str()).collect();
        ops.sort_unstable();
        ops.dedup();
        assert_eq!(ops.len(), s.operations.len(), "unique operation names in {}", s.name);
        for op in &s.operations {
            assert!(op.depth.is_none_or(|d| d <= 6));
            assert!(op.calls.len() <= 4);
            for c in &op.calls {
                // Calls go to later services (a DAG), or to the service's own database calls
                // and in-process steps.
                assert!(c.service > i || (c.service == i && !s.operations[c.operation].kind.is_server()), "DAG");
            }
        }
    }
    // Spans of a generated stream stay within the depth bound (a remote call is two spans).
    let flat = flatten(requests(GenConfig { services: 30, operations: 200, ..cfg(29, 10_000) }));
    let index = by_span_id(&flat);
    let services: BTreeSet<&str> = flat.iter().map(|f| f.service.as_str()).collect();
    assert!(services.len() >= 25, "{}", services.len());
    for i in 0..flat.len() {
        let mut depth = 0;
        let mut j = Some(i);
        while let Some(k) = j {
            depth += 1;
            j = parent_of(&flat, &index, k);
        }
        assert!(depth <= 12, "{depth}");
    }
}

#[test]
fn converts_to_arrow_without_rejections() {
    use tracelake_schema::{AcceptMode, convert_request};
    let mut rows = 0;
    for req in requests(cfg(37, 5_000)) {
        let conversion = convert_request(&req, AcceptMode::AllOrNothing).expect("every generated span is valid");
        assert!(conversion.rejected.is_empty());
        rows += conversion.batch.num_rows();
    }
    assert_eq!(rows, 5_000);
}
