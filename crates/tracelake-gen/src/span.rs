//! Turning planned spans into OTLP `Span`s: names, kinds, semantic-convention attributes,
//! exception events, links, plus the per-(service, version, host) resources and scopes.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use crate::catalog::{ERROR_MESSAGES, SCOPE_COUNT, SCOPES, ScopeKind};
use crate::topology::{OperationKind, Topology};
use crate::trace::{NONE, Node, Role, TraceBuf};

/// Attribute set on a span that may outlive its parent (a detached queue consumer): the only
/// spans allowed to end after their parent.
pub const ASYNC_ATTRIBUTE: &str = "tracelake.gen.async";

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

/// Everything about an operation's spans that does not change between executions.
struct OpStatic {
    name: String,
    client_name: String,
    own_kind: SpanKind,
    client_kind: SpanKind,
    own_scope: ScopeKind,
    client_scope: ScopeKind,
    own_attrs: Vec<KeyValue>,
    client_attrs: Vec<KeyValue>,
    /// HTTP route (for `url.path` / `url.full`), if an HTTP operation.
    route: Option<String>,
    /// Read operations report `db.response.returned_rows`.
    db_read: bool,
}

/// Precomputed resources, scopes and per-operation span templates.
pub(crate) struct SpanFactory {
    /// `[service][version][host]`.
    pub resources: Vec<Vec<Vec<Resource>>>,
    /// `[service][scope kind]`.
    pub scopes: Vec<Vec<InstrumentationScope>>,
    ops: Vec<Vec<OpStatic>>,
}

