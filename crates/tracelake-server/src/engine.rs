//! [`QueryEngine`]: the one place where a front end's SQL becomes a result stream — read-only
//! policy, `?` placeholders, parameters, a per-query memory pool, a timeout that cancels
//! execution, and a concurrency limit with a bounded queue. Flight SQL and HTTP both use it, so
//! both enforce the same rules.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::RecordBatchStream;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracelake_query::{QueryPolicy, SessionBuilder, SessionOptions};

use crate::deadline::{StopSignal, with_deadline};
use crate::error::QueryError;
use crate::metrics::QueryMetrics;
use crate::placeholders::number_question_marks;

/// Limits every query runs under.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Memory a query may use; spilling operators spill beyond it, others fail clearly.
    pub memory_bytes: usize,
    /// Wall time from the start of execution; the query is cancelled after it.
    pub timeout: Duration,
    /// Queries executing at once.
    pub max_concurrent: usize,
    /// Queries waiting for a slot; beyond this the server answers "busy".
    pub max_queued: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { memory_bytes: 1 << 30, timeout: Duration::from_secs(60), max_concurrent: 4, max_queued: 64 }
    }
}

/// Where a request's sessions come from: the tenant (`X-Scope-OrgID`, `None` if absent)
/// decides the data location and the ingest buffer the `spans` table shows.
#[async_trait::async_trait]
pub trait SessionSource: Send + Sync + std::fmt::Debug {
    /// Sessions for a request of `org_id`; an invalid org id is [`QueryError::InvalidSql`].
    async fn sessions(&self, org_id: Option<&str>) -> Result<SessionBuilder, QueryError>;
}

/// One data location for every request (tenants disabled: `X-Scope-OrgID` is ignored).
#[async_trait::async_trait]
impl SessionSource for SessionBuilder {
    async fn sessions(&self, _org_id: Option<&str>) -> Result<SessionBuilder, QueryError> {
        Ok(self.clone())
    }
}

/// Runs SQL from network clients. Queries execute on their own thread pool, so a query that
/// keeps its threads busy never delays ingest or the answers of the servers.
#[derive(Debug)]
pub struct QueryEngine {
    runtime: Option<tokio::runtime::Runtime>,
    sessions: Arc<dyn SessionSource>,
    limits: QueryLimits,
    slots: Arc<Semaphore>,
    queued: std::sync::atomic::AtomicUsize,
    metrics: Arc<QueryMetrics>,
}

/// A query that has been planned (and checked) but not run.
pub struct PlannedQuery {
    ctx: SessionContext,
    plan: LogicalPlan,
}

impl std::fmt::Debug for PlannedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedQuery").field("plan", &self.plan).finish_non_exhaustive()
    }
}

impl PlannedQuery {
    /// The schema of the result.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.plan.schema().as_arrow().clone())
    }

    /// The query with `params` bound to `$1`, `$2`, … (types checked).
    pub fn bind(self, params: Vec<ScalarValue>) -> Result<Self, QueryError> {
        let plan = self.plan.with_param_values(ParamValues::from(params)).map_err(QueryError::from)?;
        Ok(Self { ctx: self.ctx, plan })
    }

    /// Parameters the query expects (`$1`, `$2`, … in order) and their types where known.
    pub fn parameters(&self) -> Result<Vec<(String, Option<datafusion::arrow::datatypes::DataType>)>, QueryError> {
        let mut params: Vec<_> = self.plan.get_parameter_types().map_err(QueryError::from)?.into_iter().collect();
        params.sort_by_key(|(name, _)| name.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX));
        Ok(params)
    }
}

