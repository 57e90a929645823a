//! Scans by trace id through the trace-id index ([`crate::trace_index`]).
//!
//! When a scan's filters fix `trace_id` to a few literals, [`IndexedLookup`] lists the span
//! files once, asks the index which of them may hold those traces, and plans an ordinary
//! `ListingTable` scan over exactly those files: the file list is handed to DataFusion through
//! the session's list-files cache under a table reference of its own, so partition columns,
//! filter pushdown, bloom filters and statistics work as in every other scan.
//!
//! The session's list-files cache is used only for that hand-off: every scan removes the entry
//! it made right after planning, so each scan still sees the files as they are when it is
//! planned (a long-lived cache would hide new flushes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::catalog::{ScanArgs, Session, TableProvider};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::Result as DfResult;
use datafusion::execution::cache::TableScopedPath;
use datafusion::execution::cache::cache_manager::CachedFileList;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_plan::ExecutionPlan;
use tracelake_schema::schema::{col, spans_schema};

use crate::location::DataLocation;
use crate::trace_index;

/// More ids than this in one `IN` list scan without the index (a join-like workload).
pub const MAX_LOOKUP_IDS: usize = 256;

/// The trace ids a scan's filters fix (`trace_id = 'x'`, `trace_id IN ('x', …)`, in any
/// conjunct), or `None`.
pub fn lookup_trace_ids(filters: &[Expr]) -> Option<Vec<String>> {
    let mut found: Option<Vec<String>> = None;
    for filter in filters {
        if let Some(ids) = ids_of(filter) {
            found = Some(match found {
                // Two conjuncts on trace_id: only ids in both can match.
                Some(prev) => prev.into_iter().filter(|id| ids.contains(id)).collect(),
                None => ids,
            });
        }
    }
    found.filter(|ids| ids.len() <= MAX_LOOKUP_IDS)
}

fn ids_of(filter: &Expr) -> Option<Vec<String>> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => ids_of(left).or_else(|| ids_of(right)),
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) if c.name == col::TRACE_ID => {
                string_literal(v).map(|s| vec![s.to_owned()])
            }
            _ => None,
        },
        Expr::InList(list) if !list.negated => match list.expr.as_ref() {
            Expr::Column(c) if c.name == col::TRACE_ID => list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => string_literal(v).map(str::to_owned),
                    _ => None,
                })
                .collect(),
            _ => None,
        },
        _ => None,
    }
}

/// The text of a string literal (of any Arrow string type, or a dictionary of one).
pub(crate) fn string_literal(value: &ScalarValue) -> Option<&str> {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => Some(s),
        ScalarValue::Dictionary(_, inner) => string_literal(inner),
        _ => None,
    }
}

/// Removes the listing a scan of `url` left in the session's list-files cache.
pub fn forget_listing(state: &dyn Session, url: &ListingTableUrl) {
    if let Some(cache) = state.runtime_env().cache_manager.get_list_files_cache() {
        cache.remove(&TableScopedPath { table: url.get_table_ref().clone(), path: url.prefix().clone() });
    }
}

/// One lookup's view of the `spans` table.
pub struct IndexedLookup<'a> {
    /// The data location.
    pub location: &'a DataLocation,
    /// The `spans` table URL.
    pub url: &'a ListingTableUrl,
    /// The `spans` listing options (format, partition columns).
    pub options: &'a ListingOptions,
}

impl IndexedLookup<'_> {
    /// The scan of the files that may hold `trace_ids`, or `None` when there is no index (or
    /// the session has no list-files cache to hand the files over).
    pub async fn scan(
        &self,
        state: &dyn Session,
        trace_ids: &[String],
        projection: Option<&[usize]>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(cache) = state.runtime_env().cache_manager.get_list_files_cache() else { return Ok(None) };
        let Some(found) = trace_index::lookup(self.location, trace_ids).await.map_err(|e| {
            datafusion::error::DataFusionError::External(Box::new(e))
        })?
        else {
            return Ok(None);
        };
        tracing::debug!(files = found.files.len(), segments = found.segments, uncovered = found.uncovered, "trace index lookup");

        static LOOKUPS: AtomicU64 = AtomicU64::new(0);
        let name = format!("spans_by_trace_id_{}", LOOKUPS.fetch_add(1, Ordering::Relaxed));
        let url = self.url.clone().with_table_ref(TableReference::bare(name));
        let key = TableScopedPath { table: url.get_table_ref().clone(), path: url.prefix().clone() };
        cache.put(&key, CachedFileList::new(found.files));
        let config = ListingTableConfig::new(url.clone()).with_listing_options(self.options.clone()).with_schema(spans_schema());
        let table = ListingTable::try_new(config)?;
        let args = ScanArgs::default().with_projection(projection).with_filters(Some(filters)).with_limit(limit);
        let planned = table.scan_with_args(state, args).await;
        cache.remove(&key);
        Ok(Some(planned?.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col as c, lit};

    #[test]
    fn trace_ids_come_from_equalities_and_in_lists() {
        assert_eq!(lookup_trace_ids(&[c("trace_id").eq(lit("ab"))]), Some(vec!["ab".to_owned()]));
        assert_eq!(lookup_trace_ids(&[lit("ab").eq(c("trace_id"))]), Some(vec!["ab".to_owned()]));
        let both = c("trace_id").in_list(vec![lit("a"), lit("b")], false);
        assert_eq!(lookup_trace_ids(&[c("duration_ns").gt(lit(5)), both.clone()]), Some(vec!["a".into(), "b".into()]));
        // Two conjuncts: only the ids both allow.
        assert_eq!(lookup_trace_ids(&[both, c("trace_id").eq(lit("b"))]), Some(vec!["b".into()]));
        assert_eq!(lookup_trace_ids(&[c("trace_id").in_list(vec![lit("a")], true)]), None);
        assert_eq!(lookup_trace_ids(&[c("span_id").eq(lit("a"))]), None);
        assert_eq!(lookup_trace_ids(&[c("trace_id").eq(lit("a")).or(c("trace_id").eq(lit("b")))]), None);
        let many: Vec<_> = (0..=MAX_LOOKUP_IDS).map(|i| lit(format!("{i}"))).collect();
        assert_eq!(lookup_trace_ids(&[c("trace_id").in_list(many, false)]), None);
    }
}
