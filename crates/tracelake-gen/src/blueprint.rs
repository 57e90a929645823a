//! Service blueprints: names, protocols, routes, databases and known dependencies of each
//! service (from the catalog, or invented for `service-N`), and the operations built from them.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::catalog::{self, DbSystem, Lang, Protocol, TEMPLATES};
use crate::topology::{OperationKind, OperationSpec};

/// A service before its operations exist.
pub(crate) struct Blueprint {
    pub name: String,
    pub lang: Lang,
    pub protocol: Protocol,
    pub endpoints: Vec<String>,
    pub db: Option<(DbSystem, Vec<String>)>,
    pub topic: Option<String>,
    pub internals: Vec<String>,
    pub downstream: Vec<usize>,
}

/// The first `n` services: catalog templates first, then invented `service-N`s, with their
/// downstream services (always later ones).
pub(crate) fn blueprints(n: usize, rng: &mut ChaCha8Rng) -> Vec<Blueprint> {
    let mut out: Vec<Blueprint> = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(t) = TEMPLATES.get(i) {
            out.push(Blueprint {
                name: t.name.to_string(),
                lang: t.lang,
                protocol: t.protocol,
                endpoints: t.endpoints.iter().map(|s| s.to_string()).collect(),
                db: t.db.map(|(sys, tables)| (sys, tables.iter().map(|s| s.to_string()).collect())),
                topic: t.topic.map(str::to_string),
                internals: t.internals.iter().map(|s| s.to_string()).collect(),
                downstream: Vec::new(),
            });
        } else {
            let name = format!("service-{i}");
            let protocol = if rng.random_bool(0.5) { Protocol::Http } else { Protocol::Grpc };
            let db = match rng.random_range(0..5u32) {
                0 => None,
                1 => Some(DbSystem::Postgresql),
                2 => Some(DbSystem::Mysql),
                3 => Some(DbSystem::Redis),
                _ => Some(DbSystem::Mongodb),
            };
            let table = format!("service_{i}_records");
            out.push(Blueprint {
                lang: catalog::LANGS[rng.random_range(0..catalog::LANGS.len())],
                protocol,
                endpoints: match protocol {
                    Protocol::Http => vec![format!("GET /api/{name}/items"), format!("POST /api/{name}/items")],
                    Protocol::Grpc => vec!["GetItem".to_string(), "UpdateItem".to_string()],
                },
                db: db.map(|s| (s, vec![table])),
                topic: None,
                internals: vec!["process batch".to_string()],
                downstream: Vec::new(),
                name,
            });
        }
    }
    // Known dependencies, kept only when they point to a later service.
    for i in 0..n {
        let known: Vec<usize> = TEMPLATES
            .get(i)
            .map(|t| t.downstream)
            .unwrap_or(&[])
            .iter()
            .filter_map(|d| out.iter().position(|b| b.name == *d))
            .filter(|&j| j > i)
            .collect();
        out[i].downstream = known;
        if i >= TEMPLATES.len() && i + 1 < n {
            let k = rng.random_range(1..=3usize).min(n - 1 - i);
            while out[i].downstream.len() < k {
                let j = rng.random_range(i + 1..n);
                if !out[i].downstream.contains(&j) {
                    out[i].downstream.push(j);
                }
            }
        }
    }
    out
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
}

/// Builds the operations of one service: `count` of them, server ones first.
pub(crate) fn operations(
    b: &Blueprint,
    count: usize,
    first_extra: usize,
    error_rate: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<OperationSpec> {
    let db_n = if b.db.is_some() && count >= 2 { (count * 3 / 10).max(1) } else { 0 };
    let int_n = if count >= 4 { (count / 8).max(1) } else { 0 };
    let server_n = count - db_n - int_n;
    let mut ops: Vec<OperationSpec> = Vec::with_capacity(count);
    let push =
        |ops: &mut Vec<OperationSpec>, name: String, kind: OperationKind, lo: f64, hi: f64, rng: &mut ChaCha8Rng| {
            // Keep names unique within the service.
            let mut name = name;
            let mut k = 2;
            while ops.iter().any(|o| o.name == name) {
                name = format!("{name} ({k})");
                k += 1;
            }
            let median_ms = log_uniform(rng, lo, hi);
            let sigma = rng.random_range(0.5..1.0);
            let worse = rng.random_bool(0.1);
            let error_rate =
                (error_rate * if worse { rng.random_range(3.0..5.0) } else { rng.random_range(0.2..0.7) }).min(1.0);
            let extra = ((first_extra + ops.len()) % 8) as u8;
            ops.push(OperationSpec { name, kind, median_ms, sigma, error_rate, calls: Vec::new(), depth: None, extra });
        };
    let (grpc_pkg, grpc_service) = catalog::grpc_service_name(&b.name);
    let mut endpoint_i = 0;
    for k in 0..server_n {
        if k == 0
            && let Some(topic) = &b.topic
        {
            push(
                &mut ops,
                format!("process {topic}"),
                OperationKind::Consumer { topic: topic.clone() },
                5.0,
                50.0,
                rng,
            );
            continue;
        }
        let ep = b.endpoints.get(endpoint_i).cloned();
        endpoint_i += 1;
        match b.protocol {
            Protocol::Http => {
                let ep = ep.unwrap_or_else(|| format!("GET /api/{}/v{endpoint_i}/resources", b.name));
                let (method, route) = ep.split_once(' ').unwrap_or(("GET", ep.as_str()));
                let kind = OperationKind::HttpServer { method: method.to_string(), route: route.to_string() };
                push(&mut ops, ep.clone(), kind, 5.0, 80.0, rng);
            }
            Protocol::Grpc => {
                let method = ep.unwrap_or_else(|| format!("Method{endpoint_i}"));
                let name = format!("{grpc_pkg}.{method}");
                let kind = OperationKind::GrpcServer { service: grpc_service.clone(), method };
                push(&mut ops, name, kind, 2.0, 30.0, rng);
            }
        }
    }
    for k in 0..int_n {
        let name = b.internals.get(k).cloned().unwrap_or_else(|| format!("{} step {}", b.name, k + 1));
        push(&mut ops, name, OperationKind::Internal, 0.5, 10.0, rng);
    }
    if let Some((system, tables)) = &b.db {
        let verbs = system.verbs();
        for k in 0..db_n {
            let verb = verbs[(k / tables.len()) % verbs.len()];
            let round = k / (tables.len() * verbs.len());
            let table = if round == 0 {
                tables[k % tables.len()].clone()
            } else {
                format!("{}_{round}", tables[k % tables.len()])
            };
            let (name, query) = system.statement(verb, &table);
            let (lo, hi) = match system {
                DbSystem::Redis => (0.5, 1.5),
                DbSystem::Mongodb => (1.0, 8.0),
                _ => (0.8, 10.0),
            };
            let kind =
                OperationKind::Database { system: *system, operation: verb.to_string(), collection: table, query };
            push(&mut ops, name, kind, lo, hi, rng);
        }
    }
    ops
}
