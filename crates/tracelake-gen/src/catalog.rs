//! Static naming material: realistic service templates (names, routes, gRPC methods,
//! databases, queues, known dependencies), languages and instrumentation scopes.

/// Wire protocol of a service's server operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http,
    Grpc,
}

/// Database systems used by leaf database calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbSystem {
    /// PostgreSQL (`db.system` = `postgresql`).
    Postgresql,
    /// MySQL (`db.system` = `mysql`).
    Mysql,
    /// Redis (`db.system` = `redis`).
    Redis,
    /// MongoDB (`db.system` = `mongodb`).
    Mongodb,
}

impl DbSystem {
    /// The `db.system` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            DbSystem::Postgresql => "postgresql",
            DbSystem::Mysql => "mysql",
            DbSystem::Redis => "redis",
            DbSystem::Mongodb => "mongodb",
        }
    }

    pub(crate) fn port(self) -> i64 {
        match self {
            DbSystem::Postgresql => 5432,
            DbSystem::Mysql => 3306,
            DbSystem::Redis => 6379,
            DbSystem::Mongodb => 27017,
        }
    }

    /// Operation verbs, most frequent first.
    pub(crate) fn verbs(self) -> &'static [&'static str] {
        match self {
            DbSystem::Postgresql | DbSystem::Mysql => &["SELECT", "INSERT", "UPDATE", "DELETE"],
            DbSystem::Redis => &["GET", "SET", "HGETALL", "DEL", "EXPIRE"],
            DbSystem::Mongodb => &["find", "insert", "update", "aggregate", "delete"],
        }
    }

    /// `(span name, db.query.text)` of `verb` on `table`.
    pub(crate) fn statement(self, verb: &str, table: &str) -> (String, String) {
        let ph = |n: u32| match self {
            DbSystem::Mysql => "?".to_string(),
            _ => format!("${n}"),
        };
        match self {
            DbSystem::Postgresql | DbSystem::Mysql => {
                let q = match verb {
                    "SELECT" => format!("SELECT * FROM {table} WHERE id = {}", ph(1)),
                    "INSERT" => format!(
                        "INSERT INTO {table} (id, payload, created_at) VALUES ({}, {}, {})",
                        ph(1),
                        ph(2),
                        ph(3)
                    ),
                    "UPDATE" => format!("UPDATE {table} SET status = {} WHERE id = {}", ph(1), ph(2)),
                    _ => format!("DELETE FROM {table} WHERE id = {}", ph(1)),
                };
                (format!("{verb} {table}"), q)
            }
            DbSystem::Redis => (format!("redis {verb}"), format!("{verb} {table}:?")),
            DbSystem::Mongodb => {
                (format!("{verb} {table}"), format!("{{\"{verb}\":\"{table}\",\"filter\":{{\"_id\":\"?\"}}}}"))
            }
        }
    }
}

/// SDK language of a service (`telemetry.sdk.language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Java,
    Go,
    Python,
    Nodejs,
    Dotnet,
}

pub(crate) const LANGS: [Lang; 5] = [Lang::Java, Lang::Go, Lang::Python, Lang::Nodejs, Lang::Dotnet];

impl Lang {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Lang::Java => "java",
            Lang::Go => "go",
            Lang::Python => "python",
            Lang::Nodejs => "nodejs",
            Lang::Dotnet => "dotnet",
        }
    }

    pub(crate) fn sdk_version(self) -> &'static str {
        match self {
            Lang::Java => "1.44.1",
            Lang::Go => "1.32.0",
            Lang::Python => "1.28.2",
            Lang::Nodejs => "1.29.0",
            Lang::Dotnet => "1.10.0",
        }
    }

    /// Exception types: `[timeout, generic failure, downstream/RPC failure]`.
    pub(crate) fn exceptions(self) -> [&'static str; 3] {
        match self {
            Lang::Java => {
                ["java.net.SocketTimeoutException", "java.lang.IllegalStateException", "io.grpc.StatusRuntimeException"]
            }
            Lang::Go => ["context.deadlineExceededError", "*errors.errorString", "*status.Error"],
            Lang::Python => ["TimeoutError", "ValueError", "grpc.RpcError"],
            Lang::Nodejs => ["TimeoutError", "Error", "FetchError"],
            Lang::Dotnet => ["System.TimeoutException", "System.InvalidOperationException", "Grpc.Core.RpcException"],
        }
    }
}

/// Error messages of failing operations.
pub(crate) const ERROR_MESSAGES: [&str; 8] = [
    "deadline exceeded",
    "connection reset by peer",
    "connection refused",
    "resource exhausted: too many concurrent requests",
    "invalid state: record was modified concurrently",
    "upstream request timeout",
    "lock wait timeout exceeded",
    "null reference while mapping response",
];

