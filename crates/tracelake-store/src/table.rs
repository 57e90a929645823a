//! The `spans` table provider: a DataFusion `ListingTable` over the partition layout, plus
//! partition pruning derived from predicates on ordinary columns.
//!
//! Users filter on `service_name` and `start_time`, not on the partition columns. Before the
//! scan, [`SpansTable`] adds the partition predicates those filters imply
//! (`service_name = 'x'` ⇒ `service = 'x'`; `start_time >= T` ⇒ `date`/`hour` at or after T's
//! hour), so only the matching directories are listed and read. Derived predicates are always
//! implied by the original ones, so results never change.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Timelike};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, col, lit};
use datafusion::config::TableParquetOptions;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use tracelake_schema::schema::{col as c, spans_schema};

use crate::compaction::manifest;
use crate::fresh::{FreshSpans, hide_files, listed_stems, memory_plan, with_partition_columns};
use crate::lookup::{IndexedLookup, forget_listing, lookup_trace_ids};
use crate::layout::FILE_EXTENSION;
use crate::location::DataLocation;

/// Partition columns of `spans`, in directory order, with their SQL types. `hour` is a
/// zero-padded string (`'07'`) so that an equality on it matches the directory name exactly.
pub fn partition_columns() -> Vec<(String, DataType)> {
    vec![
        (c::DATE.to_owned(), DataType::Date32),
        (c::HOUR.to_owned(), DataType::Utf8),
        (c::SERVICE.to_owned(), DataType::Utf8),
    ]
}

/// The `spans` table of one data location, optionally with spans not yet in Parquet.
#[derive(Debug)]
pub struct SpansTable {
    inner: ListingTable,
    fresh: Option<Arc<dyn FreshSpans>>,
    location: DataLocation,
    url: ListingTableUrl,
    options: ListingOptions,
}

impl SpansTable {
    /// Opens the `spans` table of `location`, reading Parquet with `parquet_options`
    /// (normally the session's, so that settings like `pushdown_filters` apply).
    pub fn try_new(location: &DataLocation, parquet_options: TableParquetOptions) -> DfResult<Self> {
        let url = ListingTableUrl::parse(location.spans_url())?;
        let format = ParquetFormat::default().with_options(parquet_options);
        let options = ListingOptions::new(Arc::new(format))
            .with_file_extension(FILE_EXTENSION)
            .with_table_partition_cols(partition_columns());
        let config = ListingTableConfig::new(url.clone()).with_listing_options(options.clone()).with_schema(spans_schema());
        Ok(Self { inner: ListingTable::try_new(config)?, fresh: None, location: location.clone(), url, options })
    }

    /// The data location this table reads.
    pub fn location(&self) -> &DataLocation {
        &self.location
    }

    /// Also shows the spans of `fresh` (an ingest buffer), each exactly once.
    pub fn with_fresh(mut self, fresh: Arc<dyn FreshSpans>) -> Self {
        self.fresh = Some(fresh);
        self
    }
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(|p| p.as_slice()))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(&self, state: &dyn Session, args: ScanArgs<'a>) -> DfResult<ScanResult> {
        let filters = args.filters().unwrap_or(&[]);
        let mut all = filters.to_vec();
        all.extend(filters.iter().flat_map(implied_partition_filters));
        let projection = args.projection();
        let limit = args.limit();
        // Snapshot before listing (see `fresh`): files of later flushes are left out.
        let snapshot = self.fresh.as_ref().map(|fresh| fresh.snapshot());
        let parquet = self.parquet_scan(state, projection, &all, limit).await?;
        let (Some(fresh), Some(snapshot)) = (&self.fresh, snapshot) else {
            return Ok(ScanResult::new(parquet));
        };
        let parquet = hide_files(parquet, &fresh.files_flushed_after(snapshot.flush_mark)?)?;
        if snapshot.batches.is_empty() {
            return Ok(ScanResult::new(parquet));
        }
        let table_schema = self.inner.schema();
        let batches = snapshot
            .batches
            .iter()
            .map(|b| with_partition_columns(b, &table_schema))
            .collect::<DfResult<Vec<_>>>()?;
        let memory = memory_plan(state, &table_schema, batches, &all, projection)?;
        Ok(ScanResult::new(UnionExec::try_new(vec![parquet, memory])?))
    }
}

impl SpansTable {
    /// The scan of the Parquet files: through the trace-id index when the filters fix the
    /// trace ids, otherwise of every file the partition filters leave.
    async fn parquet_scan(
        &self,
        state: &dyn Session,
        projection: Option<&[usize]>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let Some(ids) = lookup_trace_ids(filters) {
            let lookup = IndexedLookup { location: &self.location, url: &self.url, options: &self.options };
            match lookup.scan(state, &ids, projection, filters, limit).await {
                Ok(Some(plan)) => return self.hide_compacted(plan).await,
                Ok(None) => {}
                Err(e) => tracing::warn!("trace index lookup failed, scanning without it: {e}"),
            }
        }
        let args = ScanArgs::default().with_projection(projection).with_filters(Some(filters)).with_limit(limit);
        let plan = self.inner.scan_with_args(state, args).await?.into_inner();
        forget_listing(state, &self.url);
        self.hide_compacted(plan).await
    }

    /// `plan` without the files that a compacted file in it replaces ([`crate::compaction`]).
    async fn hide_compacted(&self, plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let manifests = manifest::read_all(&self.location).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        if manifests.is_empty() {
            return Ok(plan);
        }
        hide_files(plan.clone(), &manifest::hidden_stems(&manifests, &listed_stems(&plan)))
    }
}

