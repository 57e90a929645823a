"""Query serving from real clients — ADBC (Flight SQL), raw `pyarrow.flight`, plain HTTP — with
every answer checked against DuckDB on the same Parquet files, and the safety rules: refused
statements, memory limit, timeout, token; the server stays healthy after each."""
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from google.protobuf.any_pb2 import Any

from conftest import SERVERS
from test_serve_otlp import free_port, start

SLO = ("SELECT service_name, count(*) AS spans, sum(duration_ns) AS total_ns, "
       "sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors "
       "FROM spans GROUP BY service_name ORDER BY service_name")


@pytest.fixture(scope="module")
def server(tracelake, tmp_path_factory):
    data = tmp_path_factory.mktemp("query-clients") / "data"
    tracelake.run("gen", "--spans", "20000", "--seed", "7", "--data", str(data))
    ports = {k: free_port() for k in ("otlp", "flight", "http")}
    proc = start(tracelake, data, ports["otlp"], extra=[
        "--flight-addr", f"127.0.0.1:{ports['flight']}", "--http-addr", f"127.0.0.1:{ports['http']}",
        "--auth-token", "s3cret", "--query-memory-limit-bytes", str(256 << 20), "--query-timeout-secs", "4",
        "--flush-interval-secs", "3600"])
    SERVERS.remove(proc)  # module-scoped: not killed after each test
    yield {"data": data, **ports}
    proc.terminate()
    proc.wait(timeout=60)


def duck(data, sql):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning=true)")
    return con.execute(sql).fetchall()


AUTH = {"adbc.flight.sql.authorization_header": "Bearer s3cret"}


def adbc(server):
    return flight_sql.connect(f"grpc://127.0.0.1:{server['flight']}", db_kwargs=AUTH)


def http(server, path, body=None, token="s3cret", headers=None):
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{server['http']}{path}", data=body, headers={**auth, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def query(server, sql, fmt=None, token="s3cret"):
    path = "/api/v1/query" + (f"?format={fmt}" if fmt else "")
    return http(server, path, json.dumps({"sql": sql}).encode(), token)


def healthy(server, token="s3cret"):
    assert http(server, "/health")[0] == 200
    status, body = query(server, token=token, sql="SELECT count(*) AS n FROM spans WHERE service_name <> 'fresh-svc'")
    assert status == 200 and json.loads(body)["rows"] == [[20000]]


def test_adbc_and_pandas_agree_with_duckdb(server):
    expected = duck(server["data"], SLO)
    with adbc(server) as conn, conn.cursor() as cur:
        cur.execute(SLO)
        assert [tuple(r) for r in cur.fetch_arrow_table().to_pylist() for r in [r.values()]] == expected
        cur.execute("SELECT count(*) FROM spans WHERE service_name = ?", parameters=(expected[0][0],))
        assert cur.fetchone()[0] == expected[0][1]
        cur.execute(SLO)
        assert cur.fetch_df()["spans"].sum() == 20000


def test_raw_pyarrow_flight_streams_a_large_result(server):
    sql = "SELECT span_id FROM spans"
    any_ = Any(type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
               value=b"\x0a" + _varint(len(sql)) + sql.encode())
    client = flight.connect(f"grpc://127.0.0.1:{server['flight']}")
    options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer s3cret")])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(any_.SerializeToString()), options)
    reader = client.do_get(info.endpoints[0].ticket, options)
    batches = [chunk.data for chunk in reader]
    assert len(batches) > 1, "streamed batch by batch"
    got = sorted(pa.Table.from_batches(batches).column(0).to_pylist())
    assert got == sorted(r[0] for r in duck(server["data"], sql))


def _varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def test_http_formats_agree_with_duckdb(server):
    expected = duck(server["data"], SLO)
    status, body = query(server, SLO)
    assert status == 200 and [tuple(r) for r in json.loads(body)["rows"]] == expected
    status, body = query(server, SLO, "csv")
    lines = body.decode().splitlines()
    assert lines[0] == "service_name,spans,total_ns,errors" and len(lines) == len(expected) + 1
    status, body = query(server, SLO, "arrow")
    assert [tuple(r.values()) for r in pa.ipc.open_stream(body).read_all().to_pylist()] == expected
    status, body = query(server, SLO, "parquet")
    assert [tuple(r.values()) for r in pq.read_table(io.BytesIO(body)).to_pylist()] == expected
    status, body = http(server, "/api/v1/query?" + urllib.parse.urlencode({"sql": SLO}))
    assert status == 200 and [tuple(r) for r in json.loads(body)["rows"]] == expected


@pytest.mark.parametrize("sql,code", [
    (f"COPY (SELECT 1) TO '/tmp/tracelake-test-copy-{os.getpid()}.csv'", "not_allowed"),
    ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'", "not_allowed"),
    ("INSERT INTO spans SELECT * FROM spans", "not_allowed"),
    ("DROP TABLE spans", "not_allowed"),
    ("SET datafusion.execution.batch_size = 1", "not_allowed"),
    ("SELECT * FROM '/etc/passwd'", "not_found"),
    ("SELEC 1", "invalid_sql"),
])
def test_refused_statements(server, sql, code):
    status, body = query(server, sql)
    error = json.loads(body)["error"]
    assert (status, error["code"]) == ({"not_allowed": 403, "not_found": 404, "invalid_sql": 400}[code], code), body
    with adbc(server) as conn, conn.cursor() as cur, pytest.raises(Exception) as refused:
        cur.execute(sql)
    grpc_code = {"not_allowed": "UNAUTHORIZED", "not_found": "NOT_FOUND", "invalid_sql": "INVALID_ARGUMENT"}[code]
    assert grpc_code in str(refused.value) or code.upper() in str(refused.value).upper(), str(refused.value)
    assert not os.path.exists(f"/tmp/tracelake-test-copy-{os.getpid()}.csv")
    healthy(server)


