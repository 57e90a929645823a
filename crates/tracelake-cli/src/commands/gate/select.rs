//! The gate's selection query for one side, and the samples it returns, per scope.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampNanosecondType};
use tracelake_gate::{Sample, ScopeKey};

use crate::cli::GateUnit;
use crate::error::{CliError, Result};

/// What one side selects.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// SQL predicate over `spans` (None: every span).
    pub predicate: Option<String>,
    /// Window start, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Window end, exclusive.
    pub to: Option<DateTime<Utc>>,
}

impl Selection {
    /// One line for the report: predicate and window.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.predicate.clone().unwrap_or_else(|| "all spans".into())];
        let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        match (&self.from, &self.to) {
            (Some(f), Some(t)) => parts.push(format!("[{}, {})", ts(f), ts(t))),
            (Some(f), None) => parts.push(format!("from {}", ts(f))),
            (None, Some(t)) => parts.push(format!("before {}", ts(t))),
            (None, None) => {}
        }
        parts.join(" · ")
    }

    /// The window length in seconds when both ends are given.
    fn window_secs(&self) -> Option<f64> {
        match (self.from, self.to) {
            (Some(f), Some(t)) => Some((t - f).num_nanoseconds().unwrap_or(i64::MAX) as f64 / 1e9),
            _ => None,
        }
    }
}

