//! Cancellation that works inside long-running operators.
//!
//! Dropping a DataFusion stream cancels a query only when the task driving it gets control
//! back, and a timer can fire only between polls. Some operators never give control back for a
//! long time: a cross join feeding `count(*)` produces batch after batch within one poll of the
//! aggregate (measured: a 20,000³-row cross join kept two cores busy for minutes past its
//! timeout). [`with_deadline`] therefore wraps every node of the physical plan in a
//! [`DeadlineExec`] that checks the deadline and the cancel flag on every batch it passes on and
//! fails the query when either is hit — so the operator loop above it ends within one batch.
//!
//! What this cannot stop is one long step inside a single operator that emits nothing — a
//! nested-loop join whose filter rejects almost every pair loops internally. The engine runs
//! queries on their own thread pool and answers the client at the deadline anyway; such a
//! step keeps one query thread busy until it returns, then the query stops.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, RecordBatchStream};
use futures::Stream;

use crate::error::QueryError;

/// When a query must stop: at `deadline`, or as soon as `cancelled` is set.
#[derive(Debug, Clone)]
pub struct StopSignal {
    deadline: Instant,
    timeout: Duration,
    cancelled: Arc<AtomicBool>,
}

impl StopSignal {
    /// Stops `timeout` from now (or when cancelled).
    pub fn new(timeout: Duration) -> Self {
        Self { deadline: Instant::now() + timeout, timeout, cancelled: Arc::new(AtomicBool::new(false)) }
    }

    /// Asks every wrapped operator to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    fn check(&self) -> Result<()> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(DataFusionError::External(Box::new(QueryError::Cancelled)));
        }
        if Instant::now() >= self.deadline {
            return Err(DataFusionError::External(Box::new(QueryError::Timeout(self.timeout))));
        }
        Ok(())
    }
}

/// `plan` with every node wrapped in a [`DeadlineExec`].
pub fn with_deadline(plan: Arc<dyn ExecutionPlan>, stop: &StopSignal) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| Ok(Transformed::yes(Arc::new(DeadlineExec { input: node, stop: stop.clone() }) as _)))
        .map(|t| t.data)
}

/// Passes its input's batches through, failing once the query must stop.
#[derive(Debug)]
pub struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    stop: StopSignal,
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeadlineExec")
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| DataFusionError::Internal("DeadlineExec needs one child".into()))?;
        Ok(Arc::new(DeadlineExec { input, stop: self.stop.clone() }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.stop.check()?;
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(DeadlineStream { input, stop: self.stop.clone() }))
    }
}

struct DeadlineStream {
    input: SendableRecordBatchStream,
    stop: StopSignal,
}

impl Stream for DeadlineStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Err(e) = self.stop.check() {
            return Poll::Ready(Some(Err(e)));
        }
        self.input.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
