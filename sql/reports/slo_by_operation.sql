-- SLO report: request count, latency percentiles (exact, interpolated like DuckDB's
-- quantile_cont) and error rate per service and operation, over server spans.
-- Usage: tracelake sql --data DIR "$(cat sql/reports/slo_by_operation.sql)"
SELECT service_name,
       span_name AS operation,
       count(*) AS requests,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 2) AS p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 2) AS p95_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e6, 2) AS p99_ms,
       round(100.0 * sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) / count(*), 2) AS error_pct
FROM spans
WHERE span_kind = 'SERVER'
GROUP BY service_name, span_name
ORDER BY service_name, operation
