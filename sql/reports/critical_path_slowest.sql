-- Where the slowest 1 % of one operation's traces spend their critical path, by service.
-- The operation is the root span (service, name); change the two literals for yours.
-- critical_path_agg gives each trace's critical-path segments (they tile the root span), so
-- critical_ms adds up to the total duration of the slow traces.
WITH roots AS (
    SELECT trace_id, duration_ns FROM spans
    WHERE parent_span_id IS NULL AND service_name = 'frontend' AND span_name = 'POST /checkout'
),
slowest AS (
    SELECT trace_id FROM roots
    WHERE duration_ns >= (SELECT percentile(duration_ns, 0.99) FROM roots)
),
segments AS (
    SELECT unnest(critical_path_agg(s.span_id, s.parent_span_id, s.start_time, s.end_time,
                                    s.service_name, s.span_name)) AS seg
    FROM spans s JOIN slowest ON s.trace_id = slowest.trace_id
    GROUP BY s.trace_id
)
SELECT seg['service_name'] AS service_name,
       count(*) AS segments,
       round(sum(seg['segment_ns']) / 1e6, 3) AS critical_ms,
       round(100.0 * sum(seg['segment_ns']) / sum(sum(seg['segment_ns'])) OVER (), 1) AS critical_pct
FROM segments
GROUP BY seg['service_name']
ORDER BY critical_ms DESC, service_name
