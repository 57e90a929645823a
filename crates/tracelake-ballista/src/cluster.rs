//! A Ballista scheduler and executors with tracelake's functions registered.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::SessionState;
use datafusion::prelude::SessionConfig;
use tracelake_store::dedicated::DedicatedColumnFilters;

use crate::codec::TracelakeLogicalCodec;

/// Ballista's default session with tracelake's functions and analyzer rules added.
pub fn session_state(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let mut state = default_session_builder(config)?;
    tracelake_udfs::register_all(&mut state)?;
    state.add_analyzer_rule(Arc::new(DedicatedColumnFilters));
    Ok(state)
}

/// Runs a scheduler on `addr` until the process is stopped.
pub async fn run_scheduler(addr: SocketAddr) -> ballista_core::error::Result<()> {
    let config = Arc::new(SchedulerConfig {
        bind_host: addr.ip().to_string(),
        external_host: addr.ip().to_string(),
        bind_port: addr.port(),
        override_session_builder: Some(Arc::new(session_state)),
        override_logical_codec: Some(Arc::new(TracelakeLogicalCodec::default())),
        ..Default::default()
    });
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, addr, config).await
}

/// Where an executor listens and which scheduler it joins.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// Host to bind and advertise.
    pub host: String,
    /// Arrow Flight port (shuffle data).
    pub flight_port: u16,
    /// gRPC port (tasks from the scheduler).
    pub grpc_port: u16,
    /// The scheduler's host and port.
    pub scheduler: (String, u16),
    /// Tasks run at once.
    pub vcores: usize,
    /// Directory for shuffle files.
    pub work_dir: String,
}

/// Runs an executor until the process is stopped.
pub async fn run_executor(settings: ExecutorSettings) -> ballista_core::error::Result<()> {
    let state = session_state(SessionConfig::default())?;
    let config = ExecutorProcessConfig {
        bind_host: settings.host.clone(),
        external_host: Some(settings.host),
        port: settings.flight_port,
        grpc_port: settings.grpc_port,
        scheduler_host: settings.scheduler.0,
        scheduler_port: settings.scheduler.1,
        vcores: settings.vcores,
        work_dir: Some(settings.work_dir),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_logical_codec: Some(Arc::new(TracelakeLogicalCodec::default())),
        ..Default::default()
    };
    start_executor_process(Arc::new(config)).await
}
