-- Daily p99 per service and operation, merged from hourly latency sketches. The inner query
-- is what a rollup job stores (one small sketch per service/operation/hour); sketch_merge
-- combines any set of them later, and sketch_quantile reads a quantile within 0.5 %.
WITH hourly AS (
    SELECT service_name, span_name, date, hour,
           count(*) AS requests,
           latency_sketch(duration_ns) AS sketch
    FROM spans
    WHERE span_kind = 'SERVER'
    GROUP BY service_name, span_name, date, hour
)
SELECT service_name,
       span_name AS operation,
       date,
       sum(requests) AS requests,
       round(sketch_quantile(sketch_merge(sketch), 0.99) / 1e6, 2) AS p99_ms
FROM hourly
GROUP BY service_name, span_name, date
ORDER BY service_name, operation, date
