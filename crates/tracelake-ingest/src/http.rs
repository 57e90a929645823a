//! The OTLP/HTTP trace receiver: `POST /v1/traces` as an axum [`Router`] (mounted by
//! `tracelake serve`; tested here with `oneshot`, no socket).
//!
//! Errors are OTLP-style: a `google.rpc.Status` (code + message) in the request's encoding —
//! protobuf for `application/x-protobuf`, JSON otherwise — with the HTTP status of
//! [`crate::otlp_http`]; 503 with `Retry-After` when the write-ahead log cannot take data.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;

use crate::flush::Ingester;
use crate::otlp_http::{OtlpEncoding, decode_request, encode_response};

/// Default largest request body (after decompression too): 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

#[derive(Clone)]
struct ReceiverState {
    ingester: Arc<Ingester>,
    max_body: usize,
}

/// `POST /v1/traces` into `ingester`, refusing bodies over `max_body` bytes (413).
pub fn otlp_http_router(ingester: Arc<Ingester>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export_traces))
        // axum answers 413 itself for bodies over the limit (+1 lets our own check name it).
        .layer(DefaultBodyLimit::max(max_body.saturating_add(1)))
        .with_state(ReceiverState { ingester, max_body })
}

/// `google.rpc.Status`, as OTLP/HTTP error bodies carry it.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn export_traces(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let reply_encoding = OtlpEncoding::from_content_type(header_str(header::CONTENT_TYPE)).unwrap_or(OtlpEncoding::Json);
    let (encoding, request) =
        match decode_request(header_str(header::CONTENT_TYPE), header_str(header::CONTENT_ENCODING), &body, state.max_body) {
            Ok(decoded) => decoded,
            Err(e) => return error_response(reply_encoding, e.status, &e.message),
        };
    match state.ingester.ingest(&request).await {
        Ok(outcome) => {
            let body = encode_response(encoding, outcome.rejected.len(), &outcome.refusal_message());
            ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Err(crate::Error::Schema(e)) => error_response(encoding, 400, &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "ingest failed");
            let mut response = error_response(encoding, 503, &format!("cannot store spans right now: {e}"));
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}

fn error_response(encoding: OtlpEncoding, status: u16, message: &str) -> Response {
    // gRPC codes: INVALID_ARGUMENT for client errors, UNAVAILABLE otherwise.
    let code = if (400..500).contains(&status) { 3 } else { 14 };
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

    use crate::wal::WalConfig;

    const GOOD: &str = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok","startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000001"},
        {"traceId":"5b8efff798038103d269b633813fc6","spanId":"eee19b7ec3c1b175","name":"short-id","startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000001"}]}]}]}"#;

    async fn app() -> (Router, Arc<Ingester>, tempfile::TempDir, tempfile::TempDir) {
        let (data, wal) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let location = DataLocation::open(data.path().to_str().unwrap()).unwrap();
        let ingester = Arc::new(Ingester::open(location, WalConfig::new(wal.path())).await.unwrap());
        (otlp_http_router(Arc::clone(&ingester), 1 << 16), ingester, data, wal)
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
        assert_eq!(post(&app, "application/x-protobuf", vec![0u8; 1 << 17]).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, body) = post(&app, "application/x-protobuf", vec![0xffu8, 0xff, 0xff]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let rpc = RpcStatus::decode(body.as_bytes()).unwrap_or_default();
        assert_eq!(rpc.code, 3);
        assert_eq!(ingester.buffered_rows(), 1, "nothing accepted earlier was lost");
    }
}
