//! The HTTP query API (`:3200`): `POST /api/v1/query` (`{"sql": "..."}`), `GET
//! /api/v1/query?sql=`, and `GET /api/traces/{trace_id}`. Results stream as typed JSON
//! (`{"columns", "rows"}`), CSV, Arrow IPC or Parquet, chosen by `format=` or `Accept`.
//! Errors are `{"error": {"code", "message"}}` with a 4xx status (5xx only for our own faults).

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde::Deserialize;
use tracelake_query::output::{ResultFormat, ResultWriter};

use crate::auth::Auth;
use crate::engine::{QueryEngine, QueryStream};
use crate::error::QueryError;
use crate::trace_json::{TraceJsonStyle, trace_to_otlp_json};

#[derive(Clone)]
struct ApiState {
    engine: Arc<QueryEngine>,
    auth: Auth,
}

/// The query API routes (merge into the server's router).
pub fn query_router(engine: Arc<QueryEngine>, auth: Auth) -> Router {
    Router::new()
        .route("/api/v1/query", get(query_get).post(query_post))
        .route("/api/traces/{trace_id}", get(trace_by_id))
        .with_state(ApiState { engine, auth })
}

#[derive(Debug, Deserialize)]
struct QueryParams {
    sql: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: String,
    format: Option<String>,
}

/// A JSON error response.
pub fn error_response(e: &QueryError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": { "code": e.code(), "message": e.to_string() } });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The tenant of a request (`X-Scope-OrgID`).
fn org_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-scope-orgid").and_then(|v| v.to_str().ok())
}

fn check_auth(state: &ApiState, headers: &HeaderMap) -> Result<(), Response> {
    let header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    state.auth.check(header).map_err(|e| {
        state.engine.metrics().record(std::time::Duration::ZERO, Some(&e));
        error_response(&e)
    })
}

async fn query_get(State(state): State<ApiState>, headers: HeaderMap, Query(params): Query<QueryParams>) -> Response {
    if let Err(r) = check_auth(&state, &headers) {
        return r;
    }
    let Some(sql) = params.sql else {
        return error_response(&QueryError::InvalidSql("missing query parameter 'sql'".into()));
    };
    run_query(&state, &headers, &sql, params.format.as_deref()).await
}

async fn query_post(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<QueryParams>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = check_auth(&state, &headers) {
        return r;
    }
    let body: QueryBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error_response(&QueryError::InvalidSql(format!(
                "the request body must be JSON like {{\"sql\": \"SELECT 1\"}}: {e}"
            )));
        }
    };
    let format = params.format.or(body.format);
    run_query(&state, &headers, &body.sql, format.as_deref()).await
}

