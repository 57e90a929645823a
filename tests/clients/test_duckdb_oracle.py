"""DuckDB, reading the very Parquet files tracelake wrote, is the oracle for tracelake's answers."""
import math

import duckdb
import pytest


def duck(data):
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW spans AS SELECT * FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning = true)"
    )
    return con


def test_count_matches_exactly(tracelake, workload):
    rows = tracelake.sql_csv(workload, "SELECT count(*) AS n FROM spans")
    assert rows[0] == ["n"]
    assert int(rows[1][0]) == 100_000
    assert duck(workload).execute("SELECT count(*) FROM spans").fetchone()[0] == 100_000


# tracelake's percentile() is exact and interpolates like DuckDB's quantile_cont, so the two
# agree to the last bits of a double. (DataFusion's own percentile_cont quantizes the
# interpolation weight to 1e-6 and can be off by tens of ns on slow tails.)
def test_per_service_p99_and_errors_match_duckdb(tracelake, workload):
    ours = tracelake.sql_csv(
        workload,
        "SELECT service_name, percentile(duration_ns, 0.99) AS p99, "
        "sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors, count(*) AS n "
        "FROM spans GROUP BY service_name ORDER BY service_name",
    )[1:]
    theirs = duck(workload).execute(
        "SELECT service_name, quantile_cont(duration_ns, 0.99), "
        "count(*) FILTER (WHERE status_code = 'ERROR'), count(*) "
        "FROM spans GROUP BY service_name ORDER BY service_name"
    ).fetchall()
    assert len(ours) == len(theirs) >= 5
    for (svc, p99, errors, n), (dsvc, dp99, derrors, dn) in zip(ours, theirs):
        assert svc == dsvc
        assert int(n) == dn
        assert int(errors) == derrors
        assert math.isclose(float(p99), dp99, rel_tol=1e-12), (svc, p99, dp99)
    assert sum(int(r[2]) for r in ours) > 0, "the workload should contain errors"


def test_slo_report_matches_duckdb(tracelake, workload):
    from conftest import REPO

    report = (REPO / "sql/reports/slo_by_operation.sql").read_text()
    ours = tracelake.sql_csv(workload, report)
    header, rows = ours[0], ours[1:]
    assert header == ["service_name", "operation", "requests", "p50_ms", "p95_ms", "p99_ms", "error_pct"]
    # The same SQL runs on DuckDB, with its name for the same function.
    theirs = duck(workload).execute(report.replace("percentile(", "quantile_cont(")).fetchall()
    assert len(rows) == len(theirs) > 10
    for ours_row, their_row in zip(rows, theirs):
        assert ours_row[0] == their_row[0] and ours_row[1] == their_row[1]
        assert int(ours_row[2]) == their_row[2]
        for ours_value, their_value in zip(ours_row[3:], their_row[3:]):
            assert math.isclose(float(ours_value), float(their_value), abs_tol=0.011), (ours_row, their_row)


def test_partition_columns_match_start_time(workload):
    # Every file sits in the partition of its spans' start time and service (DuckDB decodes the
    # hive directories itself).
    bad = duck(workload).execute(
        "SELECT count(*) FROM spans WHERE strftime(start_time AT TIME ZONE 'UTC', '%Y-%m-%d') <> CAST(date AS VARCHAR) "
        "OR CAST(hour AS INTEGER) <> hour(start_time AT TIME ZONE 'UTC') OR service <> service_name"
    ).fetchone()[0]
    assert bad == 0


def test_traces_view_matches_a_duckdb_group_by(tracelake, workload):
    ours = tracelake.sql_csv(
        workload,
        "SELECT count(*), sum(span_count), sum(error_count), sum(CASE WHEN has_orphans THEN 1 ELSE 0 END) FROM traces",
    )[1]
    con = duck(workload)
    traces, spans, errors = con.execute(
        "SELECT count(DISTINCT trace_id), count(*), count(*) FILTER (WHERE status_code = 'ERROR') FROM spans"
    ).fetchone()
    orphaned = con.execute(
        "SELECT count(DISTINCT c.trace_id) FROM spans c LEFT JOIN spans p "
        "ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id "
        "WHERE c.parent_span_id IS NOT NULL AND p.span_id IS NULL"
    ).fetchone()[0]
    assert [int(x) for x in ours] == [traces, spans, errors, orphaned]


def test_service_edges_match_duckdb(tracelake, workload):
    ours = tracelake.sql_csv(
        workload,
        "SELECT caller_service, callee_service, call_count, error_count, p99_ns FROM service_edges ORDER BY 1, 2",
    )[1:]
    theirs = duck(workload).execute(
        "SELECT p.service_name, c.service_name, count(*), count(*) FILTER (WHERE c.status_code = 'ERROR'), "
        "quantile_cont(c.duration_ns, 0.99) FROM spans c JOIN spans p "
        "ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id "
        "WHERE c.service_name <> p.service_name GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    assert len(ours) == len(theirs) > 3
    for o, t in zip(ours, theirs):
        assert (o[0], o[1], int(o[2]), int(o[3])) == (t[0], t[1], t[2], t[3])
        assert math.isclose(float(o[4]), t[4], rel_tol=1e-12)
