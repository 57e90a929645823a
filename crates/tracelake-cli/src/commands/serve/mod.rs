//! `tracelake serve`: OTLP/gRPC and OTLP/HTTP ingest with a write-ahead log, flushes to Parquet
//! by size and age, backpressure under a memory limit, and a graceful shutdown (SIGTERM/SIGINT:
//! stop accepting, finish open requests, flush everything, exit 0).
//!
//! Settings: [`config::ServeConfig`] (defaults ← TOML file ← environment ← flags).

pub mod config;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tracelake_ingest::grpc::otlp_grpc_service;
use tracelake_ingest::http::{HttpReceiverConfig, not_found, otlp_http_router};
use tracelake_ingest::http_server::serve_router;
use tracelake_ingest::{IngestConfig, Ingester, WalConfig};
use tracelake_schema::AttributeLimits;
use tracelake_store::DataLocation;

use crate::cli::ServeArgs;
use crate::error::{CliError, Result};
use config::ServeConfig;

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
    let mut wal = WalConfig::new(&wal_dir);
    wal.group_commit = config.wal_group_commit;
    let ingest = IngestConfig {
        attribute_limits: AttributeLimits {
            max_attributes: config.max_attributes,
            max_value_bytes: config.max_attribute_value_bytes,
        },
        max_buffered_bytes: config.max_buffered_bytes,
    };
    let ingester = Arc::new(
        Ingester::open(location.clone(), wal, ingest)
            .await
            .map_err(|e| CliError::Usage(format!("cannot open the write-ahead log in {}: {e}", wal_dir.display())))?,
    );
    let timeout = Duration::from_secs(config.request_timeout_secs);
    let ready = Arc::new(AtomicBool::new(false));
    let receiver = HttpReceiverConfig { max_body: config.max_request_bytes, body_timeout: timeout };
    let app = Router::new()
        .merge(otlp_http_router(Arc::clone(&ingester), receiver))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get({
                let ingester = Arc::clone(&ingester);
                move || async move {
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], ingester.metrics_text())
                }
            }),
        )
        .route(
            "/ready",
            get({
                let ready = Arc::clone(&ready);
                move || async move {
                    if ready.load(Ordering::SeqCst) {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
        .fallback(not_found);
    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr).await.map_err(|e| CliError::Usage(format!("cannot listen on {addr}: {e}")))
    };
    let listener = bind(config.otlp_http_addr.clone()).await?;
    let grpc_listener = bind(config.otlp_grpc_addr.clone()).await?;
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
        .add_service(otlp_grpc_service(Arc::clone(&ingester), config.max_request_bytes))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            stopped(stop_rx.clone()),
        );
    let grpc = tokio::spawn(grpc);
    let flusher = tokio::spawn(
        Arc::clone(&ingester).run_flusher(Duration::from_secs(config.flush_interval_secs), config.flush_bytes),
    );
    ready.store(true, Ordering::SeqCst);
    eprintln!(
        "tracelake serve: OTLP/gRPC on {}, OTLP/HTTP on http://{}/v1/traces, data {location}, WAL {} ({} spans recovered)",
        config.otlp_grpc_addr,
        config.otlp_http_addr,
        wal_dir.display(),
        ingester.buffered_rows()
    );
    serve_router(listener, app, timeout, stopped(stop_rx))
        .await
        .map_err(|e| CliError::Output(format!("OTLP/HTTP server error: {e}")))?;
    match grpc.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(CliError::Output(format!("OTLP/gRPC server error: {e}"))),
        Err(e) => return Err(CliError::Output(format!("OTLP/gRPC server task failed: {e}"))),
    }
    flusher.abort();
    let stats = ingester.flush().await.map_err(|e| CliError::Output(format!("final flush failed (spans stay in the WAL): {e}")))?;
    eprintln!("tracelake serve: stopped; final flush wrote {} span(s) in {} file(s)", stats.rows, stats.files);
    Ok(())
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
