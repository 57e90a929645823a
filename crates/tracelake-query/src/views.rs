//! The derived views of SPEC.md, as SQL over `spans`.

/// `traces`: one row per trace.
///
/// The root is the span without a parent id when there is exactly one; otherwise (several, or
/// only orphans) the longest span whose parent is not in the trace, ties broken by `span_id`.
/// `has_orphans` is true when some span's parent id names no span of the trace. Both come from
/// the `trace_root` aggregate, in one pass per trace (no self-join).
pub const TRACES_VIEW: &str = r#"
CREATE VIEW traces AS
SELECT trace_id,
       root['service_name'] AS root_service,
       root['span_name'] AS root_name,
       start_time, end_time,
       CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT) AS duration_ns,
       span_count, service_count, error_count,
       root['has_orphans'] AS has_orphans
FROM (
    SELECT trace_id,
           trace_root(span_id, parent_span_id, duration_ns, service_name, span_name) AS root,
           min(start_time) AS start_time,
           max(end_time) AS end_time,
           count(*) AS span_count,
           count(DISTINCT service_name) AS service_count,
           sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS error_count
    FROM spans
    GROUP BY trace_id
)
"#;

/// `service_edges`: the service dependency graph, from parent→child spans that cross a
/// service boundary. Percentiles are exact and interpolated (tracelake's `percentile`, the
/// same definition as DuckDB's `quantile_cont`), over the callee span's duration.
pub const SERVICE_EDGES_VIEW: &str = r#"
CREATE VIEW service_edges AS
SELECT p.service_name AS caller_service,
       c.service_name AS callee_service,
       count(*) AS call_count,
       sum(CASE WHEN c.status_code = 'ERROR' THEN 1 ELSE 0 END) AS error_count,
       percentile(c.duration_ns, 0.5) AS p50_ns,
       percentile(c.duration_ns, 0.95) AS p95_ns,
       percentile(c.duration_ns, 0.99) AS p99_ns
FROM spans c
JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
WHERE c.service_name <> p.service_name
GROUP BY p.service_name, c.service_name
"#;

/// Every view, in creation order.
pub const ALL_VIEWS: &[(&str, &str)] = &[("traces", TRACES_VIEW), ("service_edges", SERVICE_EDGES_VIEW)];