/// Instrumentation scope categories. ResourceSpans hold one ScopeSpans per category used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ScopeKind {
    Http = 0,
    Grpc = 1,
    Sql = 2,
    Redis = 3,
    Mongo = 4,
    Messaging = 5,
    App = 6,
}

pub(crate) const SCOPE_COUNT: usize = 7;

/// `(name, version)` of the instrumentation libraries; the `App` scope is named per service.
pub(crate) const SCOPES: [(&str, &str); SCOPE_COUNT] = [
    ("io.opentelemetry.http", "2.11.0"),
    ("io.opentelemetry.grpc", "2.11.0"),
    ("io.opentelemetry.jdbc", "2.11.0"),
    ("io.opentelemetry.redis", "2.11.0"),
    ("io.opentelemetry.mongo", "2.11.0"),
    ("io.opentelemetry.kafka", "2.11.0"),
    ("", "1.0.0"),
];

impl ScopeKind {
    pub(crate) fn for_db(system: DbSystem) -> ScopeKind {
        match system {
            DbSystem::Postgresql | DbSystem::Mysql => ScopeKind::Sql,
            DbSystem::Redis => ScopeKind::Redis,
            DbSystem::Mongodb => ScopeKind::Mongo,
        }
    }
}

/// A realistic service: how it is named, what it serves, what it stores, whom it calls.
pub(crate) struct Template {
    pub name: &'static str,
    pub lang: Lang,
    pub protocol: Protocol,
    /// HTTP: `"METHOD /route"`; gRPC: method names.
    pub endpoints: &'static [&'static str],
    pub db: Option<(DbSystem, &'static [&'static str])>,
    /// Queue topic this service consumes (its first operation then is a CONSUMER).
    pub topic: Option<&'static str>,
    pub internals: &'static [&'static str],
    /// Known downstream services (only those later in this list are used: the graph is a DAG).
    pub downstream: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
const fn t(
    name: &'static str,
    lang: Lang,
    protocol: Protocol,
    endpoints: &'static [&'static str],
    db: Option<(DbSystem, &'static [&'static str])>,
    topic: Option<&'static str>,
    internals: &'static [&'static str],
    downstream: &'static [&'static str],
) -> Template {
    Template { name, lang, protocol, endpoints, db, topic, internals, downstream }
}

use DbSystem::{Mongodb, Mysql, Postgresql, Redis};
use Lang::{Dotnet, Go, Java, Nodejs, Python};
use Protocol::{Grpc, Http};

