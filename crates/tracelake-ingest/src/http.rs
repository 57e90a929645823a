//! The OTLP/HTTP trace receiver: `POST /v1/traces` as an axum [`Router`] (mounted by
//! `tracelake serve`; tested here with `oneshot`, no socket).
//!
//! Errors are OTLP-style: a `google.rpc.Status` (code + message) in the request's encoding —
//! protobuf for `application/x-protobuf`, JSON otherwise — with the HTTP status of
//! [`crate::otlp_http`]; 429 with `Retry-After` when the buffer is at its memory limit, 503
//! with `Retry-After` when the write-ahead log cannot take data, 408 when the body does not
//! arrive in time.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use prost::Message;

use crate::tenants::{IngestRouter, RouteError};
use crate::otlp_http::{OtlpEncoding, decode_request, encode_response};

/// Default largest request body (after decompression too): 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// Settings of the OTLP/HTTP receiver.
#[derive(Debug, Clone, Copy)]
pub struct HttpReceiverConfig {
    /// Largest body, compressed and after decompression (413 above it).
    pub max_body: usize,
    /// Time allowed to receive a whole body (408 after it): a slow sender cannot hold a
    /// request open indefinitely.
    pub body_timeout: Duration,
}

impl Default for HttpReceiverConfig {
    fn default() -> Self {
        Self { max_body: DEFAULT_MAX_BODY, body_timeout: Duration::from_secs(30) }
    }
}

#[derive(Clone)]
struct ReceiverState {
    router: Arc<dyn IngestRouter>,
    config: HttpReceiverConfig,
}

/// `POST /v1/traces` into the ingester `router` picks (by `X-Scope-OrgID`).
pub fn otlp_http_router(router: Arc<dyn IngestRouter>, config: HttpReceiverConfig) -> Router {
    Router::new()
        .route("/v1/traces", post(export_traces).fallback(method_not_allowed))
        .with_state(ReceiverState { router, config })
}

/// `google.rpc.Status`, as OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn method_not_allowed(method: Method) -> Response {
    let mut response = error_response(OtlpEncoding::Json, 405, &format!("{method} is not allowed on /v1/traces: use POST"));
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// A 404 in the OTLP error format, for any path the server does not serve.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    error_response(OtlpEncoding::Json, 404, &format!("no such endpoint: {}", uri.path()))
}

async fn export_traces(State(state): State<ReceiverState>, headers: HeaderMap, body: Body) -> Response {
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let reply_encoding = OtlpEncoding::from_content_type(header_str(header::CONTENT_TYPE)).unwrap_or(OtlpEncoding::Json);
    let max = state.config.max_body;
    let body = match read_body(body, max, state.config.body_timeout).await {
        Ok(body) => body,
        Err((status, message)) => return error_response(reply_encoding, status, &message),
    };
    let (encoding, request) =
        match decode_request(header_str(header::CONTENT_TYPE), header_str(header::CONTENT_ENCODING), &body, max) {
            Ok(decoded) => decoded,
            Err(e) => return error_response(reply_encoding, e.status, &e.message),
        };
    let org_id = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok());
    let ingester = match state.router.route(org_id).await {
        Ok(ingester) => ingester,
        Err(RouteError::InvalidTenant(message)) => return error_response(encoding, 400, &message),
        Err(RouteError::Ingest(e)) => return retry_later(encoding, 503, &format!("cannot open the tenant's write-ahead log: {e}")),
    };
    match ingester.ingest(&request, body.len()).await {
        Ok(outcome) => {
            let body = encode_response(encoding, outcome.rejected.len(), &outcome.refusal_message());
            ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Err(crate::Error::Schema(e)) => error_response(encoding, 400, &e.to_string()),
        Err(e @ crate::Error::Overloaded { .. }) => retry_later(encoding, 429, &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "ingest failed");
            retry_later(encoding, 503, &format!("cannot store spans right now: {e}"))
        }
    }
}