impl SpanFactory {
    pub fn new(topo: &Topology, versions: &[String]) -> SpanFactory {
        let mut resources = Vec::new();
        let mut scopes = Vec::new();
        let mut ops = Vec::new();
        for svc in &topo.services {
            let per_version = versions
                .iter()
                .map(|v| {
                    svc.hosts
                        .iter()
                        .map(|h| Resource {
                            attributes: vec![
                                s("service.name", svc.name.as_str()),
                                s("service.version", v.as_str()),
                                s("service.namespace", "shop"),
                                s("service.instance.id", h.as_str()),
                                s("deployment.environment", "production"),
                                s("host.name", h.as_str()),
                                s("telemetry.sdk.language", svc.lang.as_str()),
                                s("telemetry.sdk.name", "opentelemetry"),
                                s("telemetry.sdk.version", svc.lang.sdk_version()),
                            ],
                            ..Default::default()
                        })
                        .collect()
                })
                .collect();
            resources.push(per_version);
            scopes.push(
                (0..SCOPE_COUNT)
                    .map(|k| InstrumentationScope {
                        name: if k == ScopeKind::App as usize {
                            format!("shop.{}", svc.name)
                        } else {
                            SCOPES[k].0.to_string()
                        },
                        version: SCOPES[k].1.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            );
            ops.push(svc.operations.iter().map(|op| op_static(&svc.name, op)).collect());
        }
        SpanFactory { resources, scopes, ops }
    }

    /// Span name of a planned node.
    pub fn name(&self, n: &Node) -> &str {
        let st = &self.ops[n.op_service as usize][n.op as usize];
        match n.role {
            Role::Client | Role::Producer => &st.client_name,
            _ => &st.name,
        }
    }

    /// Builds the OTLP span of node `i`; returns it with its scope kind.
    pub fn build(&self, topo: &Topology, trace: &TraceBuf, i: usize) -> (ScopeKind, Span) {
        let n = &trace.nodes[i];
        let st = &self.ops[n.op_service as usize][n.op as usize];
        let own = !matches!(n.role, Role::Client | Role::Producer);
        let mut attrs = if own { st.own_attrs.clone() } else { st.client_attrs.clone() };
        let callee = &topo.services[n.op_service as usize];
        let op_kind = &callee.operations[n.op as usize].kind;
        let id = 1 + (n.bits >> 20) % 99_999;
        match op_kind {
            OperationKind::HttpServer { .. } => {
                let path = st.route.as_deref().unwrap_or("/").replace("{id}", &id.to_string());
                if own {
                    attrs.push(s("url.path", path));
                } else {
                    attrs.push(s("url.full", format!("http://{}:8080{path}", callee.name)));
                }
                attrs.push(int("http.response.status_code", i64::from(n.status)));
            }
            OperationKind::GrpcServer { .. } => attrs.push(int("rpc.grpc.status_code", i64::from(n.status))),
            OperationKind::Consumer { .. } => {
                // Producer and consumer share the message id (the producer's bits).
                let pbits = if own && n.parent != NONE { trace.nodes[n.parent as usize].bits } else { n.bits };
                attrs.push(s("messaging.message.id", format!("{:016x}", pbits)));
            }
            OperationKind::Database { .. } if st.db_read => {
                attrs.push(int("db.response.returned_rows", ((n.bits >> 8) % 50) as i64));
            }
            _ => {}
        }
        if own {
            push_extra(&mut attrs, topo.services[n.op_service as usize].operations[n.op as usize].extra, n.bits);
        }
        if n.is_async {
            attrs.push(kv(ASYNC_ATTRIBUTE, Value::BoolValue(true)));
        }
        let start = n.start;
        let end = n.start + n.dur1;
        let mut events = Vec::new();
        let mut status = None;
        if n.error {
            let lang = topo.services[n.service as usize].lang;
            let message = self.error_message(trace, i);
            let ty = lang.exceptions()[match (n.error_from, (n.bits >> 4) % 2) {
                (NONE, 0) => 0,
                (NONE, _) => 1,
                _ => 2,
            }];
            attrs.push(s("error.type", ty));
            events.push(Event {
                time_unix_nano: end - n.dur1 / 16,
                name: "exception".to_string(),
                attributes: vec![s("exception.type", ty), s("exception.message", message.as_str())],
                dropped_attributes_count: 0,
            });
            status = Some(Status { message, code: StatusCode::Error as i32 });
        }
        let mut links = Vec::new();
        if n.role == Role::Consumer && n.parent != NONE {
            links.push(Link {
                trace_id: trace.trace_id.to_vec(),
                span_id: trace.nodes[n.parent as usize].span_id.to_be_bytes().to_vec(),
                ..Default::default()
            });
        }
        let remote_parent = matches!(n.role, Role::Server | Role::Consumer) && n.parent != NONE;
        let span = Span {
            trace_id: trace.trace_id.to_vec(),
            span_id: n.span_id.to_be_bytes().to_vec(),
            trace_state: String::new(),
            parent_span_id: if n.parent == NONE {
                Vec::new()
            } else {
                trace.nodes[n.parent as usize].span_id.to_be_bytes().to_vec()
            },
            flags: 0x101 | if remote_parent { 0x200 } else { 0 },
            name: self.name(n).to_string(),
            kind: if own { st.own_kind } else { st.client_kind } as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: attrs,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links,
            dropped_links_count: 0,
            status,
        };
        (if own { st.own_scope } else { st.client_scope }, span)
    }

    fn error_message(&self, trace: &TraceBuf, i: usize) -> String {
        let n = &trace.nodes[i];
        if n.error_from == NONE {
            return ERROR_MESSAGES[((n.bits >> 8) % ERROR_MESSAGES.len() as u64) as usize].to_string();
        }
        let child = n.error_from as usize;
        match n.role {
            Role::Client | Role::Producer => self.error_message(trace, child),
            _ => format!("{} failed: {}", self.name(&trace.nodes[child]), self.error_message(trace, child)),
        }
    }
}

/// The optional extra attribute of an operation's own spans (present on about half of them),
/// covering the non-string `AnyValue` kinds.
fn push_extra(attrs: &mut Vec<KeyValue>, extra: u8, bits: u64) {
    if bits & 1 == 0 {
        return;
    }
    let v = bits >> 48;
    match extra {
        1 => attrs.push(kv("app.cache.hit", Value::BoolValue(!v.is_multiple_of(3)))),
        2 => attrs.push(kv("app.order.total", Value::DoubleValue((v % 50_000) as f64 / 100.0 + 0.99))),
        3 => attrs.push(int("app.items.count", 1 + (v % 12) as i64)),
        4 => {
            let ids = (0..1 + v % 3)
                .map(|k| AnyValue { value: Some(Value::StringValue(format!("SKU-{:05}", (v >> (k * 4)) % 100_000))) })
                .collect();
            attrs.push(kv("app.product.ids", Value::ArrayValue(ArrayValue { values: ids })));
        }
        5 => {
            let values = vec![
                s("tenant", format!("t-{}", v % 40)),
                s("tier", if v.is_multiple_of(4) { "gold" } else { "free" }),
                kv("beta", Value::BoolValue(v.is_multiple_of(7))),
            ];
            attrs.push(kv("app.request.context", Value::KvlistValue(KeyValueList { values })));
        }
        6 => attrs.push(kv("app.payload.digest", Value::BytesValue((bits as u32).to_be_bytes().to_vec()))),
        _ => {}
    }
}

fn op_static(service: &str, op: &crate::topology::OperationSpec) -> OpStatic {
    let host = service.to_string();
    let client_name = match &op.kind {
        OperationKind::Consumer { topic } => format!("publish {topic}"),
        _ => op.name.clone(),
    };
    let mut st = OpStatic {
        name: op.name.clone(),
        client_name,
        own_kind: SpanKind::Server,
        client_kind: SpanKind::Client,
        own_scope: ScopeKind::App,
        client_scope: ScopeKind::App,
        own_attrs: Vec::new(),
        client_attrs: Vec::new(),
        route: None,
        db_read: false,
    };
    match &op.kind {
        OperationKind::HttpServer { method, route } => {
            st.own_scope = ScopeKind::Http;
            st.client_scope = ScopeKind::Http;
            st.route = Some(route.clone());
            st.own_attrs = vec![
                s("http.request.method", method.as_str()),
                s("http.route", route.as_str()),
                s("url.scheme", "http"),
                s("server.address", host.as_str()),
                int("server.port", 8080),
                s("network.protocol.version", "1.1"),
            ];
            st.client_attrs = vec![
                s("http.request.method", method.as_str()),
                s("server.address", host.as_str()),
                int("server.port", 8080),
                s("network.protocol.version", "1.1"),
            ];
        }
        OperationKind::GrpcServer { service: rpc_service, method } => {
            st.own_scope = ScopeKind::Grpc;
            st.client_scope = ScopeKind::Grpc;
            let common = vec![
                s("rpc.system", "grpc"),
                s("rpc.service", rpc_service.as_str()),
                s("rpc.method", method.as_str()),
                s("server.address", host.as_str()),
                int("server.port", 50051),
            ];
            st.own_attrs = common.clone();
            st.client_attrs = common;
        }
        OperationKind::Consumer { topic } => {
            st.own_kind = SpanKind::Consumer;
            st.client_kind = SpanKind::Producer;
            st.own_scope = ScopeKind::Messaging;
            st.client_scope = ScopeKind::Messaging;
            st.own_attrs = vec![
                s("messaging.system", "kafka"),
                s("messaging.destination.name", topic.as_str()),
                s("messaging.operation.type", "process"),
                s("messaging.operation.name", "process"),
                s("messaging.consumer.group.name", host.as_str()),
            ];
            st.client_attrs = vec![
                s("messaging.system", "kafka"),
                s("messaging.destination.name", topic.as_str()),
                s("messaging.operation.type", "send"),
                s("messaging.operation.name", "publish"),
                s("server.address", "kafka"),
                int("server.port", 9092),
            ];
        }
        OperationKind::Database { system, operation, collection, query } => {
            st.own_kind = SpanKind::Client;
            st.own_scope = ScopeKind::for_db(*system);
            st.db_read = matches!(operation.as_str(), "SELECT" | "GET" | "HGETALL" | "find" | "aggregate");
            st.own_attrs = vec![
                s("db.system", system.as_str()),
                s("db.namespace", "shop"),
                s("db.operation.name", operation.as_str()),
                s("db.collection.name", collection.as_str()),
                s("db.query.text", query.as_str()),
                s("server.address", format!("{service}-{}", system.as_str())),
                int("server.port", system.port()),
            ];
        }
        OperationKind::Internal => {
            st.own_kind = SpanKind::Internal;
            st.own_attrs = vec![s("code.function.name", op.name.replace(' ', "_"))];
        }
    }
    st
}
