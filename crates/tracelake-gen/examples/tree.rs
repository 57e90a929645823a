//! Prints the first traces of a workload as waterfalls (development aid).
use tracelake_gen::{GenConfig, Generator};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let traces: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let cfg = GenConfig { seed, spans: 2_000, ..GenConfig::default() };
    let req = Generator::new(cfg).expect("config").next().expect("a request");
    let mut spans = Vec::new();
    for rs in &req.resource_spans {
        let attrs = &rs.resource.as_ref().expect("resource").attributes;
        let get = |k: &str| {
            attrs
                .iter()
                .find(|a| a.key == k)
                .map(|a| format!("{:?}", a.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default()
        };
        let svc = format!("{}@{}", get("service.name"), get("service.version"));
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                spans.push((svc.replace("Some(StringValue(\"", "").replace("\"))", ""), s.clone()));
            }
        }
    }
    let mut ids: Vec<Vec<u8>> = Vec::new();
    for (_, s) in &spans {
        if s.parent_span_id.is_empty() && !ids.contains(&s.trace_id) {
            ids.push(s.trace_id.clone());
        }
    }
    ids.sort_by_key(|id| {
        spans
            .iter()
            .find(|(_, s)| &s.trace_id == id && s.parent_span_id.is_empty())
            .map(|(_, s)| s.start_time_unix_nano)
    });
    for id in ids.iter().take(traces) {
        let root = spans.iter().find(|(_, s)| &s.trace_id == id && s.parent_span_id.is_empty()).expect("root");
        println!("trace {}", hex::encode(id));
        print(&spans, &root.1.span_id, id, root.1.start_time_unix_nano, 0);
    }
}

fn print(
    spans: &[(String, opentelemetry_proto::tonic::trace::v1::Span)],
    id: &[u8],
    trace: &[u8],
    t0: u64,
    depth: usize,
) {
    let mut children: Vec<&(String, opentelemetry_proto::tonic::trace::v1::Span)> = Vec::new();
    for e in spans {
        let s = &e.1;
        if s.trace_id == trace && s.span_id == id {
            let kind = ["?", "INT", "SRV", "CLI", "PRO", "CON"][s.kind as usize];
            let err = if s.status.as_ref().is_some_and(|st| st.code == 2) { " ERROR" } else { "" };
            let attrs: Vec<String> = s
                .attributes
                .iter()
                .map(|a| {
                    format!(
                        "{}={:?}",
                        a.key,
                        a.value.as_ref().and_then(|v| v.value.as_ref()).map(|v| format!("{v:?}")).unwrap_or_default()
                    )
                })
                .collect();
            println!(
                "{:>8.2} {:>8.2} {}{} {} [{}]{} {}",
                (s.start_time_unix_nano - t0) as f64 / 1e6,
                (s.end_time_unix_nano - s.start_time_unix_nano) as f64 / 1e6,
                "  ".repeat(depth),
                kind,
                s.name,
                e.0,
                err,
                if depth < 99 { attrs.join(" ").chars().take(160).collect::<String>() } else { String::new() }
            );
        }
        if s.trace_id == trace && s.parent_span_id == id {
            children.push(e);
        }
    }
    children.sort_by_key(|e| e.1.start_time_unix_nano);
    for c in children {
        print(spans, &c.1.span_id, trace, t0, depth + 1);
    }
}