impl QueryEngine {
    /// An engine over the sessions `sessions` gives.
    pub fn new(sessions: Arc<dyn SessionSource>, limits: QueryLimits) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("tracelake-query")
            .enable_all()
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot start the query thread pool; queries share the server's"))
            .ok();
        Self {
            runtime,
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            sessions,
            limits,
            queued: std::sync::atomic::AtomicUsize::new(0),
            metrics: Arc::new(QueryMetrics::default()),
        }
    }

    fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().map_or_else(tokio::runtime::Handle::current, |r| r.handle().clone())
    }

    /// The limits.
    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// Query counters, for `/metrics`.
    pub fn metrics(&self) -> &Arc<QueryMetrics> {
        &self.metrics
    }

    /// A fresh session with the per-query memory limit (each query gets its own pool).
    async fn session(&self, org_id: Option<&str>) -> Result<SessionContext, QueryError> {
        let options = SessionOptions { memory_limit: Some(self.limits.memory_bytes), ..SessionOptions::default() };
        self.sessions
            .sessions(org_id)
            .await?
            .with_options(options)
            .build()
            .await
            .map_err(|e| QueryError::Internal(format!("cannot open a query session: {e}")))
    }

    /// A session for catalog metadata (tables, schemas).
    pub async fn metadata_session(&self, org_id: Option<&str>) -> Result<SessionContext, QueryError> {
        self.session(org_id).await
    }

    /// Parses, checks (read-only) and plans `sql`; `?` placeholders become `$1`, `$2`, ….
    pub async fn plan(&self, org_id: Option<&str>, sql: &str) -> Result<PlannedQuery, QueryError> {
        let started = Instant::now();
        let result = async {
            let sql = number_question_marks(sql)?;
            let ctx = self.session(org_id).await?;
            let frame = QueryPolicy::ReadOnly.plan(&ctx, &sql).await.map_err(QueryError::from_query_error)?;
            let plan = frame.into_unoptimized_plan();
            Ok(PlannedQuery { ctx, plan })
        }
        .await;
        if result.is_err() {
            self.metrics.record(started.elapsed(), result.as_ref().err());
        }
        result
    }

    /// Runs a planned query with `params` bound, within the limits. The returned stream holds
    /// the query's concurrency slot until it is dropped.
    pub async fn execute(&self, query: PlannedQuery, params: Vec<ScalarValue>) -> Result<QueryStream, QueryError> {
        let started = Instant::now();
        let result = self.execute_inner(query, params, started).await;
        if let Err(e) = &result {
            self.metrics.record(started.elapsed(), Some(e));
        }
        result
    }

    async fn execute_inner(
        &self,
        query: PlannedQuery,
        params: Vec<ScalarValue>,
        started: Instant,
    ) -> Result<QueryStream, QueryError> {
        let PlannedQuery { ctx, plan } = if params.is_empty() { query } else { query.bind(params)? };
        let permit = self.acquire_slot().await?;
        let deadline = tokio::time::Instant::now() + self.limits.timeout;
        let stop = StopSignal::new(self.limits.timeout);
        // The query runs on the query runtime and sends its batches here: whatever its operators
        // do, this side can always give up at the deadline.
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        let (batch_tx, batches) = tokio::sync::mpsc::channel(2);
        let task_stop = stop.clone();
        let task = self.runtime().spawn(async move {
            let started = async {
                let frame = ctx.execute_logical_plan(plan).await?;
                let task_ctx = Arc::new(frame.task_ctx());
                let physical = with_deadline(frame.create_physical_plan().await?, &task_stop)?;
                datafusion::physical_plan::execute_stream(physical, task_ctx)
            };
            let mut stream = match started.await {
                Ok(stream) => {
                    let _ = schema_tx.send(Ok(stream.schema()));
                    stream
                }
                Err(e) => {
                    let _ = schema_tx.send(Err(e));
                    return;
                }
            };
            while let Some(item) = stream.next().await {
                if batch_tx.send(item).await.is_err() {
                    return; // the reader went away
                }
            }
        });
        let schema = match tokio::time::timeout_at(deadline, schema_rx).await {
            Ok(Ok(Ok(schema))) => schema,
            Ok(Ok(Err(e))) => return Err(QueryError::from_execution_error(e, self.limits)),
            Ok(Err(_)) => return Err(QueryError::Internal("the query task ended before it started".into())),
            Err(_) => {
                stop.cancel();
                task.abort();
                return Err(QueryError::Timeout(self.limits.timeout));
            }
        };
        Ok(QueryStream {
            schema,
            batches,
            task,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            limits: self.limits,
            _permit: permit,
            stop,
            metrics: Arc::clone(&self.metrics),
            started,
            finished: false,
        })
    }

    async fn acquire_slot(&self) -> Result<OwnedSemaphorePermit, QueryError> {
        use std::sync::atomic::Ordering::SeqCst;
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        if self.queued.fetch_add(1, SeqCst) >= self.limits.max_queued {
            self.queued.fetch_sub(1, SeqCst);
            return Err(QueryError::Busy { running: self.limits.max_concurrent, queued: self.limits.max_queued });
        }
        let waited = tokio::time::timeout(self.limits.timeout, Arc::clone(&self.slots).acquire_owned()).await;
        self.queued.fetch_sub(1, SeqCst);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(QueryError::Internal("the query slots were closed".into())),
            Err(_) => Err(QueryError::Busy { running: self.limits.max_concurrent, queued: self.limits.max_queued }),
        }
    }

    /// Plans and runs `sql` in one step (no parameters).
    pub async fn run(&self, org_id: Option<&str>, sql: &str) -> Result<QueryStream, QueryError> {
        let planned = self.plan(org_id, sql).await?;
        self.execute(planned, Vec::new()).await
    }
}

/// A running query's results. Ends with [`QueryError::Timeout`] when the time limit passes;
/// dropping it cancels the query.
pub struct QueryStream {
    schema: SchemaRef,
    batches: tokio::sync::mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
    task: tokio::task::JoinHandle<()>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limits: QueryLimits,
    _permit: OwnedSemaphorePermit,
    stop: StopSignal,
    metrics: Arc<QueryMetrics>,
    started: Instant,
    finished: bool,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl QueryStream {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn finish(&mut self, error: Option<&QueryError>) {
        if !self.finished {
            self.finished = true;
            self.metrics.record(self.started.elapsed(), error);
        }
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, QueryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let error = QueryError::Timeout(self.limits.timeout);
            self.finish(Some(&error));
            return Poll::Ready(Some(Err(error)));
        }
        match self.batches.poll_recv(cx) {
            Poll::Ready(Some(Ok(batch))) => Poll::Ready(Some(Ok(batch))),
            Poll::Ready(Some(Err(e))) => {
                let error = QueryError::from_execution_error(e, self.limits);
                self.finish(Some(&error));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        // Operators stop at their next batch; the task at its next await.
        self.stop.cancel();
        self.task.abort();
        // A client that went away mid-stream: count the query, cancelled by the drop.
        self.finish(Some(&QueryError::Cancelled));
    }
}

/// Converts a stream's errors to DataFusion's, for APIs that want a `RecordBatchStream`.
pub fn into_record_batch_stream(stream: QueryStream) -> SendableRecordBatchStream {
    struct Adapter(QueryStream);
    impl Stream for Adapter {
        type Item = Result<RecordBatch, DataFusionError>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Pin::new(&mut self.0).poll_next(cx).map(|o| o.map(|r| r.map_err(|e| DataFusionError::External(Box::new(e)))))
        }
    }
    impl RecordBatchStream for Adapter {
        fn schema(&self) -> SchemaRef {
            self.0.schema()
        }
    }
    Box::pin(Adapter(stream))
}

impl Drop for QueryEngine {
    fn drop(&mut self) {
        // Dropping a runtime blocks; from async code it must not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
