#!/usr/bin/env python3
"""The benchmark of issue 7: tracelake vs DuckDB on the same Parquet files, one command.

Generates (or reuses) a workload with tracelake's own writer, reports bytes on disk per span next
to the OTLP protobuf size of the same workload, then runs queries Q1-Q8 on
  - tracelake embedded: `tracelake sql --data DIR --format csv "..."`, a fresh process per run
    (process start included),
  - tracelake over Flight SQL (--flight): ADBC against a `tracelake serve` this script starts on
    free ports on the same data (warm; one long-lived server, like a BI tool would see),
  - DuckDB (Python `duckdb`) over read_parquet('DIR/spans/**/*.parquet', hive_partitioning=true),
    in-process,
and checks that every answer agrees with DuckDB's (rows sorted; numbers within a relative 1e-9;
tracelake's `percentile` is DuckDB's `quantile_cont`). Any mismatch or failed tracelake query is
printed and makes the exit status 1.

Queries (parameters are picked from the data, deterministically, and printed):
  Q1 SLO table: p50/p95/p99 + error rate per service, operation and hour, one day (SERVER spans)
  Q2 the same for one service in a 1-hour window (pruning)
  Q3 trace by id: --lookups random ids (seeded), p50/p95 per lookup. tracelake embedded pays a
     process start per lookup, so it runs only the first --cli-lookups ids; Flight SQL runs all.
  Q4 slowest 100 traces of the most common root operation, with their root span's attributes
     (tracelake: the `traces` view joined with the root span; DuckDB: the same per-trace
     aggregate written by hand)
  Q5 `service_edges` (tracelake view; DuckDB: the parent/child self-join)
  Q6 critical path by service over the slowest 1 % of that operation's traces (tracelake:
     critical_path_agg; DuckDB: a recursive CTE doing the same Jaeger/CRISP walk)
  Q7 spans with span_attributes['http.response.status_code'] = '500' on one route, last hour
  Q8 error-budget burn: per service, ratio of bad minutes (> 1 % of SERVER requests failed) to
     minutes with traffic over 28 days, on a second workload with --spans/10 spans, --hours 672

Ingest (unless --check or --ingest-spans 0): benches/ingest.py's measurement, --ingest-runs runs
each of `group-commit` (the server's defaults: durable WAL, flushes to Parquet during the load)
and `group-commit-noflush` (the durable receive path alone), with the `otlp-load` generator
(release build of tracelake-benches); spans/s per server core and p99 acknowledgement latency.

Timing: "cold" is the first run after `echo 3 > /proc/sys/vm/drop_caches` (root only; otherwise
simply the first run, and the table says so). Before a cold tracelake run the binary itself is
paged in with `tracelake sql "SELECT 1"` on an empty directory, so only the data is cold. DuckDB
cold is a new connection's first run. "Warm" is the median of --runs runs after that.

Usage (release binary; Python packages from the test venv: duckdb, pyarrow, adbc_driver_flightsql):
    export CARGO_TARGET_DIR=/root/.cache/tracelake-target
    cargo build --release -p tracelake
    /root/.cache/tracelake-venv/bin/python benches/suite.py --flight --markdown /tmp/suite.md
    # smaller / partial runs, reusing data:
    /root/.cache/tracelake-venv/bin/python benches/suite.py --spans 1000000 --runs 3 --data /tmp/tl-1m --only Q1,Q3
    # answers only (the smoke test in tests/clients/test_bench_suite.py):
    /root/.cache/tracelake-venv/bin/python benches/suite.py --spans 100000 --check --bin target/debug/tracelake
"""
import argparse
import datetime as dt
import decimal
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.ipc

REPO = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", "/root/.cache/tracelake-target"))
DEFAULT_BIN = TARGET / "release" / "tracelake"
GEN_FLAGS = ["--services", "30", "--operations", "200"]
QUERY_NAMES = [f"Q{i}" for i in range(1, 9)]
TITLES = {
    "Q1": "SLO per service/operation/hour, one day",
    "Q2": "SLO, one service, 1 hour",
    "Q3": "trace by id",
    "Q4": "slowest 100 traces of an operation + root attributes",
    "Q5": "service_edges",
    "Q6": "critical path by service, slowest 1 %",
    "Q7": "status 500 on one route, last hour",
    "Q8": "error-budget burn, bad minutes, 28 days (1/10 scale)",
}
REL_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# Processes and timing

def child_env():
    """The environment for tracelake processes: no TRACELAKE_* settings leak in from ours."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRACELAKE_")}


def drop_caches():
    """Drops the OS page cache; False when not permitted (then "cold" means "first run")."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def pct(values, q):
    """Linearly interpolated quantile (DuckDB's quantile_cont)."""
    xs = sorted(values)
    r = q * (len(xs) - 1)
    lo, hi = math.floor(r), math.ceil(r)
    return xs[lo] + (r - lo) * (xs[hi] - xs[lo])


def fmt_s(seconds):
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.2f} s"


class QueryFailed(Exception):
    pass


