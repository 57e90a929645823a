"""Compaction and retention on a local store: `tracelake compact` and `tracelake retain`, and
the background maintenance of `tracelake serve` while ingest and queries run. Answers are
checked against DuckDB on the same files, or against the answer before the change."""
import datetime as dt
import json
import signal
import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb

from test_object_storage import metric, wait_for
from test_serve_otlp import free_port, start

SUMMARY = ("SELECT service_name, count(*), count(DISTINCT trace_id || span_id), sum(duration_ns), "
           "min(span_id), max(span_id) FROM spans GROUP BY 1 ORDER BY 1")


def span_files(data):
    return sorted(Path(data, "spans").rglob("*.parquet"))


def duck_summary(data):
    rows = duckdb.connect().execute(
        f"SELECT service_name, count(*), count(DISTINCT trace_id || span_id), sum(duration_ns), min(span_id), "
        f"max(span_id) FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning = true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return [[str(v) for v in row] for row in rows]


def load_three_times(tracelake, tmp_path, data, hours=2, start="2026-01-01T00:00:00Z"):
    for seed in (1, 2, 3):
        out = tmp_path / f"otlp-{seed}"
        tracelake.run("gen", "--otlp-out", str(out), "--spans", "3000", "--seed", str(seed), "--services", "4",
                      "--hours", str(hours), "--start", start)
        tracelake.run("ingest", "--data", str(data), *[str(p) for p in sorted(out.iterdir())])


def test_compact_merges_each_partitions_files_and_keeps_every_answer(tracelake, tmp_path):
    data = tmp_path / "data"
    load_three_times(tracelake, tmp_path, data)
    partitions = {f.parent for f in span_files(data)}
    assert len(span_files(data)) == 3 * len(partitions)
    before = tracelake.sql_csv(data, SUMMARY)[1:]
    assert before == duck_summary(data)
    trace_id = tracelake.sql_csv(data, "SELECT trace_id FROM spans ORDER BY trace_id LIMIT 1")[1][0]
    lookup = f"SELECT span_id, service_name FROM spans WHERE trace_id = '{trace_id}' ORDER BY 1"
    lookup_before = tracelake.sql_csv(data, lookup)

    dry = tracelake.run("compact", "--data", str(data), "--min-file-age-secs", "0", "--dry-run")
    assert dry.stdout.count("3 files") == len(partitions), dry.stdout
    assert len(span_files(data)) == 3 * len(partitions), "a dry run changes nothing"
    # Files younger than the minimum age are left alone.
    young = tracelake.run("compact", "--data", str(data), "--min-file-age-secs", "3600", "--grace-secs", "0")
    assert "merged 0 files" in young.stderr and len(span_files(data)) == 3 * len(partitions)

    done = tracelake.run("compact", "--data", str(data), "--min-file-age-secs", "0", "--grace-secs", "1")
    assert f"merged {3 * len(partitions)} files" in done.stderr, done.stderr
    assert {f.parent for f in span_files(data)} == partitions
    assert len(span_files(data)) == len(partitions), "one file per partition"
    assert not list(Path(data, "compaction").glob("*.json")), "manifests completed"
    assert tracelake.sql_csv(data, SUMMARY)[1:] == before
    assert duck_summary(data) == before, "DuckDB reads the same spans from the merged files"
    assert tracelake.sql_csv(data, lookup) == lookup_before
    again = tracelake.run("compact", "--data", str(data), "--min-file-age-secs", "0", "--grace-secs", "0")
    assert "merged 0 files" in again.stderr


def test_serve_compacts_in_the_background_under_ingest_and_queries(tracelake, tmp_path):
    data = tmp_path / "data"
    ports = {name: free_port() for name in ("otlp", "flight")}
    server = start(tracelake, data, ports["otlp"], extra=[
        "--flight-addr", f"127.0.0.1:{ports['flight']}", "--flush-interval-secs", "1",
        "--maintenance-interval-secs", "1", "--compaction-min-file-age-secs", "0", "--query-timeout-secs", "2"])
    endpoint = f"http://127.0.0.1:{ports['otlp']}"
    # Five loads of the same hour, each flushed before the next: several files per partition.
    for seed in range(1, 6):
        tracelake.run("gen", "--endpoint", endpoint, "--spans", "1000", "--seed", str(seed), "--services", "3",
                      "--hours", "1", "--start", "2026-01-01T00:00:00Z")
        wait_for("a flush", lambda: metric(ports["otlp"], "tracelake_buffered_spans") == 0)
    window = "start_time < TIMESTAMP '2026-01-01T01:00:00Z'"
    errors, seen = [], []
    stop = threading.Event()

    def query_loop():
        with flight_sql.connect(f"grpc://127.0.0.1:{ports['flight']}") as conn:
            while not stop.is_set():
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"SELECT count(*), count(DISTINCT trace_id || span_id) FROM spans WHERE {window}")
                        seen.append(tuple(cur.fetchone()))
                except Exception as e:  # noqa: BLE001 - every failure is a finding
                    errors.append(repr(e))

    def ingest_loop():
        for seed in range(10, 16):
            tracelake.run("gen", "--endpoint", endpoint, "--spans", "500", "--seed", str(seed), "--services", "3",
                          "--hours", "1", "--start", "2026-01-02T00:00:00Z")
            time.sleep(0.5)

    threads = [threading.Thread(target=query_loop), threading.Thread(target=ingest_loop)]
    for t in threads:
        t.start()
    threads[1].join()
    wait_for("one file per partition", lambda: all(
        len(list(p.glob("*.parquet"))) == 1 for p in {f.parent for f in span_files(data)}), timeout=60)
    stop.set()
    threads[0].join()
    assert not errors, errors[:3]
    assert len(seen) > 10 and set(seen) == {(5000, 5000)}, f"{len(seen)} queries, answers {set(seen)}"
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, server.stderr.read()
    assert tracelake.sql_csv(data, "SELECT count(*), count(DISTINCT trace_id || span_id) FROM spans")[1] == ["8000", "8000"]