/// Partition predicates implied by one filter (empty if it implies none).
pub fn implied_partition_filters(filter: &Expr) -> Vec<Expr> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let mut out = implied_partition_filters(left);
            out.extend(implied_partition_filters(right));
            out
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(column), Expr::Literal(value, _)) => from_comparison(&column.name, *op, value),
            (Expr::Literal(value, _), Expr::Column(column)) => match op.swap() {
                Some(op) => from_comparison(&column.name, op, value),
                None => vec![],
            },
            _ => vec![],
        },
        Expr::Between(Between { expr, negated: false, low, high }) => match (expr.as_ref(), low.as_ref(), high.as_ref()) {
            (Expr::Column(column), Expr::Literal(lo, _), Expr::Literal(hi, _)) => {
                let mut out = from_comparison(&column.name, Operator::GtEq, lo);
                out.extend(from_comparison(&column.name, Operator::LtEq, hi));
                out
            }
            _ => vec![],
        },
        Expr::InList(list) if !list.negated => match list.expr.as_ref() {
            Expr::Column(column) if column.name == c::SERVICE_NAME => {
                let values: Option<Vec<Expr>> = list
                    .list
                    .iter()
                    .map(|e| match e {
                        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => {
                            Some(lit(s.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                values.map(|v| vec![col(c::SERVICE).in_list(v, false)]).unwrap_or_default()
            }
            _ => vec![],
        },
        _ => vec![],
    }
}

fn from_comparison(column: &str, op: Operator, value: &ScalarValue) -> Vec<Expr> {
    match column {
        c::SERVICE_NAME if op == Operator::Eq => match value {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
                vec![col(c::SERVICE).eq(lit(s.clone()))]
            }
            _ => vec![],
        },
        c::START_TIME => {
            let Some(nanos) = timestamp_nanos(value) else { return vec![] };
            let t = DateTime::from_timestamp_nanos(nanos);
            let date = lit(ScalarValue::Date32(Some(days_since_epoch(nanos))));
            let hour = lit(format!("{:02}", t.hour()));
            let same_day = |hour_op: Operator| {
                col(c::DATE).eq(date.clone()).and(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(col(c::HOUR)),
                    hour_op,
                    Box::new(hour.clone()),
                )))
            };
            match op {
                Operator::Gt | Operator::GtEq => vec![
                    col(c::DATE).gt_eq(date.clone()),
                    col(c::DATE).gt(date.clone()).or(same_day(Operator::GtEq)),
                ],
                Operator::Lt | Operator::LtEq => {
                    // `start_time < T` with T exactly on an hour boundary excludes T's hour.
                    let on_boundary = nanos.rem_euclid(3_600_000_000_000) == 0;
                    let hour_op = if op == Operator::Lt && on_boundary { Operator::Lt } else { Operator::LtEq };
                    vec![col(c::DATE).lt_eq(date.clone()), col(c::DATE).lt(date.clone()).or(same_day(hour_op))]
                }
                Operator::Eq => vec![col(c::DATE).eq(date), col(c::HOUR).eq(hour)],
                _ => vec![],
            }
        }
        _ => vec![],
    }
}

fn timestamp_nanos(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn days_since_epoch(nanos: i64) -> i32 {
    nanos.div_euclid(86_400_000_000_000) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(nanos: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(Some(nanos), Some("UTC".into())))
    }

    #[test]
    fn service_equality_implies_service_partition() {
        let f = col("service_name").eq(lit("cart"));
        assert_eq!(implied_partition_filters(&f), vec![col("service").eq(lit("cart"))]);
        let f = col("service_name").in_list(vec![lit("a"), lit("b")], false);
        assert_eq!(implied_partition_filters(&f), vec![col("service").in_list(vec![lit("a"), lit("b")], false)]);
        assert!(implied_partition_filters(&col("service_name").not_eq(lit("a"))).is_empty());
    }

    #[test]
    fn time_range_implies_date_and_hour() {
        // 2018-12-13T14:51:00Z = 17878 days after the epoch
        let t = 1_544_712_660_000_000_000;
        let out = implied_partition_filters(&col("start_time").gt_eq(ts(t)));
        let day = lit(ScalarValue::Date32(Some(17878)));
        assert_eq!(out[0], col("date").gt_eq(day.clone()));
        assert_eq!(out[1], col("date").gt(day.clone()).or(col("date").eq(day).and(col("hour").gt_eq(lit("14")))));
        // Mirrored literal: T > start_time is start_time < T.
        let mirrored = implied_partition_filters(&ts(t).gt(col("start_time")));
        assert_eq!(mirrored[0], col("date").lt_eq(lit(ScalarValue::Date32(Some(17878)))));
    }

    #[test]
    fn strict_upper_bound_on_an_hour_boundary_excludes_that_hour() {
        // 2018-12-13T14:00:00Z
        let t = 1_544_709_600_000_000_000;
        let day = lit(ScalarValue::Date32(Some(17878)));
        let lt = implied_partition_filters(&col("start_time").lt(ts(t)));
        assert_eq!(lt[1], col("date").lt(day.clone()).or(col("date").eq(day.clone()).and(col("hour").lt(lit("14")))));
        let lt_eq = implied_partition_filters(&col("start_time").lt_eq(ts(t)));
        assert_eq!(lt_eq[1], col("date").lt(day.clone()).or(col("date").eq(day.clone()).and(col("hour").lt_eq(lit("14")))));
        let off_boundary = implied_partition_filters(&col("start_time").lt(ts(t + 1)));
        assert_eq!(off_boundary[1], col("date").lt(day.clone()).or(col("date").eq(day).and(col("hour").lt_eq(lit("14")))));
    }

    #[test]
    fn other_predicates_imply_nothing() {
        assert!(implied_partition_filters(&col("duration_ns").gt(lit(5))).is_empty());
        assert!(implied_partition_filters(&col("start_time").not_eq(ts(0))).is_empty());
    }
}