/// Parses an RFC 3339 timestamp flag.
pub fn parse_time(flag: &str, text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| CliError::Usage(format!("{flag} {text:?} is not an RFC 3339 time like 2026-11-01T00:00:00Z: {e}")))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The side's filter over `spans` (predicate, scope, window), `None` for every span; for the
/// trace unit, `roots` adds the root-span condition.
fn side_filter(selection: &Selection, service: Option<&str>, operation: Option<&str>, roots: bool) -> Option<String> {
    let mut filters = Vec::new();
    if roots {
        filters.push("parent_span_id IS NULL".to_string());
    }
    if let Some(p) = &selection.predicate {
        filters.push(format!("({p})"));
    }
    if let Some(s) = service {
        filters.push(format!("service_name = {}", literal(s)));
    }
    if let Some(o) = operation {
        filters.push(format!("span_name = {}", literal(o)));
    }
    let ts = |t: &DateTime<Utc>| format!("TIMESTAMP {}", literal(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    if let Some(f) = &selection.from {
        filters.push(format!("start_time >= {}", ts(f)));
    }
    if let Some(t) = &selection.to {
        filters.push(format!("start_time < {}", ts(t)));
    }
    (!filters.is_empty()).then(|| filters.join("\n  AND "))
}

const SPAN_COLUMNS: &str = "service_name, span_name, duration_ns, status_code = 'ERROR' AS is_error, start_time";

/// The query of one side: one row per span (or trace) with its scope, duration, error flag
/// and start time.
pub fn selection_sql(unit: GateUnit, selection: &Selection, service: Option<&str>, operation: Option<&str>) -> String {
    match unit {
        GateUnit::Spans => match side_filter(selection, service, operation, false) {
            Some(filter) => format!("SELECT {SPAN_COLUMNS}\nFROM spans\nWHERE {filter}"),
            None => format!("SELECT {SPAN_COLUMNS}\nFROM spans"),
        },
        GateUnit::Traces => format!(
            "WITH roots AS (
  SELECT trace_id,
         first_value(service_name ORDER BY duration_ns DESC, span_id) AS service_name,
         first_value(span_name ORDER BY duration_ns DESC, span_id) AS span_name
  FROM spans
  WHERE {}
  GROUP BY trace_id
),
whole AS (
  SELECT trace_id, min(start_time) AS start_time, max(end_time) AS end_time,
         bool_or(status_code = 'ERROR') AS is_error
  FROM spans
  WHERE trace_id IN (SELECT trace_id FROM roots)
  GROUP BY trace_id
)
SELECT r.service_name, r.span_name,
       CAST(w.end_time AS BIGINT) - CAST(w.start_time AS BIGINT) AS duration_ns,
       w.is_error, w.start_time
FROM roots r JOIN whole w ON r.trace_id = w.trace_id",
            side_filter(selection, service, operation, true).unwrap_or_default()
        ),
    }
}

/// Both sides' spans in one scan (when they read the same source): the rows of either side,
/// flagged `in_baseline` / `in_candidate` (a span may be in both). Halves the time spent
/// decoding attribute maps for predicates like `resource_attributes['service.version'] = …`.
pub fn combined_spans_sql(baseline: &Selection, candidate: &Selection, service: Option<&str>, operation: Option<&str>) -> String {
    let b = side_filter(baseline, service, operation, false).unwrap_or_else(|| "true".into());
    let c = side_filter(candidate, service, operation, false).unwrap_or_else(|| "true".into());
    format!(
        "SELECT {SPAN_COLUMNS},\n  COALESCE({b}, false) AS in_baseline,\n  COALESCE({c}, false) AS in_candidate\nFROM spans\nWHERE ({b})\n  OR ({c})"
    )
}

/// One side's rows, grouped by scope.
#[derive(Debug, Default)]
pub struct SideSamples {
    /// Per scope: durations and error count.
    pub scopes: BTreeMap<ScopeKey, (Vec<i64>, u64)>,
    /// Rows read.
    pub rows: usize,
    /// Earliest and latest start time seen, ns.
    pub observed: Option<(i64, i64)>,
}

impl SideSamples {
    /// Groups `batches` by (service, operation) when `per_operation`, else into `scope`;
    /// with `flag`, only the rows where that boolean column is true.
    pub fn collect(batches: &[RecordBatch], per_operation: bool, scope: &ScopeKey, flag: Option<&str>) -> Result<Self> {
        let mut out = SideSamples::default();
        for batch in batches {
            let column = |name: &str| {
                batch.column_by_name(name).cloned().ok_or_else(|| CliError::Output(format!("selection result has no column {name}")))
            };
            let as_strings = |name: &str| -> Result<_> { Ok(cast(&column(name)?, &DataType::Utf8)?) };
            let durations = cast(&column("duration_ns")?, &DataType::Int64)?;
            let durations = durations.as_primitive::<Int64Type>();
            let errors = cast(&column("is_error")?, &DataType::Boolean)?;
            let errors = errors.as_boolean();
            let starts = cast(&column("start_time")?, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            let starts = starts.as_primitive::<TimestampNanosecondType>();
            let flags = flag.map(|f| Ok::<_, CliError>(cast(&column(f)?, &DataType::Boolean)?)).transpose()?;
            let flags = flags.as_ref().map(|f| f.as_boolean());
            let (services, operations) = if per_operation {
                (Some(as_strings("service_name")?), Some(as_strings("span_name")?))
            } else {
                (None, None)
            };
            for row in 0..batch.num_rows() {
                if durations.is_null(row) || flags.is_some_and(|f| !(f.is_valid(row) && f.value(row))) {
                    continue;
                }
                let key = match (&services, &operations) {
                    (Some(s), Some(o)) => {
                        let text = |a: &std::sync::Arc<dyn Array>| a.as_string::<i32>().is_valid(row).then(|| a.as_string::<i32>().value(row).to_string());
                        ScopeKey { service: text(s), operation: text(o) }
                    }
                    _ => scope.clone(),
                };
                let entry = out.scopes.entry(key).or_default();
                entry.0.push(durations.value(row));
                if errors.is_valid(row) && errors.value(row) {
                    entry.1 += 1;
                }
                if starts.is_valid(row) {
                    let t = starts.value(row);
                    out.observed = Some(out.observed.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
                }
                out.rows += 1;
            }
        }
        Ok(out)
    }

    /// Throughput window: the selection's own if both ends were given, else the observed
    /// first-to-last start (at least 1 s, so a burst does not look infinitely fast).
    pub fn window_secs(&self, selection: &Selection) -> Option<f64> {
        selection.window_secs().or_else(|| self.observed.map(|(lo, hi)| ((hi - lo) as f64 / 1e9).max(1.0)))
    }

    /// Takes one scope's sample (empty if the side has none).
    pub fn take(&mut self, key: &ScopeKey, window_secs: Option<f64>) -> Sample {
        let (durations, errors) = self.scopes.remove(key).unwrap_or_default();
        Sample::new(durations, errors, window_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_sql_quotes_scope_and_window() {
        let sel = Selection {
            predicate: Some("resource_attributes['service.version'] = 'v1'".into()),
            from: Some(parse_time("--from", "2026-11-01T00:00:00Z").unwrap()),
            to: None,
        };
        let sql = selection_sql(GateUnit::Spans, &sel, Some("o'hare"), None);
        assert!(sql.contains("(resource_attributes['service.version'] = 'v1')"), "{sql}");
        assert!(sql.contains("service_name = 'o''hare'"), "{sql}");
        assert!(sql.contains("start_time >= TIMESTAMP '2026-11-01T00:00:00Z'"), "{sql}");
        let both = combined_spans_sql(&sel, &Selection::default(), None, None);
        assert!(both.contains("COALESCE(true, false) AS in_candidate") && both.contains("OR (true)"), "{both}");
        assert!(parse_time("--from", "yesterday").unwrap_err().to_string().contains("RFC 3339"));
    }
}