def hour_partitions(data):
    return sorted({"/".join(f.relative_to(Path(data, "spans")).parts[:2]) for f in span_files(data)})


def ended_before(name, cutoff):
    date, hour = name.split("/")
    start = dt.datetime.strptime(f"{date[5:]} {hour[5:]}", "%Y-%m-%d %H").replace(tzinfo=dt.timezone.utc)
    return start + dt.timedelta(hours=1) <= cutoff


def test_retain_removes_exactly_the_partitions_past_the_cutoff(tracelake, tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    if now.minute == 59 and now.second > 50:  # keep the cutoff away from an hour boundary
        time.sleep(15)
        now = dt.datetime.now(dt.timezone.utc)
    start = (now - dt.timedelta(days=16)).replace(minute=0, second=0, microsecond=0)
    data = tmp_path / "data"
    tracelake.run("gen", "--data", str(data), "--spans", "5000", "--services", "3", "--hours", "72",
                  "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    before = hour_partitions(data)
    cutoff = now - dt.timedelta(days=14)
    expected = [p for p in before if ended_before(p, cutoff)]
    assert 0 < len(expected) < len(before)

    dry = tracelake.run("retain", "--data", str(data), "--older-than", "14d", "--dry-run")
    named = [line.split()[2] for line in dry.stdout.splitlines() if line.startswith("would delete")]
    assert named == expected
    assert hour_partitions(data) == before
    kept_spans = duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning = true) "
        f"WHERE start_time >= TIMESTAMPTZ '{start + dt.timedelta(hours=len(expected)):%Y-%m-%d %H:%M:%S}+00'").fetchone()[0]

    tracelake.run("retain", "--data", str(data), "--older-than", "14d")
    assert hour_partitions(data) == [p for p in before if p not in expected]
    assert tracelake.sql_csv(data, "SELECT count(*) FROM spans")[1] == [str(kept_spans)]
    bad = tracelake.run("retain", "--data", str(data), "--older-than", "14 days", check=False)
    assert bad.returncode == 2 and "unit must be" in bad.stderr


def post_file(port, org_id, path):
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=Path(path).read_bytes(),
                                 headers={"Content-Type": "application/x-protobuf", "X-Scope-OrgID": org_id})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_serve_applies_retention_per_tenant(tracelake, tmp_path):
    data, port = tmp_path / "data", free_port()
    config = tmp_path / "tracelake.toml"
    config.write_text('retention = "30d"\n\n[tenant_retention]\nshort = "1d"\n')
    server = start(tracelake, data, port, extra=[
        "--config", str(config), "--tenants", "true", "--flush-interval-secs", "1", "--maintenance-interval-secs", "1"])
    three_days_ago = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:00:00Z")
    out = tmp_path / "otlp"
    tracelake.run("gen", "--otlp-out", str(out), "--spans", "500", "--services", "2", "--hours", "1",
                  "--start", three_days_ago)
    for org in ("short", "long"):
        for f in sorted(out.iterdir()):
            post_file(port, org, f)
    tenant = lambda org: Path(data, "tenants", org)
    wait_for("the long tenant's flush", lambda: len(span_files(tenant("long"))) > 0)
    # The short tenant's 3-day-old partitions go (1d retention); the long tenant keeps them (30d).
    wait_for("retention of the short tenant", lambda: not span_files(tenant("short")) and metric(
        port, "tracelake_buffered_spans") == 0, timeout=30)
    assert Path(tenant("short"), "spans").is_dir(), "the short tenant's spans were flushed, then dropped"
    time.sleep(2)  # two more maintenance rounds
    assert len(span_files(tenant("long"))) > 0
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, server.stderr.read()
    assert tracelake.sql_csv(tenant("long"), "SELECT count(*) FROM spans")[1] == ["500"]
