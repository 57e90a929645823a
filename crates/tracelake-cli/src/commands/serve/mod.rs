//! `tracelake serve`: OTLP/gRPC and OTLP/HTTP ingest with a write-ahead log, flushes to Parquet
//! by size and age, backpressure under a memory limit; Arrow Flight SQL and the HTTP query API
//! over the same data, including spans not yet flushed; and a graceful shutdown (SIGTERM/SIGINT:
//! stop accepting, finish open requests, flush everything, exit 0).
//!
//! Settings: [`config::ServeConfig`] (defaults ← TOML file ← environment ← flags).

pub mod config;
pub mod maintenance;
pub mod sessions;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tracelake_ingest::grpc::otlp_grpc_service;
use tracelake_ingest::http::{HttpReceiverConfig, not_found, otlp_http_router};
use tracelake_ingest::http_server::serve_router;
use tracelake_ingest::tenants::IngestRouter;
use tracelake_ingest::{FlushPolicy, IngestConfig, TenantIngesters, WalConfig};
use tracelake_schema::AttributeLimits;
use tracelake_server::http_api::query_router;
use tracelake_server::{Auth, QueryEngine, QueryLimits, TracelakeFlightSql};
use tracelake_store::DataLocation;

use crate::cli::ServeArgs;
use crate::error::{CliError, Result};
use config::ServeConfig;
use sessions::ServeSessions;

/// How long open requests may take to finish after SIGTERM before the final flush.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Memory for cached Parquet footers and page indexes across queries (≈ 100 KB per span
/// file of 20 columns, so this holds a few thousand files).
const METADATA_CACHE_BYTES: usize = 256 << 20;