class Tracelake:
    def __init__(self, binary):
        self.binary = binary
        self.empty = Path(tempfile.mkdtemp(prefix="tl-suite-empty-"))

    def run(self, *args, check=True):
        proc = subprocess.run([self.binary, *args], capture_output=True, env=child_env())
        if check and proc.returncode != 0:
            raise QueryFailed(f"tracelake {args[0]} exited {proc.returncode}: "
                              f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")
        return proc

    def sql_timed(self, data, sql):
        """One `tracelake sql --format csv` process; wall seconds, including process start."""
        start = time.perf_counter()
        self.run("sql", "--data", str(data), "--format", "csv", sql)
        return time.perf_counter() - start

    def sql_arrow(self, data, sql):
        out = self.run("sql", "--data", str(data), "--format", "arrow", sql).stdout
        if not out:
            raise QueryFailed("tracelake sql --format arrow wrote nothing")
        return pa.ipc.open_stream(out).read_all()

    def page_in(self):
        """Loads the binary's pages (after a cache drop) without touching any data."""
        self.run("sql", "--data", str(self.empty), "--format", "csv", "SELECT 1")

    def close(self):
        shutil.rmtree(self.empty, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FlightServer:
    """`tracelake serve` on free ports on an existing data directory, queried with ADBC."""

    def __init__(self, binary, data, memory_limit, timeout_secs):
        import adbc_driver_flightsql.dbapi as flightsql

        warnings.filterwarnings("ignore", message="Cannot disable autocommit")

        self.wal = Path(tempfile.mkdtemp(prefix="tl-suite-wal-"))
        self.log = open(self.wal.parent / f"{self.wal.name}.log", "w+")
        http = f"127.0.0.1:{free_port()}"
        self.flight = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [binary, "serve", "--data", str(data), "--wal-dir", str(self.wal),
             "--otlp-grpc-addr", f"127.0.0.1:{free_port()}", "--otlp-http-addr", http,
             "--flight-addr", self.flight, "--http-addr", f"127.0.0.1:{free_port()}",
             "--query-memory-limit-bytes", str(memory_limit), "--query-timeout-secs", str(timeout_secs)],
            stdout=self.log, stderr=subprocess.STDOUT, env=child_env())
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"tracelake serve exited {self.proc.returncode}: {self.log.read()[-2000:]}")
            try:
                if urllib.request.urlopen(f"http://{http}/ready", timeout=1).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("tracelake serve did not become ready in 120 s")
            time.sleep(0.05)
        self.conn = flightsql.connect(f"grpc://{self.flight}")

    def query(self, sql):
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            return cur.fetch_arrow_table()
        except Exception as e:  # the driver raises its own error classes
            raise QueryFailed(f"Flight SQL: {type(e).__name__}: {str(e).strip()[-2000:]}") from None
        finally:
            cur.close()

    def query_timed(self, sql):
        start = time.perf_counter()
        table = self.query(sql)
        return time.perf_counter() - start, table

    def stop(self):
        try:
            self.conn.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.wal, ignore_errors=True)
        Path(self.log.name).unlink(missing_ok=True)


class Duck:
    """DuckDB over the same files; a fresh in-memory database per `connect`."""

    def __init__(self, data):
        self.data = data
        self.con = self.connect()

    def connect(self):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{self.data}/spans/**/*.parquet', "
                    "hive_partitioning = true)")
        return con

    def query(self, sql, con=None):
        return (con or self.con).sql(sql).to_arrow_table()

    def query_timed(self, sql, con=None):
        start = time.perf_counter()
        table = self.query(sql, con)
        return time.perf_counter() - start, table


# ---------------------------------------------------------------------------------------------
# Answers: Arrow tables → comparable Python rows

def _ns_type(t):
    """The type with every timestamp as timestamp[ns] (same time zone), every dictionary decoded."""
    if pa.types.is_timestamp(t):
        return pa.timestamp("ns", tz=t.tz)
    if pa.types.is_dictionary(t):
        return _ns_type(t.value_type)
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_map(t):
        return pa.map_(_ns_type(t.key_type), _ns_type(t.item_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) \
            or pa.types.is_large_list_view(t):
        return pa.list_(t.value_field.with_type(_ns_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_ns_type(f.type)) for f in t])
    return t


def _int_type(t):
    """The type with every timestamp[ns] as int64 (nanoseconds since the epoch)."""
    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_map(t):
        return pa.map_(_int_type(t.key_type), _int_type(t.item_type))
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_int_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_int_type(f.type)) for f in t])
    return t


def _canon(t, v):
    if v is None:
        return None
    if pa.types.is_map(t):
        return ("map", tuple(sorted((_canon(t.key_type, k), _canon(t.item_type, x)) for k, x in v)))
    if pa.types.is_list(t):
        return tuple(_canon(t.value_type, x) for x in v)
    if pa.types.is_struct(t):
        return tuple((f.name, _canon(f.type, v[f.name])) for f in t)
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    return v


def rows_of(table):
    """(column names, rows) with timestamps as integer nanoseconds and maps as sorted pairs."""
    names, columns = [], []
    for field, column in zip(table.schema, table.columns):
        arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        t = _ns_type(field.type)
        if t != arr.type:
            arr = arr.cast(t)
        t = _int_type(t)
        if t != arr.type:
            arr = arr.cast(t)
        names.append(field.name)
        columns.append([_canon(t, v) for v in arr.to_pylist()])
    return names, [tuple(r) for r in zip(*columns)] if columns else []


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _sort_key(row):
    def k(v):
        if v is None:
            return (0,)
        if _is_num(v):
            return (1, 0.0) if v == 0 else (1, float(f"{float(v):.6e}"))
        if isinstance(v, tuple):
            return (2, tuple(k(x) for x in v))
        return (3, str(v))
    return tuple(k(v) for v in row)


def _same(a, b):
    if _is_num(a) and _is_num(b):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def compare(ours, theirs, limit=5):
    """Mismatch descriptions (empty: the answers agree)."""
    (on, orows), (tn, trows) = rows_of(ours), rows_of(theirs)
    problems = []
    if on != tn:
        problems.append(f"columns differ: tracelake {on} vs DuckDB {tn}")
    if len(orows) != len(trows):
        problems.append(f"row count: tracelake {len(orows)} vs DuckDB {len(trows)}")
    orows, trows = sorted(orows, key=_sort_key), sorted(trows, key=_sort_key)
    bad = [(i, o, t) for i, (o, t) in enumerate(zip(orows, trows)) if not _same(o, t)]
    for i, o, t in bad[:limit]:
        cols = [n for n, x, y in zip(on, o, t) if not _same(x, y)] if len(o) == len(t) else on
        problems.append(f"sorted row {i} differs in {cols}:\n      tracelake {_short(o)}\n      DuckDB    {_short(t)}")
    if len(bad) > limit:
        problems.append(f"... {len(bad) - limit} more differing rows")
    return problems


