-- SLO table per service, operation and hour: the building block of SLO dashboards.
-- Restrict the window with a start_time predicate; it also prunes partitions, e.g.
--   WHERE span_kind = 'SERVER' AND start_time >= TIMESTAMP '2026-11-01 00:00:00Z'
SELECT service_name,
       span_name AS operation,
       date_trunc('hour', start_time) AS hour_start,
       count(*) AS requests,
       percentile(duration_ns, 0.50) AS p50_ns,
       percentile(duration_ns, 0.95) AS p95_ns,
       percentile(duration_ns, 0.99) AS p99_ns,
       sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) * 1.0 / count(*) AS error_rate
FROM spans
WHERE span_kind = 'SERVER'
GROUP BY service_name, span_name, date_trunc('hour', start_time)
ORDER BY service_name, operation, hour_start
