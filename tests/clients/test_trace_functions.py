"""Trace functions on a generated workload, checked against DuckDB on the same Parquet files."""
import math

from test_duckdb_oracle import duck


def test_critical_paths_tile_every_root(tracelake, workload):
    # For every trace with exactly one root, the critical-path segments sum to the root's
    # duration — computed independently by DuckDB from the root span.
    ours = dict(
        (row[0], int(row[1]))
        for row in tracelake.sql_csv(
            workload,
            "SELECT trace_id, sum(s['segment_ns']) FROM ("
            " SELECT trace_id, unnest(critical_path_agg(span_id, parent_span_id, start_time, end_time,"
            "   service_name, span_name)) AS s FROM spans GROUP BY trace_id) GROUP BY 1",
        )[1:]
    )
    roots = duck(workload).execute(
        "SELECT trace_id, any_value(duration_ns) FROM spans WHERE parent_span_id IS NULL "
        "GROUP BY trace_id HAVING count(*) = 1"
    ).fetchall()
    assert len(roots) > 1000
    for trace_id, duration in roots:
        assert ours[trace_id] == duration, trace_id


def test_sketch_p99_within_half_a_percent_of_duckdb(tracelake, workload):
    ours = tracelake.sql_csv(
        workload,
        "SELECT service_name, sketch_quantile(sketch_merge(s), 0.99) FROM ("
        " SELECT service_name, hour, latency_sketch(duration_ns) AS s FROM spans GROUP BY 1, 2) "
        "GROUP BY 1 ORDER BY 1",
    )[1:]
    # The sketch estimates the value at rank floor(q·(n−1)), i.e. quantile_disc's lower neighbour.
    theirs = duck(workload).execute(
        "SELECT service_name, list_sort(list(duration_ns)) FROM spans GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert len(ours) == len(theirs) > 5
    for (svc, est), (dsvc, values) in zip(ours, theirs):
        exact = values[math.floor(0.99 * (len(values) - 1))]
        assert svc == dsvc
        assert abs(float(est) - exact) <= 0.005 * exact + 1e-6, (svc, est, exact)


def test_self_time_totals_are_consistent(tracelake, workload):
    # Self time never exceeds the span's duration, and per trace the total self time is at
    # least the root's duration (every instant belongs to some deepest span).
    rows = tracelake.sql_csv(
        workload,
        "WITH st AS (SELECT trace_id, unnest(self_time_agg(span_id, parent_span_id, start_time, end_time,"
        "  service_name, span_name)) AS s FROM spans GROUP BY trace_id) "
        "SELECT count(*), sum(CASE WHEN s['self_time_ns'] < 0 THEN 1 ELSE 0 END) FROM st",
    )[1]
    assert int(rows[0]) == 100_000 and int(rows[1]) == 0