def test_memory_limit(tracelake, server):
    """20,000 values of 16 KB aggregated into one list: ~320 MB that cannot spill, over a
    256 MiB limit. Its own server with a generous timeout, so that a slow machine still hits
    the memory limit first."""
    ports = {k: free_port() for k in ("otlp", "http")}
    own = start(tracelake, server["data"], ports["otlp"], extra=[
        "--flight-addr", f"127.0.0.1:{free_port()}", "--http-addr", f"127.0.0.1:{ports['http']}",
        "--wal-dir", str(server["data"].parent / "wal-memory"),
        "--query-memory-limit-bytes", str(256 << 20), "--query-timeout-secs", "300"])
    status, body = query({**server, "http": ports["http"]}, "SELECT array_agg(repeat(span_id, 1000)) FROM spans", token=None)
    assert (status, json.loads(body)["error"]["code"]) == (422, "memory_limit"), body
    assert "256" in json.loads(body)["error"]["message"] or "268435456" in json.loads(body)["error"]["message"]
    healthy({**server, "http": ports["http"]}, token=None)
    own.terminate()
    own.wait(timeout=60)


def test_timeout_and_token(server):
    started = time.monotonic()
    status, body = query(server, "SELECT count(*) FROM range(1000000000000) WHERE value % 7 = 3")
    assert (status, json.loads(body)["error"]["code"]) == (408, "timeout"), body
    assert time.monotonic() - started < 8
    assert query(server, "SELECT 1", token="nope")[0] == 401
    with flight_sql.connect(f"grpc://127.0.0.1:{server['flight']}",
                            db_kwargs={"adbc.flight.sql.authorization_header": "Bearer nope"}) as conn:
        with conn.cursor() as cur, pytest.raises(Exception) as refused:
            cur.execute("SELECT 1")
    assert "UNAUTHENTICATED" in str(refused.value) or "invalid token" in str(refused.value)
    healthy(server)


def test_spans_are_queryable_right_after_they_are_acknowledged(server):
    body = json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "fresh-svc"}}]}, "scopeSpans": [{"spans": [
            {"traceId": "00000000000000000000000000f1e5f1", "spanId": "00000000000000f1", "name": "just-now",
             "startTimeUnixNano": "1768464000000000000", "endTimeUnixNano": "1768464000000001000"}]}]}]}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{server['otlp']}/v1/traces", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    acked = time.monotonic()
    status, out = query(server, "SELECT span_name FROM spans WHERE service_name = 'fresh-svc'")
    assert json.loads(out)["rows"] == [["just-now"]]
    with adbc(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM spans WHERE service_name = 'fresh-svc'")
        assert cur.fetchone()[0] == 1
    assert time.monotonic() - acked < 1.0
    assert not list((server["data"] / "spans").glob("**/service=fresh-svc/*.parquet")), "not flushed yet"


def test_trace_by_id_is_the_whole_trace_as_otlp_json(server):
    (trace_id, count), = duck(server["data"], "SELECT trace_id, count(*) FROM spans GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
    expected = {(r[0], r[1] or "", r[2], str(r[3]), str(r[4])) for r in duck(server["data"],
        f"SELECT span_id, parent_span_id, span_name, epoch_ns(start_time), epoch_ns(end_time) FROM spans WHERE trace_id = '{trace_id}'")}
    status, body = http(server, f"/api/traces/{trace_id}")
    assert status == 200
    spans = [s for rs in json.loads(body)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == count
    assert {(s["spanId"], s["parentSpanId"], s["name"], s["startTimeUnixNano"], s["endTimeUnixNano"]) for s in spans} == expected
    assert all(s["traceId"] == trace_id for s in spans)
    status, body = http(server, f"/api/traces/{trace_id}?format=tempo")
    assert status == 200 and "batches" in json.loads(body)
    assert http(server, "/api/traces/0123456789abcdef0123456789abcdef")[0] == 404
    status, body = http(server, "/api/traces/xyz")
    assert status == 400 and "32 hex digits" in json.loads(body)["error"]["message"]


def test_adbc_metadata_lists_the_tables_with_their_columns(server):
    with adbc(server) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        tables = {(c["catalog_name"], s["db_schema_name"], t["table_name"]): [col["column_name"] for col in t["table_columns"]]
                  for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}
        for view in ("spans", "traces", "service_edges"):
            assert ("datafusion", "public", view) in tables, sorted(tables)
        spans_columns = [r[0] for r in duck(server["data"], "SELECT column_name FROM (DESCRIBE spans)")]
        assert set(spans_columns) <= set(tables[("datafusion", "public", "spans")])
        assert conn.adbc_get_table_schema("spans").field("trace_id").type == pa.string()
        assert conn.adbc_get_info()["vendor_name"] == "tracelake"