def _short(row, width=600):
    text = repr(row)
    return text if len(text) <= width else text[:width] + " …"


# ---------------------------------------------------------------------------------------------
# The workload and the queries

def gen(tl, data, spans, seed, hours, start):
    t = time.perf_counter()
    tl.run("gen", "--spans", str(spans), "--seed", str(seed), "--hours", str(hours), "--start", start,
           *GEN_FLAGS, "--data", str(data))
    return time.perf_counter() - t


def parquet_bytes(data):
    files = list(Path(data).glob("spans/**/*.parquet"))
    return len(files), sum(f.stat().st_size for f in files)


def otlp_bytes(tl, spans, seed, hours, start):
    out = Path(tempfile.mkdtemp(prefix="tl-suite-otlp-"))
    try:
        t = time.perf_counter()
        tl.run("gen", "--spans", str(spans), "--seed", str(seed), "--hours", str(hours), "--start", start,
               *GEN_FLAGS, "--otlp-out", str(out))
        elapsed = time.perf_counter() - t
        files = [f for f in out.iterdir() if f.is_file()]
        return len(files), sum(f.stat().st_size for f in files), elapsed
    finally:
        shutil.rmtree(out, ignore_errors=True)


def q(s):
    return "'" + s.replace("'", "''") + "'"


def ts(dialect, t):
    iso = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"TIMESTAMP '{iso}'" if dialect == "tl" else f"TIMESTAMPTZ '{t.strftime('%Y-%m-%d %H:%M:%S')}+00'"


