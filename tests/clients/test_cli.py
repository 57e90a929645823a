"""The CLI's user-facing contract: output formats, errors, exit codes (SPEC.md)."""
import json
import re

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from conftest import REPO


def fixture_store(tracelake, tmp_path):
    data = tmp_path / "data"
    files = sorted(str(p) for p in (REPO / "sql/fixtures").glob("*.json"))
    proc = tracelake.run("ingest", "--data", str(data), *files)
    assert "ingested 9 span(s) from 2 file(s)" in proc.stderr
    return data


def test_csv_format_follows_spec(tracelake, tmp_path):
    data = fixture_store(tracelake, tmp_path)
    rows = tracelake.sql_csv(
        data,
        "SELECT span_id, start_time, parent_span_id, start_time < end_time AS ordered, events "
        "FROM spans WHERE span_name IN ('charge', 'GET /cart') ORDER BY span_id",
    )
    assert rows[0] == ["span_id", "start_time", "parent_span_id", "ordered", "events"]
    root, charge = rows[1], rows[2]
    assert root[0] == "b7ad6b7169203331"
    assert root[1] == "2024-01-15T10:00:00Z"  # RFC 3339 UTC
    assert root[2] == ""  # NULL is an empty field
    assert root[3] == "true"
    assert charge[1] == "2024-01-15T10:00:00.020Z"
    events = json.loads(charge[4])  # nested values as JSON text
    assert [e["name"] for e in events] == ["retry", "charged"]
    # A timestamp in another time zone is still printed as the same instant in UTC.
    shifted = tracelake.sql_csv(
        data,
        "SELECT arrow_cast(start_time, 'Timestamp(Nanosecond, Some(\"+02:00\"))') AS t, "
        "arrow_cast(start_time, 'Timestamp(Millisecond, None)') AS naive FROM spans WHERE span_id = 'b7ad6b7169203331'",
    )
    assert shifted[1] == ["2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"]


def test_every_format(tracelake, tmp_path):
    data = fixture_store(tracelake, tmp_path)
    q = "SELECT service_name, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1"
    expected = [("cart", 4), ("frontend", 3), ("my.service", 1), ("payment svc", 1)]
    as_json = tracelake.sql_json(data, q)
    assert [(r["service_name"], r["n"]) for r in as_json] == expected
    nd = tracelake.run("sql", "--data", str(data), "--format", "ndjson", q).stdout.splitlines()
    assert [json.loads(line)["n"] for line in nd] == [4, 3, 1, 1]
    table = tracelake.run("sql", "--data", str(data), q).stdout
    assert re.search(r"\|\s*payment svc\s*\|\s*1\s*\|", table)
    for fmt, reader in [("parquet", lambda b: pq.read_table(pa.BufferReader(b))),
                        ("arrow", lambda b: pa.ipc.open_stream(b).read_all())]:
        raw = __import__("subprocess").run(
            [tracelake.binary, "sql", "--data", str(data), "--format", fmt, q], capture_output=True, check=True
        ).stdout
        t = reader(raw)
        assert list(zip(t.column("service_name").to_pylist(), t.column("n").to_pylist())) == expected


def test_errors_are_clear_and_nonzero(tracelake, tmp_path):
    data = fixture_store(tracelake, tmp_path)
    bad = tracelake.run("sql", "--data", str(data), "SELECT nope FROM spans", check=False)
    assert bad.returncode != 0 and "nope" in bad.stderr and bad.stdout == ""
    missing = tracelake.run("sql", "--data", str(data), "SELECT * FROM no_table", check=False)
    assert missing.returncode != 0 and "no_table" in missing.stderr
    ddl = tracelake.run("sql", "--data", str(data), "CREATE TABLE t AS SELECT 1", check=False)
    assert ddl.returncode != 0 and "DDL not supported" in ddl.stderr
    copy = tracelake.run("sql", "--data", str(data), f"COPY (SELECT 1) TO '{tmp_path}/x.csv'", check=False)
    assert copy.returncode != 0 and not (tmp_path / "x.csv").exists()
    nodir = tracelake.run("sql", "--data", str(tmp_path / "absent"), "SELECT 1", check=False)
    assert nodir.returncode != 0 and "no such directory" in nodir.stderr


def test_ingest_reports_bad_files_but_keeps_good_ones(tracelake, tmp_path):
    data = tmp_path / "d"
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "00", "spanId": "0102030405060708", '
                   '"name": "short-id", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}')
    good = REPO / "sql/fixtures/otlp_example.json"
    proc = tracelake.run("ingest", "--data", str(data), str(bad), str(good), check=False)
    assert proc.returncode == 1
    assert "span 'short-id'" in proc.stderr and "trace_id must be 16 bytes, got 1" in proc.stderr
    assert tracelake.sql_csv(data, "SELECT count(*) FROM spans")[1] == ["1"]


def test_gen_is_deterministic(tracelake, tmp_path):
    q = "SELECT count(*), sum(duration_ns), min(trace_id), max(span_id) FROM spans"
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    tracelake.run("gen", "--spans", "5000", "--seed", "3", "--data", str(a))
    tracelake.run("gen", "--spans", "5000", "--seed", "3", "--data", str(b))
    tracelake.run("gen", "--spans", "5000", "--seed", "4", "--data", str(c))
    ra, rb, rc = (tracelake.sql_csv(d, q)[1] for d in (a, b, c))
    assert ra == rb and ra[0] == "5000"
    assert ra != rc


def test_gen_otlp_files_round_trip_through_ingest(tracelake, tmp_path):
    out = tmp_path / "otlp"
    tracelake.run("gen", "--spans", "3000", "--seed", "9", "--otlp-out", str(out), "--otlp-format", "json")
    files = sorted(str(p) for p in out.glob("*.json"))
    assert files
    data = tmp_path / "data"
    tracelake.run("ingest", "--data", str(data), *files)
    direct = tmp_path / "direct"
    tracelake.run("gen", "--spans", "3000", "--seed", "9", "--data", str(direct))
    q = "SELECT count(*), sum(duration_ns), count(DISTINCT trace_id), sum(cardinality(span_attributes)) FROM spans"
    assert tracelake.sql_csv(data, q) == tracelake.sql_csv(direct, q)