/// The format from `format=` (wins) or `Accept`; JSON rows by default.
fn negotiate(format: Option<&str>, headers: &HeaderMap) -> Result<(ResultFormat, &'static str), QueryError> {
    let by_name = |name: &str| match name.to_ascii_lowercase().as_str() {
        "json" => Some((ResultFormat::JsonRows, "application/json")),
        "csv" => Some((ResultFormat::Csv, "text/csv; charset=utf-8")),
        "arrow" => Some((ResultFormat::Arrow, "application/vnd.apache.arrow.stream")),
        "parquet" => Some((ResultFormat::Parquet, "application/vnd.apache.parquet")),
        "ndjson" => Some((ResultFormat::Ndjson, "application/x-ndjson")),
        _ => None,
    };
    if let Some(name) = format {
        return by_name(name)
            .ok_or_else(|| QueryError::InvalidSql(format!("unknown format '{name}': use json, csv, arrow, parquet or ndjson")));
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for media in accept.split(',').map(|m| m.split(';').next().unwrap_or("").trim()) {
        let found = match media {
            "text/csv" => by_name("csv"),
            "application/vnd.apache.arrow.stream" => by_name("arrow"),
            "application/vnd.apache.parquet" => by_name("parquet"),
            "application/x-ndjson" => by_name("ndjson"),
            "application/json" | "*/*" => by_name("json"),
            _ => None,
        };
        if let Some(found) = found {
            return Ok(found);
        }
    }
    Ok((ResultFormat::JsonRows, "application/json"))
}

async fn run_query(state: &ApiState, headers: &HeaderMap, sql: &str, format: Option<&str>) -> Response {
    let (format, content_type) = match negotiate(format, headers) {
        Ok(f) => f,
        Err(e) => return error_response(&e),
    };
    let mut stream = match state.engine.run(org_id(headers), sql).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    // Wait for the first batch before answering, so that the common failures (memory, timeout,
    // errors found at execution) still get a proper status.
    let first = match stream.next().await {
        Some(Err(e)) => return error_response(&e),
        other => other,
    };
    let body = stream_body(stream, first.and_then(Result::ok), format);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A `Write` that collects bytes for the next chunk of the response.
#[derive(Clone, Default)]
struct ChunkBuffer(Arc<Mutex<Vec<u8>>>);

impl ChunkBuffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Write for ChunkBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams the result: one chunk per batch. An error after the first byte aborts the body (the
/// client sees a failed transfer, never a silently truncated result).
fn stream_body(mut stream: QueryStream, first: Option<datafusion::arrow::record_batch::RecordBatch>, format: ResultFormat) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let buffer = ChunkBuffer::default();
        let fail = |e: String| std::io::Error::other(e);
        let mut writer = match ResultWriter::new(format, stream.schema(), buffer.clone()) {
            Ok(w) => w,
            Err(e) => {
                let _ = tx.send(Err(fail(e.to_string()))).await;
                return;
            }
        };
        let mut next = first.map(Ok);
        loop {
            let batch = match next.take() {
                Some(b) => b,
                None => match stream.next().await {
                    Some(b) => b,
                    None => break,
                },
            };
            let written = batch.map_err(|e| e.to_string()).and_then(|b| writer.write(&b).map_err(|e| e.to_string()));
            if let Err(e) = written {
                tracing::warn!(error = %e, "query failed while streaming its result");
                let _ = tx.send(Err(fail(e))).await;
                return;
            }
            let chunk = buffer.take();
            if !chunk.is_empty() && tx.send(Ok(chunk.into())).await.is_err() {
                return; // the client went away: dropping the stream cancels the query
            }
        }
        match writer.finish() {
            Ok(_) => {
                let _ = tx.send(Ok(buffer.take().into())).await;
            }
            Err(e) => {
                let _ = tx.send(Err(fail(e.to_string()))).await;
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[derive(Debug, Deserialize)]
struct TraceParams {
    format: Option<String>,
}

async fn trace_by_id(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    Query(params): Query<TraceParams>,
) -> Response {
    if let Err(r) = check_auth(&state, &headers) {
        return r;
    }
    let id = trace_id.to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.bytes().all(|b| b == b'0') {
        return error_response(&QueryError::InvalidSql(format!(
            "'{trace_id}' is not a trace id: expected 32 hex digits, not all zero"
        )));
    }
    let style = match params.format.as_deref() {
        None | Some("otlp") => TraceJsonStyle::Otlp,
        Some("tempo") => TraceJsonStyle::TempoBatches,
        Some(other) => return error_response(&QueryError::InvalidSql(format!("unknown format '{other}': use otlp or tempo"))),
    };
    // The id is validated hex: safe to inline.
    let sql = format!("SELECT * FROM spans WHERE trace_id = '{id}' ORDER BY start_time, span_id");
    let stream = match state.engine.run(org_id(&headers), &sql).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let batches: Result<Vec<_>, QueryError> = stream.collect::<Vec<_>>().await.into_iter().collect();
    let batches = match batches {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    if batches.iter().all(|b| b.num_rows() == 0) {
        return error_response(&QueryError::NotFound(format!("trace {id} not found")));
    }
    match trace_to_otlp_json(&batches, style) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.to_string()).into_response(),
        Err(e) => error_response(&e),
    }
}
