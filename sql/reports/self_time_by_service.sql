-- Where does time go, by service: self time (a span's duration minus the time covered by its
-- children) summed per service, over all traces. Add a start_time predicate to the inner
-- query to restrict the window (it prunes partitions).
SELECT st['service_name'] AS service_name,
       count(*) AS spans,
       round(sum(st['self_time_ns']) / 1e6, 1) AS self_ms,
       round(100.0 * sum(st['self_time_ns']) / sum(sum(st['self_time_ns'])) OVER (), 1) AS self_pct
FROM (
    SELECT unnest(self_time_agg(span_id, parent_span_id, start_time, end_time, service_name, span_name)) AS st
    FROM spans
    GROUP BY trace_id
)
GROUP BY st['service_name']
ORDER BY self_ms DESC, service_name