def pick_params(duck, duck28, seed, lookups):
    """Query parameters, chosen from the data (deterministically) so that every query has rows."""
    p = {}
    first = duck.con.execute("SELECT min(start_time) FROM spans").fetchall()[0][0]
    day = dt.datetime(first.year, first.month, first.day, tzinfo=dt.timezone.utc)
    p["day"] = (day, day + dt.timedelta(days=1))
    p["hour"] = (day + dt.timedelta(hours=12), day + dt.timedelta(hours=13))
    p["last_hour"] = (day + dt.timedelta(hours=23), day + dt.timedelta(hours=24))
    h0, h1 = (ts("duck", x) for x in p["hour"])
    rows = duck.con.execute(f"SELECT service_name FROM spans WHERE span_kind = 'SERVER' AND start_time >= {h0} "
                            f"AND start_time < {h1} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchall()
    p["service"] = rows[0][0] if rows else "frontend"
    rows = duck.con.execute("SELECT service_name, span_name FROM spans WHERE parent_span_id IS NULL "
                            "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1").fetchall()
    p["op"] = tuple(rows[0]) if rows else ("frontend", "GET /")
    l0, l1 = (ts("duck", x) for x in p["last_hour"])
    route = None
    for window in (f"AND start_time >= {l0} AND start_time < {l1}", ""):
        rows = duck.con.execute(
            "SELECT span_attributes['http.route'] FROM spans "
            f"WHERE span_attributes['http.response.status_code'] = '500' {window} "
            "AND span_attributes['http.route'] IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchall()
        if rows:
            route = rows[0][0]
            break
    p["route"] = route or "/"
    ids = [r[0] for r in duck.con.execute("SELECT DISTINCT trace_id FROM spans ORDER BY 1").fetchall()]
    p["trace_ids"] = random.Random(seed).sample(ids, min(lookups, len(ids)))
    if duck28 is not None:
        first = duck28.con.execute("SELECT min(start_time) FROM spans").fetchall()[0][0]
        day28 = dt.datetime(first.year, first.month, first.day, tzinfo=dt.timezone.utc)
        p["days28"] = (day28, day28 + dt.timedelta(days=28))
    return p


def slo_sql(d, where):
    pctl = "percentile" if d == "tl" else "quantile_cont"
    return f"""SELECT service_name, span_name AS operation, date_trunc('hour', start_time) AS hour_start,
       count(*) AS requests,
       {pctl}(duration_ns, 0.5) AS p50_ns, {pctl}(duration_ns, 0.95) AS p95_ns, {pctl}(duration_ns, 0.99) AS p99_ns,
       sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) * 1.0 / count(*) AS error_rate
FROM spans
WHERE span_kind = 'SERVER' AND {where}
GROUP BY service_name, span_name, date_trunc('hour', start_time)
ORDER BY service_name, operation, hour_start"""


def q1(d, p):
    return slo_sql(d, f"start_time >= {ts(d, p['day'][0])} AND start_time < {ts(d, p['day'][1])}")


def q2(d, p):
    return slo_sql(d, f"service_name = {q(p['service'])} "
                      f"AND start_time >= {ts(d, p['hour'][0])} AND start_time < {ts(d, p['hour'][1])}")


def q3(d, p, trace_id):
    return f"SELECT * FROM spans WHERE trace_id = {q(trace_id)}"


def q4(d, p):
    svc, op = (q(x) for x in p["op"])
    if d == "tl":
        return f"""SELECT t.trace_id, t.start_time, t.duration_ns, t.span_count, t.service_count, t.error_count,
       r.status_code, r.resource_attributes, r.span_attributes
FROM traces t JOIN spans r ON r.trace_id = t.trace_id AND r.parent_span_id IS NULL
WHERE t.root_service = {svc} AND t.root_name = {op}
ORDER BY t.duration_ns DESC, t.trace_id
LIMIT 100"""
    return f"""WITH roots AS (
    SELECT trace_id, status_code, resource_attributes, span_attributes FROM spans
    WHERE parent_span_id IS NULL AND service_name = {svc} AND span_name = {op}),
t AS (
    SELECT trace_id, min(start_time) AS start_time,
           epoch_ns(max(end_time)) - epoch_ns(min(start_time)) AS duration_ns,
           count(*) AS span_count, count(DISTINCT service_name) AS service_count,
           count(*) FILTER (WHERE status_code = 'ERROR') AS error_count
    FROM spans WHERE trace_id IN (SELECT trace_id FROM roots)
    GROUP BY trace_id)
SELECT t.trace_id, t.start_time, t.duration_ns, t.span_count, t.service_count, t.error_count,
       r.status_code, r.resource_attributes, r.span_attributes
FROM t JOIN roots r ON r.trace_id = t.trace_id
ORDER BY t.duration_ns DESC, t.trace_id
LIMIT 100"""


def q5(d, p):
    if d == "tl":
        return "SELECT * FROM service_edges ORDER BY caller_service, callee_service"
    return """SELECT p.service_name AS caller_service, c.service_name AS callee_service,
       count(*) AS call_count,
       sum(CASE WHEN c.status_code = 'ERROR' THEN 1 ELSE 0 END) AS error_count,
       quantile_cont(c.duration_ns, 0.5) AS p50_ns,
       quantile_cont(c.duration_ns, 0.95) AS p95_ns,
       quantile_cont(c.duration_ns, 0.99) AS p99_ns
FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
WHERE c.service_name <> p.service_name
GROUP BY p.service_name, c.service_name
ORDER BY caller_service, callee_service"""


def q6(d, p):
    svc, op = (q(x) for x in p["op"])
    if d == "tl":
        return f"""WITH roots AS (
    SELECT trace_id, duration_ns FROM spans
    WHERE parent_span_id IS NULL AND service_name = {svc} AND span_name = {op}),
slowest AS (
    SELECT trace_id FROM roots WHERE duration_ns >= (SELECT percentile(duration_ns, 0.99) FROM roots)),
segments AS (
    SELECT unnest(critical_path_agg(s.span_id, s.parent_span_id, s.start_time, s.end_time,
                                    s.service_name, s.span_name)) AS seg
    FROM spans s JOIN slowest ON s.trace_id = slowest.trace_id
    GROUP BY s.trace_id)
SELECT seg['service_name'] AS service_name, count(*) AS segments, sum(seg['segment_ns']) AS critical_ns,
       100.0 * sum(seg['segment_ns']) / sum(sum(seg['segment_ns'])) OVER () AS critical_pct
FROM segments
GROUP BY seg['service_name']
ORDER BY critical_ns DESC, service_name"""
    # The critical path of SPEC.md (Jaeger / Uber CRISP) as two recursive CTEs: `tree` clips every
    # span reachable from the root to its (clipped) parent, `walk` is the stack machine: at a span
    # with limit L take the next child (by clipped end desc, start desc, span_id) ending ≤ L, give
    # [child.end, L] to the span and push it with limit child.start; with no such child give
    # [span.start, L] to the span and pop. Each step emits one segment.
    return f"""WITH RECURSIVE
roots AS (
    SELECT trace_id, duration_ns FROM spans
    WHERE parent_span_id IS NULL AND service_name = {svc} AND span_name = {op}),
slowest AS (
    SELECT trace_id FROM roots WHERE duration_ns >= (SELECT quantile_cont(duration_ns, 0.99) FROM roots)),
s AS MATERIALIZED (
    SELECT sp.trace_id, sp.span_id, sp.parent_span_id, sp.service_name,
           epoch_ns(sp.start_time) AS st, greatest(epoch_ns(sp.end_time), epoch_ns(sp.start_time)) AS en
    FROM spans sp WHERE sp.trace_id IN (SELECT trace_id FROM slowest)),
marked AS (
    SELECT s.*,
           count(*) FILTER (WHERE s.parent_span_id IS NULL) OVER (PARTITION BY s.trace_id) AS null_parents,
           (s.parent_span_id IS NULL OR NOT EXISTS (
               SELECT 1 FROM s p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)) AS is_top
    FROM s),
root AS (
    SELECT trace_id, arg_min(span_id, (-(en - st), st, span_id)) AS span_id
    FROM marked WHERE is_top AND (null_parents <> 1 OR parent_span_id IS NULL)
    GROUP BY trace_id),
tree(trace_id, span_id, parent, cs, ce) AS (
    SELECT s.trace_id, s.span_id, NULL::VARCHAR, s.st, s.en FROM s JOIN root USING (trace_id, span_id)
    UNION ALL
    SELECT c.trace_id, c.span_id, t.span_id, greatest(c.st, t.cs), least(c.en, t.ce)
    FROM tree t JOIN s c ON c.trace_id = t.trace_id AND c.parent_span_id = t.span_id
    WHERE c.st <= t.ce AND c.en >= t.cs),
kids AS MATERIALIZED (
    SELECT trace_id, parent, span_id, cs, ce,
           row_number() OVER (PARTITION BY trace_id, parent ORDER BY ce DESC, cs DESC, span_id) AS rk
    FROM tree WHERE parent IS NOT NULL),
walk(trace_id, node, node_start, lim, last_rk, stack, seg_span, seg_start, seg_end) AS (
    SELECT trace_id, span_id, cs, ce, 0::BIGINT,
           []::STRUCT(node VARCHAR, node_start BIGINT, lim BIGINT, rk BIGINT)[],
           NULL::VARCHAR, NULL::BIGINT, NULL::BIGINT
    FROM tree WHERE parent IS NULL
    UNION ALL
    SELECT w.trace_id,
           CASE WHEN k.span_id IS NOT NULL THEN k.span_id WHEN len(w.stack) > 0 THEN w.stack[-1].node END,
           CASE WHEN k.span_id IS NOT NULL THEN k.cs ELSE w.stack[-1].node_start END,
           CASE WHEN k.span_id IS NOT NULL THEN k.ce ELSE w.stack[-1].lim END,
           CASE WHEN k.span_id IS NOT NULL THEN 0 ELSE w.stack[-1].rk END,
           CASE WHEN k.span_id IS NOT NULL
                THEN list_append(w.stack, {{'node': w.node, 'node_start': w.node_start, 'lim': k.cs, 'rk': k.rk}})
                ELSE list_slice(w.stack, 1, len(w.stack) - 1) END,
           w.node,
           CASE WHEN k.span_id IS NOT NULL THEN k.ce ELSE w.node_start END,
           w.lim
    FROM walk w
    LEFT JOIN LATERAL (
        SELECT span_id, cs, ce, rk FROM kids
        WHERE kids.trace_id = w.trace_id AND kids.parent = w.node AND kids.rk > w.last_rk AND kids.ce <= w.lim
        ORDER BY rk LIMIT 1) k ON true
    WHERE w.node IS NOT NULL),
segments AS (
    SELECT s.service_name, w.seg_end - w.seg_start AS segment_ns
    FROM walk w JOIN s ON s.trace_id = w.trace_id AND s.span_id = w.seg_span
    WHERE w.seg_end > w.seg_start)
SELECT service_name, count(*) AS segments, sum(segment_ns) AS critical_ns,
       100.0 * sum(segment_ns) / sum(sum(segment_ns)) OVER () AS critical_pct
FROM segments
GROUP BY service_name
ORDER BY critical_ns DESC, service_name"""


def q7(d, p):
    return f"""SELECT trace_id, span_id, service_name, span_name, start_time, duration_ns, status_code,
       span_attributes['http.route'] AS route
FROM spans
WHERE span_attributes['http.route'] = {q(p['route'])}
  AND span_attributes['http.response.status_code'] = '500'
  AND start_time >= {ts(d, p['last_hour'][0])} AND start_time < {ts(d, p['last_hour'][1])}
ORDER BY start_time, span_id"""


def q8(d, p):
    return f"""WITH per_minute AS (
    SELECT service_name, date_trunc('minute', start_time) AS minute, count(*) AS requests,
           sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors
    FROM spans
    WHERE span_kind = 'SERVER'
      AND start_time >= {ts(d, p['days28'][0])} AND start_time < {ts(d, p['days28'][1])}
    GROUP BY service_name, date_trunc('minute', start_time))
SELECT service_name,
       count(*) AS minutes,
       sum(CASE WHEN errors > 0.01 * requests THEN 1 ELSE 0 END) AS bad_minutes,
       sum(CASE WHEN errors > 0.01 * requests THEN 1 ELSE 0 END) * 1.0 / count(*) AS bad_minute_ratio,
       sum(CASE WHEN errors > 0.01 * requests THEN 1 ELSE 0 END) * 1.0 / count(*) / 0.01 AS burn_rate
FROM per_minute
GROUP BY service_name
ORDER BY burn_rate DESC, service_name"""


BUILDERS = {"Q1": q1, "Q2": q2, "Q4": q4, "Q5": q5, "Q6": q6, "Q7": q7, "Q8": q8}


# ---------------------------------------------------------------------------------------------
# Running one query on every side

class Result:
    def __init__(self, name):
        self.name = name
        self.tl_cold = self.tl_warm = self.fl_warm = self.duck_cold = self.duck_warm = None
        self.tl_p95 = self.fl_p95 = self.duck_p95 = None  # Q3 only (warm = p50 there)
        self.rows = None
        self.note = ""
        self.errors = []      # tracelake failures
        self.mismatches = []  # answer differences


def run_single(name, tl, duck, server, data, p, args, can_drop):
    r = Result(name)
    tl_sql, duck_sql = BUILDERS[name]("tl", p), BUILDERS[name]("duck", p)
    timing = not args.check

    # tracelake embedded
    try:
        if timing:
            if can_drop:
                drop_caches()
                tl.page_in()
            r.tl_cold = tl.sql_timed(data, tl_sql)
            r.tl_warm = statistics.median(tl.sql_timed(data, tl_sql) for _ in range(args.runs))
        ours = tl.sql_arrow(data, tl_sql)
    except QueryFailed as e:
        r.errors.append(f"embedded: {e}")
        ours = None

    # DuckDB
    if timing:
        con = duck.connect()
        if can_drop:
            drop_caches()
        r.duck_cold, _ = duck.query_timed(duck_sql, con)
        con.close()
        times = []
        for _ in range(args.runs):
            t, theirs = duck.query_timed(duck_sql)
            times.append(t)
        r.duck_warm = statistics.median(times)
    else:
        theirs = duck.query(duck_sql)
    r.rows = theirs.num_rows

    # tracelake over Flight SQL
    flown = None
    if server is not None:
        try:
            if timing:
                server.query(tl_sql)  # warm-up
                times = []
                for _ in range(args.runs):
                    t, flown = server.query_timed(tl_sql)
                    times.append(t)
                r.fl_warm = statistics.median(times)
            else:
                flown = server.query(tl_sql)
        except QueryFailed as e:
            r.errors.append(str(e))

    if ours is not None:
        r.mismatches += [f"embedded: {m}" for m in compare(ours, theirs)]
    if flown is not None:
        r.mismatches += [f"Flight SQL: {m}" for m in compare(flown, theirs)]
    return r


def run_lookups(tl, duck, server, data, p, args, can_drop):
    r = Result("Q3")
    ids = p["trace_ids"]
    cli_ids = ids[:args.cli_lookups]
    timing = not args.check
    r.note = (f"{len(ids)} random trace ids; embedded: first {len(cli_ids)} of them, one `tracelake sql` "
              "process each (process start included)")

    expected = {}
    if timing:
        con = duck.connect()
        if can_drop:
            drop_caches()
        r.duck_cold, _ = duck.query_timed(q3("duck", p, ids[0]), con)
        con.close()
        times = []
        for tid in ids:
            t, expected[tid] = duck.query_timed(q3("duck", p, tid))
            times.append(t)
        r.duck_warm, r.duck_p95 = pct(times, 0.5), pct(times, 0.95)
    else:
        for tid in ids:
            expected[tid] = duck.query(q3("duck", p, tid))
    r.rows = sum(t.num_rows for t in expected.values()) / max(1, len(expected))

    try:
        if timing:
            if can_drop:
                drop_caches()
                tl.page_in()
            r.tl_cold = tl.sql_timed(data, q3("tl", p, ids[0]))
            times = [tl.sql_timed(data, q3("tl", p, tid)) for tid in cli_ids]
            r.tl_warm, r.tl_p95 = pct(times, 0.5), pct(times, 0.95)
        for tid in cli_ids:
            for m in compare(tl.sql_arrow(data, q3("tl", p, tid)), expected[tid]):
                r.mismatches.append(f"embedded, trace {tid}: {m}")
    except QueryFailed as e:
        r.errors.append(f"embedded: {e}")

    if server is not None:
        try:
            server.query(q3("tl", p, ids[0]))  # warm-up
            times = []
            for tid in ids:
                t, table = server.query_timed(q3("tl", p, tid))
                times.append(t)
                for m in compare(table, expected[tid]):
                    r.mismatches.append(f"Flight SQL, trace {tid}: {m}")
            r.fl_warm, r.fl_p95 = pct(times, 0.5), pct(times, 0.95)
        except QueryFailed as e:
            r.errors.append(str(e))
    return r


def pruning(tl, data, sql):
    """Scan metrics of `EXPLAIN ANALYZE` (files, row groups, bytes) summed over DataSourceExecs."""
    try:
        table = tl.sql_arrow(data, "EXPLAIN ANALYZE " + sql)
    except QueryFailed as e:
        return f"EXPLAIN ANALYZE failed: {e}"
    plan = "\n".join(str(v) for v in table.column(table.num_columns - 1).to_pylist())
    scans = [line for line in plan.splitlines() if "DataSourceExec" in line]
    opened = sum(int(m) for line in scans for m in re.findall(r"files_opened=(\d+)", line))
    out = [f"{len(scans)} scan(s), {opened} file(s) opened"]
    for metric in ("files_ranges_pruned_statistics", "row_groups_pruned_statistics",
                   "row_groups_pruned_bloom_filter", "page_index_rows_pruned"):
        total = matched = 0
        for line in scans:
            m = re.search(metric + r"=(\d+) total → (\d+) matched", line)
            if m:
                total, matched = total + int(m.group(1)), matched + int(m.group(2))
        out.append(f"{metric} {total} → {matched}")
    scanned = [m for line in scans for m in re.findall(r"bytes_scanned=([^,\]]+)", line)]
    out.append("bytes_scanned " + " + ".join(scanned))
    return "; ".join(out)


# ---------------------------------------------------------------------------------------------
# Output

def run_ingest(args):
    """benches/ingest.py's runs for two modes; Markdown table rows."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ingest
    if not Path(args.load).exists():
        raise SystemExit(f"{args.load} not found: cargo build --release -p tracelake-benches --bin otlp-load "
                         "(or pass --ingest-spans 0)")
    opts = argparse.Namespace(bin=args.bin, load=args.load, spans=args.ingest_spans, batch=500, concurrency=32,
                              seed=args.seed, hours=1, gzip=False, flush_interval_secs=30, perf=None, keep=False)
    rows = []
    for mode in ("group-commit", "group-commit-noflush"):
        print(f"ingest: {mode} x{args.ingest_runs} ...", flush=True)
        runs = sorted((ingest.run_mode(opts, mode, ingest.MODES[mode]) for _ in range(args.ingest_runs)),
                      key=lambda r: r["load"]["spans_per_s"])
        m = runs[len(runs) // 2]
        lo = m["load"]
        per_core = [r["load"]["spans_ok"] / r["server_cpu_load_s"] for r in runs]
        ok = all(r["stored"] == r["load"]["spans_ok"] == r["distinct"] and r["load"]["spans_failed"] == 0 for r in runs)
        rows.append(f"| {mode} | {lo['spans_per_s']:,.0f} | {lo['spans_ok'] / m['server_cpu_load_s']:,.0f} "
                    f"({', '.join(f'{v / 1e3:.0f}k' for v in per_core)}) | {lo['p50_ms']:.0f} / {lo['p99_ms']:.0f} "
                    f"| {'yes' if ok else 'NO'} |")
        print(rows[-1], flush=True)
    return rows


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "—"


def machine():
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} CPUs (`nproc` = {len(os.sched_getaffinity(0))}, {cpu}), {mem / 2**20:.1f} GiB RAM, {platform.system()} {platform.release()}"


def commit():
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=REPO).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def table(results, flight, cold_label):
    lines = []
    head = ["query", f"tracelake embedded {cold_label}", "tracelake embedded warm"]
    if flight:
        head.append("tracelake Flight SQL warm")
    head += [f"DuckDB {cold_label}", "DuckDB warm", "embedded / DuckDB (warm)"]
    if flight:
        head.append("Flight / DuckDB (warm)")
    head += ["rows", "answers"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in results:
        lookup = r.name == "Q3"
        def warm(p50, p95):
            return f"p50 {fmt_s(p50)} / p95 {fmt_s(p95)}" if lookup and p50 is not None else fmt_s(p50)
        def rat(a, a95, b, b95):
            return f"p50 {ratio(a, b)} / p95 {ratio(a95, b95)}" if lookup else ratio(a, b)
        failed = bool(r.errors)
        cells = [f"{r.name} {TITLES[r.name]}", "error" if failed and r.tl_cold is None else fmt_s(r.tl_cold),
                 "error" if failed and r.tl_warm is None else warm(r.tl_warm, r.tl_p95)]
        if flight:
            cells.append("error" if failed and r.fl_warm is None else warm(r.fl_warm, r.fl_p95))
        cells += [fmt_s(r.duck_cold), warm(r.duck_warm, r.duck_p95), rat(r.tl_warm, r.tl_p95, r.duck_warm, r.duck_p95)]
        if flight:
            cells.append(rat(r.fl_warm, r.fl_p95, r.duck_warm, r.duck_p95))
        rows = "—" if r.rows is None else (f"{r.rows:.1f} spans/trace" if lookup else f"{r.rows:,}")
        verdict = "FAILED" if r.errors else ("DIFFER" if r.mismatches else "agree")
        cells += [rows, verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=10_000_000, help="spans in the main workload")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", help="data directory (reused if it has spans/, else generated into)")
    ap.add_argument("--data-28d", help="data directory of Q8's 28-day workload (default: DATA-28d)")
    ap.add_argument("--start", default="2026-11-01T00:00:00Z", help="gen --start of both workloads")
    ap.add_argument("--runs", type=int, default=5, help="warm runs per query (median)")
    ap.add_argument("--only", help="comma-separated queries, e.g. Q1,Q3")
    ap.add_argument("--flight", action="store_true", help="also run every query over Flight SQL (tracelake serve)")
    ap.add_argument("--check", action="store_true", help="only compare answers with DuckDB, no timing")
    ap.add_argument("--markdown", help="write the report (Markdown) to this file")
    ap.add_argument("--bin", default=str(DEFAULT_BIN), help="tracelake binary (default: %(default)s)")
    ap.add_argument("--lookups", type=int, default=1000, help="Q3: random trace ids (DuckDB, Flight SQL)")
    ap.add_argument("--cli-lookups", type=int, default=50, help="Q3: ids looked up with one tracelake sql process each")
    ap.add_argument("--no-otlp", action="store_true", help="skip measuring the OTLP protobuf size")
    ap.add_argument("--ingest-spans", type=int, default=1_000_000, help="spans per ingest run (0: skip ingest)")
    ap.add_argument("--ingest-runs", type=int, default=3, help="ingest runs per mode (median by spans/s)")
    ap.add_argument("--load", default=str(TARGET / "release" / "otlp-load"), help="the otlp-load generator binary")
    ap.add_argument("--no-explain", action="store_true", help="skip the EXPLAIN ANALYZE pruning metrics of Q2, Q3, Q7")
    ap.add_argument("--serve-memory-limit", type=int, default=8 << 30,
                    help="--query-memory-limit-bytes of the Flight SQL server (default 8 GiB)")
    ap.add_argument("--serve-timeout", type=int, default=3600, help="--query-timeout-secs of the Flight SQL server")
    args = ap.parse_args()
    if args.runs < 1 or args.lookups < 1 or args.cli_lookups < 1:
        ap.error("--runs, --lookups and --cli-lookups must be at least 1")

    wanted = QUERY_NAMES if not args.only else [x.strip().upper() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in QUERY_NAMES]
    if unknown:
        ap.error(f"unknown queries {unknown}; choose from {QUERY_NAMES}")
    if not Path(args.bin).exists():
        ap.error(f"{args.bin} not found: cargo build --release -p tracelake (or pass --bin)")

    tl = Tracelake(args.bin)
    tmp = None
    if args.data:
        data = Path(args.data).resolve()
        data28 = Path(args.data_28d).resolve() if args.data_28d else data.with_name(data.name + "-28d")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="tl-suite-"))
        data, data28 = tmp / "data", tmp / "data-28d"
    spans28 = max(1, args.spans // 10)
    servers = {}
    log = print
    try:
        info = {}
        if (data / "spans").exists():
            info["reused"] = True
            log(f"reusing {data}")
        else:
            info["gen"] = gen(tl, data, args.spans, args.seed, 24, args.start)
            log(f"generated {args.spans:,} spans into {data} in {info['gen']:.1f} s")
        if "Q8" in wanted:
            if (data28 / "spans").exists():
                log(f"reusing {data28}")
            else:
                info["gen28"] = gen(tl, data28, spans28, args.seed, 672, args.start)
                log(f"generated {spans28:,} spans over 672 hours into {data28} in {info['gen28']:.1f} s")
        duck = Duck(data)
        duck28 = Duck(data28) if "Q8" in wanted else None
        n_spans = duck.con.execute("SELECT count(*) FROM spans").fetchall()[0][0]
        files, size = parquet_bytes(data)
        if not args.check and not args.no_otlp:
            otlp_files, otlp_size, otlp_s = otlp_bytes(tl, n_spans, args.seed, 24, args.start)
            log(f"OTLP protobuf of the same workload: {otlp_size:,} bytes in {otlp_files} files ({otlp_s:.1f} s)")
        else:
            otlp_size = None

        p = pick_params(duck, duck28, args.seed, args.lookups)
        log(f"parameters: Q2 service {p['service']!r}; Q4/Q6 operation {p['op']}; Q7 route {p['route']!r}")

        can_drop = False
        if not args.check:
            can_drop = drop_caches()
            log("cold runs: OS page cache dropped before each" if can_drop
                else "cannot drop the OS page cache (not root?): cold = first run")
        cold_label = "cold" if can_drop else "first run"

        results = []
        for name in wanted:
            d, dk = (data28, duck28) if name == "Q8" else (data, duck)
            server = None
            if args.flight:
                if d not in servers:
                    servers[d] = FlightServer(args.bin, d, args.serve_memory_limit, args.serve_timeout)
                server = servers[d]
            log(f"{name}: {TITLES[name]} ...")
            t = time.perf_counter()
            if name == "Q3":
                r = run_lookups(tl, dk, server, d, p, args, can_drop)
            else:
                r = run_single(name, tl, dk, server, d, p, args, can_drop)
            results.append(r)
            status = "FAILED" if r.errors else ("answers DIFFER" if r.mismatches else "answers agree")
            log(f"{name}: {status} ({time.perf_counter() - t:.1f} s)")
            for e in r.errors:
                log(f"  ERROR {e}")
            for m in r.mismatches[:20]:
                log(f"  MISMATCH {m}")
            if len(r.mismatches) > 20:
                log(f"  ... {len(r.mismatches) - 20} more mismatches")

        ingest_rows = run_ingest(args) if not args.check and args.ingest_spans > 0 else []

        explain = {}
        if not args.check and not args.no_explain:
            for name, sql in (("Q2", lambda: q2("tl", p)), ("Q3", lambda: q3("tl", p, p["trace_ids"][0])),
                              ("Q7", lambda: q7("tl", p))):
                if name in wanted:
                    explain[name] = pruning(tl, data, sql())

        failed = [r for r in results if r.errors or r.mismatches]
        if args.check:
            log(f"\n{len(results) - len(failed)}/{len(results)} queries agree with DuckDB")
        else:
            report = []
            report.append(f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; commit `{commit()}`; "
                          f"machine: {machine()}; DuckDB {duckdb.__version__} (Python, default threads), "
                          f"tracelake binary `{args.bin}`.")
            report.append("")
            report.append("```sh\n" + " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]) + "\n```")
            report.append("")
            made = (f"reused from `{data}`" if info.get("reused") else
                    f"`tracelake gen --spans {args.spans} --seed {args.seed} --hours 24 {' '.join(GEN_FLAGS)}`"
                    f" in {info['gen']:.1f} s")
            report.append(f"Workload: {made} → {n_spans:,} spans, {files} Parquet files, {size:,} bytes = "
                          f"**{size / n_spans:.1f} B/span**"
                          + (f"; the same workload as OTLP protobuf (`--otlp-out`): {otlp_size:,} bytes = "
                             f"{otlp_size / n_spans:.1f} B/span, Parquet is **1/{otlp_size / size:.1f}** of it"
                             if otlp_size else "") + ".")
            if duck28 is not None:
                n28 = duck28.con.execute("SELECT count(*) FROM spans").fetchall()[0][0]
                f28, s28 = parquet_bytes(data28)
                report.append(f"Q8 workload: {n28:,} spans over 672 hours, {f28} files, {s28 / n28:.1f} B/span.")
            report.append("")
            report.append(table(results, args.flight, cold_label))
            report.append("")
            report.append("Notes:")
            report.append(f"- Warm = median of {args.runs} runs. Cold = "
                          + ("first run after `echo 3 > /proc/sys/vm/drop_caches` (tracelake's binary paged in "
                             "beforehand with `SELECT 1` on an empty store; DuckDB on a new connection)."
                             if can_drop else "first run (the OS page cache could not be dropped)."))
            report.append("- tracelake embedded = one `tracelake sql --format csv` process per run, process start "
                          "included; DuckDB = in-process on one connection (its in-memory caches stay warm)"
                          + ("; Flight SQL = ADBC to one `tracelake serve` on the same files "
                             f"(query memory limit {args.serve_memory_limit / 2**30:g} GiB, timeout {args.serve_timeout} s), "
                             "after one warm-up query." if args.flight else "."))
            for r in results:
                if r.note:
                    report.append(f"- {r.name}: {r.note}.")
            report.append(f"- Parameters: Q1 {p['day'][0]:%Y-%m-%d} (SERVER spans); Q2 service `{p['service']}`, "
                          f"{p['hour'][0]:%H:%M}–{p['hour'][1]:%H:%M}; Q4/Q6 root operation `{p['op'][0]}` "
                          f"`{p['op'][1]}`; Q7 route `{p['route']}`, {p['last_hour'][0]:%H:%M}–24:00"
                          + (f"; Q8 {p['days28'][0]:%Y-%m-%d} + 28 days" if "days28" in p else "") + ".")
            if ingest_rows:
                report.append("")
                report.append(f"Ingest (OTLP/gRPC, `otlp-load`: {args.ingest_spans:,} spans in 500-span requests, "
                              f"32 in flight; median of {args.ingest_runs} runs by spans/s; every acknowledgement "
                              "durable with `fdatasync`; stored = acknowledged, each exactly once):")
                report.append("")
                report.append("| mode | spans/s | spans/s per server core (all runs) | p50 / p99 ack ms | stored = sent |")
                report.append("|---|---|---|---|---|")
                report.extend(ingest_rows)
                report.append("")
            for name, text in explain.items():
                report.append(f"- {name} scan (`EXPLAIN ANALYZE`, embedded; the store has {files} files): {text}.")
            for r in failed:
                for e in r.errors:
                    report.append(f"- **{r.name} failed**: {e.splitlines()[0][:300]}")
                if r.mismatches:
                    report.append(f"- **{r.name} answers differ from DuckDB** ({len(r.mismatches)} problem(s)); "
                                  f"first: {r.mismatches[0].splitlines()[0][:300]}")
            text = "\n".join(report)
            print("\n" + text)
            if args.markdown:
                Path(args.markdown).write_text(text + "\n")
                log(f"\nwrote {args.markdown}")
        if failed:
            log(f"\nFAILED: {', '.join(r.name for r in failed)} (tracelake errors or answers differing from DuckDB)")
            return 1
        return 0
    finally:
        for server in servers.values():
            server.stop()
        tl.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
