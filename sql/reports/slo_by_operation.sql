-- SLO report: request count, latency percentiles (percentile(): exact, interpolated like
-- DuckDB's quantile_cont) and error rate per service and operation, over server spans.
-- Usage: tracelake sql --data DIR "$(cat sql/reports/slo_by_operation.sql)"
SELECT service_name,
       span_name AS operation,
       count(*) AS requests,
       round(percentile(duration_ns, 0.50) / 1e6, 2) AS p50_ms,
       round(percentile(duration_ns, 0.95) / 1e6, 2) AS p95_ms,
       round(percentile(duration_ns, 0.99) / 1e6, 2) AS p99_ms,
       round(100.0 * sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) / count(*), 2) AS error_pct
FROM spans
WHERE span_kind = 'SERVER'
GROUP BY service_name, span_name
ORDER BY service_name, operation