/// Runs `tracelake serve`.
pub async fn run(args: ServeArgs) -> Result<()> {
    let config = ServeConfig::resolve(&args)?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    let location = DataLocation::open(&config.data)?;
    let wal_dir = match (&config.wal_dir, location.is_local()) {
        (Some(dir), _) => dir.clone(),
        (None, true) => std::path::Path::new(&config.data).join("wal"),
        (None, false) => return Err(CliError::Usage("wal_dir (--wal-dir) is required when the data location is not a local directory".into())),
    };
    let maintenance = maintenance::Maintenance::from_config(&config, &location)?;
    let mut wal = WalConfig::new(&wal_dir);
    wal.group_commit = config.wal_group_commit;
    let ingest = IngestConfig {
        attribute_limits: AttributeLimits {
            max_attributes: config.max_attributes,
            max_value_bytes: config.max_attribute_value_bytes,
        },
        max_buffered_bytes: config.max_buffered_bytes,
    };
    let policy = FlushPolicy { interval: Duration::from_secs(config.flush_interval_secs), bytes: config.flush_bytes };
    let ingesters = Arc::new(
        TenantIngesters::open(location.clone(), wal, ingest, policy, config.tenants)
            .await
            .map_err(|e| CliError::Usage(format!("cannot open the write-ahead log in {}: {e}", wal_dir.display())))?,
    );
    let timeout = Duration::from_secs(config.request_timeout_secs);
    let ready = Arc::new(AtomicBool::new(false));
    let metadata_cache = tracelake_query::shared_metadata_cache(METADATA_CACHE_BYTES);
    let sessions = Arc::new(ServeSessions { location: location.clone(), ingesters: Arc::clone(&ingesters), metadata_cache });
    let limits = QueryLimits {
        memory_bytes: config.query_memory_limit_bytes,
        timeout: Duration::from_secs(config.query_timeout_secs),
        max_concurrent: config.max_concurrent_queries,
        max_queued: config.max_queued_queries,
    };
    let engine = Arc::new(QueryEngine::new(sessions, limits));
    let auth = Auth::new(config.auth_token.clone());
    let metrics_text = {
        let (ingesters, engine) = (Arc::clone(&ingesters), Arc::clone(&engine));
        move || format!("{}{}", ingesters.metrics_text(), engine.metrics().render())
    };
    let router: Arc<dyn IngestRouter> = Arc::clone(&ingesters) as Arc<dyn IngestRouter>;
    let common = common_routes(Arc::clone(&ready), metrics_text);
    let receiver = HttpReceiverConfig { max_body: config.max_request_bytes, body_timeout: timeout };
    let app = Router::new()
        .merge(otlp_http_router(Arc::clone(&router), receiver))
        .merge(common.clone())
        .fallback(not_found);
    let query_app = query_router(Arc::clone(&engine), auth.clone()).merge(common).fallback(not_found);
    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr).await.map_err(|e| CliError::Usage(format!("cannot listen on {addr}: {e}")))
    };
    let listener = bind(config.otlp_http_addr.clone()).await?;
    let grpc_listener = bind(config.otlp_grpc_addr.clone()).await?;
    let flight_listener = bind(config.flight_addr.clone()).await?;
    let query_listener = bind(config.http_addr.clone()).await?;
    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc = tonic::transport::Server::builder()
        .timeout(timeout)
        .add_service(otlp_grpc_service(router, config.max_request_bytes))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            stopped(stop_rx.clone()),
        );
    let grpc = tokio::spawn(grpc);
    let flight = tonic::transport::Server::builder()
        .add_service(TracelakeFlightSql::new(Arc::clone(&engine), auth).into_server())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(flight_listener),
            stopped(stop_rx.clone()),
        );
    let flight = tokio::spawn(flight);
    let query_http = tokio::spawn(serve_router(query_listener, query_app, timeout, stopped(stop_rx.clone())));
    ready.store(true, Ordering::SeqCst);
    eprintln!(
        "tracelake serve: OTLP/gRPC on {}, OTLP/HTTP on http://{}/v1/traces, Flight SQL on {}, HTTP API on http://{}/api/v1/query{}, data {location}, WAL {} ({} spans recovered)",
        config.otlp_grpc_addr,
        config.otlp_http_addr,
        config.flight_addr,
        config.http_addr,
        if config.auth_token.is_some() { " (token required)" } else { "" },
        wal_dir.display(),
        ingesters.buffered_rows()
    );
    let otlp_http = tokio::spawn(serve_router(listener, app, timeout, stopped(stop_rx.clone())));
    let maintenance = maintenance.map(|m| m.spawn(stop_rx.clone()));
    stopped(stop_rx).await;
    // Open requests get a grace period to finish; then the final flush runs regardless, so
    // that SIGTERM always ends within about a minute.
    let servers = async {
        let mut failures = Vec::new();
        for (name, task) in [("OTLP/HTTP", otlp_http), ("HTTP query API", query_http)] {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{name} server error: {e}")),
                Err(e) => failures.push(format!("{name} server task failed: {e}")),
            }
        }
        for (name, task) in [("OTLP/gRPC", grpc), ("Flight SQL", flight)] {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{name} server error: {e}")),
                Err(e) => failures.push(format!("{name} server task failed: {e}")),
            }
        }
        failures
    };
    match tokio::time::timeout(SHUTDOWN_GRACE, servers).await {
        Ok(failures) => {
            for failure in failures {
                tracing::error!("{failure}");
            }
        }
        Err(_) => eprintln!("tracelake serve: requests still open after {} s; flushing anyway", SHUTDOWN_GRACE.as_secs()),
    }
    if let Some(task) = maintenance {
        // A round in progress finishes its current step; files stay consistent either way.
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let stats = ingesters.flush_all().await.map_err(|e| CliError::Output(format!("final flush failed (spans stay in the WAL): {e}")))?;
    eprintln!("tracelake serve: stopped; final flush wrote {} span(s) in {} file(s)", stats.rows, stats.files);
    Ok(())
}

/// `/health`, `/ready` and `/metrics`, served on both HTTP ports.
fn common_routes(ready: Arc<AtomicBool>, metrics_text: impl Fn() -> String + Clone + Send + Sync + 'static) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let text = metrics_text();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
        .route(
            "/ready",
            get(move || async move {
                if ready.load(Ordering::SeqCst) {
                    (axum::http::StatusCode::OK, "ready")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