/// Named services in call order: a service only calls services after it.
pub(crate) const TEMPLATES: &[Template] = &[
    t(
        "frontend",
        Nodejs,
        Http,
        &[
            "GET /",
            "GET /product/{id}",
            "GET /cart",
            "POST /cart",
            "POST /checkout",
            "GET /search",
            "GET /account",
            "POST /login",
            "GET /category/{id}",
            "GET /orders/{id}",
        ],
        None,
        None,
        &["render page", "load session"],
        &["api-gateway", "ad", "session", "media"],
    ),
    t(
        "api-gateway",
        Go,
        Http,
        &[
            "GET /api/cart",
            "POST /api/checkout",
            "GET /api/products",
            "GET /api/products/{id}",
            "POST /api/cart/items",
            "GET /api/recommendations",
            "POST /api/login",
            "GET /api/users/{id}",
            "GET /api/search",
            "GET /api/orders/{id}",
        ],
        Some((Redis, &["ratelimit"])),
        None,
        &["authorize request", "apply rate limit"],
        &["checkout", "cart", "recommendation", "user", "catalog", "auth", "search", "review"],
    ),
    t(
        "checkout",
        Java,
        Http,
        &[
            "POST /api/checkout",
            "GET /api/checkout/{id}",
            "POST /api/checkout/confirm",
            "GET /api/orders/{id}",
            "POST /api/orders/{id}/cancel",
        ],
        Some((Postgresql, &["orders", "order_items", "payments_ledger"])),
        None,
        &["validate cart", "compute totals"],
        &[
            "cart",
            "payment",
            "shipping",
            "notification",
            "inventory",
            "pricing",
            "currency",
            "tax",
            "fraud-detection",
            "loyalty",
        ],
    ),
    t(
        "cart",
        Python,
        Http,
        &["GET /api/cart", "POST /api/cart/items", "DELETE /api/cart/items/{id}", "PUT /api/cart/items/{id}"],
        Some((Redis, &["cart"])),
        None,
        &["merge cart"],
        &["catalog", "inventory", "pricing"],
    ),
    t(
        "recommendation",
        Python,
        Grpc,
        &["ListRecommendations", "GetSimilar", "GetTrending"],
        Some((Redis, &["recs"])),
        None,
        &["rank candidates"],
        &["catalog", "ad", "analytics"],
    ),
    t(
        "user",
        Java,
        Http,
        &[
            "GET /api/users/{id}",
            "POST /api/users",
            "PUT /api/users/{id}",
            "GET /api/users/{id}/addresses",
            "POST /api/login",
        ],
        Some((Postgresql, &["users", "addresses", "sessions"])),
        None,
        &["hash password"],
        &["auth", "loyalty", "notification", "session"],
    ),
    t(
        "payment",
        Go,
        Grpc,
        &["Charge", "Refund", "Authorize", "GetPayment"],
        Some((Postgresql, &["payments", "transactions"])),
        None,
        &["tokenize card"],
        &["fraud-detection", "currency", "notification"],
    ),
    t(
        "shipping",
        Go,
        Grpc,
        &["GetQuote", "ShipOrder", "TrackShipment"],
        Some((Mysql, &["shipments", "carriers"])),
        None,
        &["compute route"],
        &["notification", "warehouse", "currency", "geo"],
    ),
    t(
        "notification",
        Python,
        Grpc,
        &["Send", "GetPreferences"],
        Some((Mongodb, &["templates", "deliveries"])),
        Some("notifications"),
        &["render template"],
        &["email"],
    ),
    t(
        "catalog",
        Go,
        Grpc,
        &["GetProduct", "ListProducts", "SearchProducts", "GetCategory"],
        Some((Postgresql, &["products", "categories"])),
        None,
        &["resolve variants"],
        &["inventory", "pricing", "review", "media"],
    ),
    t(
        "inventory",
        Java,
        Grpc,
        &["Reserve", "Release", "GetStock", "Commit"],
        Some((Mysql, &["stock", "reservations"])),
        None,
        &["check availability"],
        &["warehouse"],
    ),
    t(
        "auth",
        Go,
        Grpc,
        &["ValidateToken", "IssueToken", "CheckPermission", "RevokeToken"],
        Some((Redis, &["tokens"])),
        None,
        &["verify signature"],
        &["session"],
    ),
    t(
        "search",
        Java,
        Http,
        &["GET /api/search", "GET /api/search/suggest", "GET /api/search/facets"],
        Some((Mongodb, &["search_cache"])),
        None,
        &["parse query"],
        &["pricing", "ad", "media", "review"],
    ),
    t(
        "pricing",
        Dotnet,
        Grpc,
        &["GetPrice", "ApplyDiscount", "ListPromotions"],
        Some((Redis, &["prices"])),
        None,
        &["evaluate rules"],
        &["currency", "tax"],
    ),
    t("currency", Nodejs, Grpc, &["Convert", "GetSupportedCurrencies"], Some((Redis, &["fx_rates"])), None, &[], &[]),
    t(
        "fraud-detection",
        Python,
        Grpc,
        &["Score", "Review"],
        Some((Mongodb, &["signals"])),
        None,
        &["run model"],
        &["geo", "analytics"],
    ),
    t("email", Python, Grpc, &["SendEmail"], None, Some("emails"), &["render email"], &[]),
    t("ad", Java, Grpc, &["GetAds"], Some((Redis, &["ads"])), None, &["select ads"], &[]),
    t(
        "review",
        Python,
        Http,
        &["GET /api/reviews/{id}", "POST /api/reviews"],
        Some((Mongodb, &["reviews"])),
        None,
        &[],
        &["media"],
    ),
    t("loyalty", Dotnet, Grpc, &["GetPoints", "AddPoints"], Some((Postgresql, &["points"])), None, &[], &[]),
    t("tax", Go, Grpc, &["Calculate"], None, None, &["lookup jurisdiction"], &["geo"]),
    t("warehouse", Java, Grpc, &["Allocate", "GetLocation"], Some((Mysql, &["bins"])), None, &[], &[]),
    t("media", Nodejs, Http, &["GET /media/{id}"], Some((Redis, &["thumbnails"])), None, &[], &[]),
    t("session", Go, Grpc, &["Get", "Touch"], Some((Redis, &["sessions"])), None, &[], &[]),
    t("analytics", Python, Grpc, &["Track"], Some((Mongodb, &["events"])), Some("events"), &[], &[]),
    t("geo", Go, Grpc, &["Locate"], None, None, &[], &[]),
];

/// Lowercase alphanumerics for pod-style host names.
pub(crate) const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `"inventory"` → `"inventory.InventoryService"`; `"fraud-detection"` → `"frauddetection.FraudDetectionService"`.
pub(crate) fn grpc_service_name(service: &str) -> (String, String) {
    let pkg: String = service.chars().filter(|c| *c != '-').collect();
    let mut pascal = String::new();
    for part in service.split('-') {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            pascal.extend(c.to_uppercase());
            pascal.push_str(cs.as_str());
        }
    }
    let full = format!("{pkg}.{pascal}Service");
    (pkg, full)
}
