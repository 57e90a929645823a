-- The 20 slowest traces, with their root operation, size and errors (the `traces` view).
SELECT trace_id,
       root_service,
       root_name,
       start_time,
       round(duration_ns / 1e6, 2) AS duration_ms,
       span_count,
       service_count,
       error_count,
       has_orphans
FROM traces
ORDER BY duration_ns DESC, trace_id
LIMIT 20
