//! `tracelake serve`: OTLP/gRPC and OTLP/HTTP ingest with a write-ahead log, periodic flushes to Parquet, and
//! a graceful shutdown (SIGTERM/SIGINT: stop accepting, flush everything, exit 0).
//!
//! Issue #4 is in progress: Flight SQL and the HTTP query API join this verb next.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tracelake_ingest::grpc::otlp_grpc_service;
use tracelake_ingest::http::otlp_http_router;
use tracelake_ingest::{Ingester, WalConfig};
use tracelake_store::DataLocation;

use crate::cli::ServeArgs;
use crate::error::{CliError, Result};

/// Runs `tracelake serve`.
pub async fn run(args: ServeArgs) -> Result<()> {
    let location = DataLocation::open(&args.data.data)?;
    let wal_dir = match (&args.wal_dir, location.is_local()) {
        (Some(dir), _) => dir.clone(),
        (None, true) => std::path::Path::new(&args.data.data).join("wal"),
        (None, false) => return Err(CliError::Usage("--wal-dir is required when --data is not a local directory".into())),
    };
    let ingester = Arc::new(
        Ingester::open(location.clone(), WalConfig::new(&wal_dir))
            .await
            .map_err(|e| CliError::Usage(format!("cannot open the write-ahead log in {}: {e}", wal_dir.display())))?,
    );
    let ready = Arc::new(AtomicBool::new(false));
    let app = Router::new()
        .merge(otlp_http_router(Arc::clone(&ingester), args.max_request_bytes))
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
        );
    let listener = tokio::net::TcpListener::bind(&args.otlp_http_addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.otlp_http_addr)))?;
    let grpc_listener = tokio::net::TcpListener::bind(&args.otlp_grpc_addr)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.otlp_grpc_addr)))?;
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
        .add_service(otlp_grpc_service(Arc::clone(&ingester), args.max_request_bytes))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            stopped(stop_rx.clone()),
        );
    let grpc = tokio::spawn(grpc);
    let flusher = tokio::spawn(flush_loop(Arc::clone(&ingester), Duration::from_secs(args.flush_interval_secs.max(1)), args.flush_rows));
    ready.store(true, Ordering::SeqCst);
    eprintln!(
        "tracelake serve: OTLP/gRPC on {}, OTLP/HTTP on http://{}/v1/traces, data {location}, WAL {} ({} spans recovered)",
        args.otlp_grpc_addr,
        args.otlp_http_addr,
        wal_dir.display(),
        ingester.buffered_rows()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped(stop_rx))
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

async fn flush_loop(ingester: Arc<Ingester>, interval: Duration, max_rows: usize) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last.elapsed() >= interval || ingester.buffered_rows() >= max_rows {
            if let Err(e) = ingester.flush().await {
                // The spans stay in the WAL and the buffer; the next round retries.
                tracing::error!(error = %e, "flush failed; will retry");
            }
            last = tokio::time::Instant::now();
        }
    }
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