/// Reads at most `max` bytes within `timeout`.
async fn read_body(body: Body, max: usize, timeout: Duration) -> Result<Vec<u8>, (u16, String)> {
    let read = async {
        let mut out = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| (400, format!("could not read the request body: {e}")))?;
            if out.len() + chunk.len() > max {
                return Err((413, format!("request body exceeds the limit of {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err((408, format!("request body not received within {} s", timeout.as_secs_f64()))),
    }
}

/// A retryable refusal with `Retry-After` (seconds), as the OTLP/HTTP spec asks for 429/503.
fn retry_later(encoding: OtlpEncoding, status: u16, message: &str) -> Response {
    let mut response = error_response(encoding, status, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn error_response(encoding: OtlpEncoding, status: u16, message: &str) -> Response {
    // gRPC codes: INVALID_ARGUMENT for client errors, RESOURCE_EXHAUSTED for 429, UNAVAILABLE otherwise.
    let code = match status {
        429 => 8,
        400..=499 => 3,
        _ => 14,
    };
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = match encoding {
        OtlpEncoding::Protobuf => RpcStatus { code, message: message.to_owned() }.encode_to_vec(),
        OtlpEncoding::Json => serde_json::json!({ "code": code, "message": message }).to_string().into_bytes(),
    };
    (status_code, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use tracelake_store::DataLocation;

    use crate::ingester::Ingester;
    use crate::wal::WalConfig;

    const GOOD: &str = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok","startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000001"},
        {"traceId":"5b8efff798038103d269b633813fc6","spanId":"eee19b7ec3c1b175","name":"short-id","startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000001"}]}]}]}"#;

    async fn app() -> (Router, Arc<Ingester>, tempfile::TempDir, tempfile::TempDir) {
        let (data, wal) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let location = DataLocation::open(data.path().to_str().unwrap()).unwrap();
        let ingester = Arc::new(Ingester::open(location, WalConfig::new(wal.path()), Default::default()).await.unwrap());
        let config = HttpReceiverConfig { max_body: 1 << 16, body_timeout: Duration::from_millis(300) };
        let router = Arc::new(crate::tenants::SingleTenant(Arc::clone(&ingester)));
        (otlp_http_router(router, config), ingester, data, wal)
    }

    async fn post(app: &Router, content_type: &str, body: impl Into<Body>) -> (StatusCode, String) {
        let request = Request::post("/v1/traces").header("content-type", content_type).body(body.into()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partial_success_and_errors() {
        let (app, ingester, _d, _w) = app().await;
        let (status, body) = post(&app, "application/json", GOOD).await;
        assert_eq!(status, StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["partialSuccess"]["rejectedSpans"], 1);
        assert!(body["partialSuccess"]["errorMessage"].as_str().unwrap().contains("span 'short-id'"));
        assert_eq!(ingester.buffered_rows(), 1, "the valid span is durable and buffered");

        let (status, body) = post(&app, "application/json", "{oops").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("invalid OTLP JSON"), "{body}");
        assert_eq!(post(&app, "text/plain", "x").await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, body) = post(&app, "application/x-protobuf", vec![0u8; 1 << 17]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let rpc = RpcStatus::decode(body.as_bytes()).unwrap_or_default();
        assert_eq!((rpc.code, rpc.message.as_str()), (3, "request body exceeds the limit of 65536 bytes"));
        let (status, body) = post(&app, "application/x-protobuf", vec![0xffu8, 0xff, 0xff]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let rpc = RpcStatus::decode(body.as_bytes()).unwrap_or_default();
        assert_eq!(rpc.code, 3);
        assert_eq!(ingester.buffered_rows(), 1, "nothing accepted earlier was lost");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_that_stops_arriving_times_out_with_408() {
        let (app, _ingester, _d, _w) = app().await;
        let first = futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"resourceSpans\"")) });
        let slow = first.chain(futures::stream::pending());
        let started = std::time::Instant::now();
        let (status, body) = post(&app, "application/json", Body::from_stream(slow)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert!(body.contains("not received within 0.3 s"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let request = Request::get("/v1/traces").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
}
