"""Query serving of `tracelake serve`: Arrow Flight SQL (ADBC and raw `pyarrow.flight`), the HTTP
query API, trace lookup by id, query safety, fresh data and query metrics.

Most tests share one server (`server`, module-scoped) on a generated 20,000-span workload
(`tracelake gen --spans 20000 --seed 7`), with free ports for all four listeners. DuckDB, reading
the very Parquet files of that store, is the oracle for every answer. Tests that need special
flags (memory limit, timeout, auth token, an empty store) start their own server.

The module-scoped servers are taken off conftest's `SERVERS` list (whose autouse fixture kills
every listed server after each test) and stopped with SIGTERM when the module ends.
"""
import base64
import csv
import io
import json
import math
import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

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
from test_serve_robustness import json_request, json_span

# The Go ADBC driver warns that it cannot turn autocommit off; irrelevant for read-only SQL.
pytestmark = pytest.mark.filterwarnings("ignore:Cannot disable autocommit")

SPANS = 20_000
MEMORY_LIMIT = 256 << 20  # 268435456
TOKEN = "s3cret"


# --- servers ------------------------------------------------------------------------------------

@dataclass
class Server:
    """A running `tracelake serve` and its four listeners."""
    proc: object
    data: Path
    otlp_http: int
    otlp_grpc: int
    flight: int
    http: int

    @property
    def flight_uri(self):
        return f"grpc://127.0.0.1:{self.flight}"


def serve(tracelake, data, *flags):
    """Starts `tracelake serve` on `data` with free ports for all four listeners (plus `flags`)
    and waits for `/ready` (which answers 200 once every listener is up)."""
    otlp_http, otlp_grpc, flight_port, http_port = free_port(), free_port(), free_port(), free_port()
    proc = start(tracelake, data, otlp_http, otlp_grpc, extra=[
        "--flight-addr", f"127.0.0.1:{flight_port}", "--http-addr", f"127.0.0.1:{http_port}", *flags])
    return Server(proc, Path(data), otlp_http, otlp_grpc, flight_port, http_port)


def stop(server):
    """SIGTERM, and the server must exit 0 (it flushes and stops cleanly)."""
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0, server.proc.stderr.read()


@pytest.fixture(scope="module")
def generated(tracelake, tmp_path_factory):
    """A store with the 20,000-span generated workload (written directly as Parquet)."""
    data = tmp_path_factory.mktemp("query_serving") / "data"
    tracelake.run("gen", "--spans", str(SPANS), "--seed", "7", "--data", str(data))
    return data


def module_server(tracelake, data, tmp_path_factory, *flags):
    # Each extra server on the shared store gets its own WAL directory.
    wal = tmp_path_factory.mktemp("wal")
    srv = serve(tracelake, data, "--wal-dir", str(wal), *flags)
    SERVERS.remove(srv.proc)  # lives for the module, not one test
    return srv


@pytest.fixture(scope="module")
def server(tracelake, generated, tmp_path_factory):
    """The shared server on the generated workload, with default limits and no auth."""
    srv = module_server(tracelake, generated, tmp_path_factory)
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def auth_server(tracelake, generated, tmp_path_factory):
    """A server on the same workload that requires `--auth-token s3cret`."""
    srv = module_server(tracelake, generated, tmp_path_factory, "--auth-token", TOKEN)
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def oracle(generated):
    """DuckDB with a `spans` view over the store's Parquet files (hive partitions decoded)."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{generated}/spans/**/*.parquet', "
                "hive_partitioning = true)")
    return con


# --- clients ------------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def http(port, path, body=None, headers=None, method=None, timeout=60):
    """One HTTP request; returns the status, lower-cased headers and body (also for 4xx/5xx)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers or {},
                                     method=method or ("POST" if body is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def query(port, sql, fmt=None, accept=None, token=None, timeout=60):
    """`POST /api/v1/query` with `{"sql": ...}`; `fmt` adds `?format=`, `accept` an Accept header."""
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path = "/api/v1/query" + (f"?format={fmt}" if fmt else "")
    return http(port, path, json.dumps({"sql": sql}).encode(), headers, timeout=timeout)


def assert_error(reply, status, code):
    """The error shape of the HTTP API: `{"error": {"code": ..., "message": ...}}` and a status."""
    assert reply.status == status, (reply.status, reply.body[:500])
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    return body["error"]["message"]


def adbc(srv, **db_kwargs):
    return flight_sql.connect(srv.flight_uri, db_kwargs=db_kwargs or None)


def adbc_rows(srv, sql, parameters=None, **db_kwargs):
    with adbc(srv, **db_kwargs) as conn, conn.cursor() as cur:
        cur.execute(sql, parameters=parameters)
        return cur.fetchall()


def adbc_error(srv, sql, **db_kwargs):
    """Runs `sql` over ADBC, which must fail; returns the error message (it names the gRPC code)."""
    with pytest.raises(flight_sql.Error) as info:
        with adbc(srv, **db_kwargs) as conn, conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
    return str(info.value)


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def statement_query(sql):
    """A Flight SQL `CommandStatementQuery` descriptor, encoded by hand: the message has one
    field, `string query = 1` (tag 0x0a, varint length, UTF-8), wrapped in a protobuf `Any`."""
    encoded = sql.encode()
    command = Any(type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
                  value=b"\x0a" + varint(len(encoded)) + encoded)
    return flight.FlightDescriptor.for_command(command.SerializeToString())


def metrics(port):
    """`/metrics` as {'name{labels}': value}."""
    reply = http(port, "/metrics")
    assert reply.status == 200
    values = {}
    for line in reply.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def assert_healthy(srv, token=None, full_count=False):
    """The server still answers: `/health` is 200 and a query over `spans` works over HTTP and
    Flight SQL; with `full_count`, `count(*)` is still the workload's 20,000 spans (a full scan
    takes about a second on a debug build, so only tests that tried to change the table do it)."""
    assert srv.proc.poll() is None, f"server exited: {srv.proc.stderr.read()}"
    assert http(srv.http, "/health").status == 200
    sql = "SELECT length(span_id) AS n FROM spans LIMIT 1"
    reply = query(srv.http, sql, token=token)
    assert reply.status == 200, reply.body
    assert reply.json()["rows"] == [[16]]
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {token}"} if token else {}
    assert adbc_rows(srv, sql, **kwargs) == [(16,)]
    if full_count:
        assert query(srv.http, "SELECT count(*) FROM spans", token=token).json()["rows"] == [[SPANS]]


def rows_equal(ours, theirs, rel_tol=1e-12):
    """Row lists equal, floats to `rel_tol` (sums run in a different order in DuckDB)."""
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    for a, b in zip(ours, theirs):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            if isinstance(x, float) or isinstance(y, float):
                assert math.isclose(float(x), float(y), rel_tol=rel_tol), (a, b)
            else:
                assert x == y, (a, b)


SLO_SQL = (
    "SELECT service_name, count(*) AS requests, avg(duration_ns) AS avg_ns, "
    "sum(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END) AS errors "
    "FROM spans GROUP BY service_name ORDER BY service_name"
)


# --- 1. ADBC ------------------------------------------------------------------------------------

def test_adbc_slo_aggregate_matches_duckdb(server, oracle):
    """An SLO-style aggregate (count, average duration, error count per service) over ADBC:
    the Arrow table has the expected names and types and equals DuckDB's answer."""
    with adbc(server) as conn, conn.cursor() as cur:
        cur.execute(SLO_SQL)
        table = cur.fetch_arrow_table()
    assert table.column_names == ["service_name", "requests", "avg_ns", "errors"]
    assert [f.type for f in table.schema] == [pa.string(), pa.int64(), pa.float64(), pa.int64()]
    theirs = oracle.execute(SLO_SQL).fetchall()
    rows_equal([tuple(r.values()) for r in table.to_pylist()], theirs)
    assert len(theirs) >= 5 and sum(r[3] for r in theirs) > 0
    assert sum(r[1] for r in theirs) == SPANS


def test_adbc_fetch_df(server, oracle):
    """`fetch_df()` gives a pandas DataFrame with the same values (per operation of one service)."""
    sql = SLO_SQL.replace("service_name", "span_name").replace("FROM spans", "FROM spans WHERE service_name = 'cart'")
    with adbc(server) as conn, conn.cursor() as cur:
        cur.execute(sql)
        df = cur.fetch_df()
    assert list(df.columns) == ["span_name", "requests", "avg_ns", "errors"]
    expected = oracle.execute(sql).fetchall()
    assert len(expected) > 1 and int(df["requests"].sum()) == sum(r[1] for r in expected)
    rows_equal([tuple(r) for r in df.itertuples(index=False)], expected)


def test_adbc_parameters(server, oracle):
    """`?` placeholders bound from `parameters=` (a string, and a string plus an integer)."""
    service, = oracle.execute("SELECT service_name FROM spans GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
    sql = "SELECT count(*), sum(duration_ns) FROM spans WHERE service_name = ?"
    expected = oracle.execute(sql, [service]).fetchall()
    assert adbc_rows(server, sql, parameters=(service,)) == expected
    assert expected[0][0] > 0

    sql = "SELECT count(*) FROM spans WHERE service_name = ? AND duration_ns > ?"
    expected = oracle.execute(sql, [service, 10_000_000]).fetchall()
    assert adbc_rows(server, sql, parameters=(service, 10_000_000)) == expected
    assert 0 < expected[0][0]


def test_adbc_catalog_metadata(server, oracle):
    """`adbc_get_objects(depth="all")` lists catalog `datafusion`, schema `public`, the table
    `spans` and the views `traces` and `service_edges`, with the `spans` columns in order (the
    same columns DuckDB sees in the Parquet files, hive partition columns last);
    `adbc_get_table_schema("spans")` has the documented types; `adbc_get_info()` names the vendor."""
    duck_columns = [r[0] for r in oracle.execute("DESCRIBE spans").fetchall()]
    with adbc(server) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        catalogs = {c["catalog_name"]: c for c in objects}
        assert "datafusion" in catalogs, list(catalogs)
        schemas = {s["db_schema_name"]: s for s in catalogs["datafusion"]["catalog_db_schemas"]}
        assert "public" in schemas, list(schemas)
        tables = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
        assert {"spans", "traces", "service_edges"} <= set(tables), list(tables)
        assert tables["spans"]["table_type"] == "TABLE"
        assert tables["traces"]["table_type"] == "VIEW" and tables["service_edges"]["table_type"] == "VIEW"
        columns = sorted(tables["spans"]["table_columns"], key=lambda c: c["ordinal_position"])
        assert [c["column_name"] for c in columns] == duck_columns
        assert [c["ordinal_position"] for c in columns] == list(range(1, len(duck_columns) + 1))
        assert [c["column_name"] for c in tables["traces"]["table_columns"]][:3] == \
            ["trace_id", "root_service", "root_name"]

        schema = conn.adbc_get_table_schema("spans")
        assert schema.names == duck_columns
        assert schema.field("trace_id").type == pa.string() and not schema.field("trace_id").nullable
        assert schema.field("parent_span_id").nullable
        assert schema.field("start_time").type == pa.timestamp("ns", tz="UTC")
        assert schema.field("duration_ns").type == pa.int64()
        assert pa.types.is_map(schema.field("span_attributes").type)
        assert pa.types.is_list(schema.field("events").type)
        assert schema.field("date").type == pa.date32()

        info = conn.adbc_get_info()
        assert info["vendor_name"] == "tracelake"
        assert info["vendor_version"]


def test_adbc_errors(server):
    """Bad SQL is INVALID_ARGUMENT with the parser's position; a missing table is NOT_FOUND and
    the message names it."""
    message = adbc_error(server, "SELECT count(*) FRM spans")
    assert "INVALID_ARGUMENT" in message and "InvalidArgument" in message, message
    assert "Line: 1, Column: 21" in message, message
    message = adbc_error(server, "SELECT * FROM no_such_table")
    assert "NOT_FOUND" in message and "no_such_table" in message, message
    assert_healthy(server)


# --- 2. Raw Flight SQL --------------------------------------------------------------------------

def test_raw_flight_sql_statement(server, oracle):
    """A hand-built `CommandStatementQuery`: GetFlightInfo then DoGet on its ticket; the rows equal
    DuckDB's and the FlightInfo schema equals the streamed schema."""
    sql = ("SELECT service_name, span_kind, count(*) AS n, min(duration_ns) AS lo, max(duration_ns) AS hi, "
           "sum(duration_ns) AS total FROM spans GROUP BY service_name, span_kind "
           "ORDER BY service_name, span_kind")
    assert len(sql.encode()) > 127  # the length takes two varint bytes
    client = flight.connect(server.flight_uri)
    info = client.get_flight_info(statement_query(sql))
    assert len(info.endpoints) >= 1
    tables = [client.do_get(e.ticket).read_all() for e in info.endpoints]
    table = pa.concat_tables(tables)
    assert table.schema == info.schema
    assert table.column_names == ["service_name", "span_kind", "n", "lo", "hi", "total"]
    assert [tuple(r.values()) for r in table.to_pylist()] == oracle.execute(sql).fetchall()


def test_raw_flight_sql_large_result_streams_in_batches(server, oracle):
    """All 20,000 span ids come back in more than one record batch, each id once, the same set as
    DuckDB's."""
    client = flight.connect(server.flight_uri)
    info = client.get_flight_info(statement_query("SELECT span_id FROM spans"))
    ids, batches = [], 0
    for endpoint in info.endpoints:
        for chunk in client.do_get(endpoint.ticket):
            batches += 1
            ids.extend(chunk.data.column("span_id").to_pylist())
    assert batches > 1
    assert len(ids) == len(set(ids)) == SPANS
    assert set(ids) == {r[0] for r in oracle.execute("SELECT span_id FROM spans").fetchall()}


# --- 3. HTTP query API --------------------------------------------------------------------------

HTTP_SQL = (
    "SELECT service_name, count(*) AS n, sum(duration_ns) AS total_ns, max(duration_ns) AS max_ns, "
    "avg(duration_ns) AS avg_ns FROM spans GROUP BY service_name ORDER BY service_name"
)


def test_http_json_rows_are_typed(server, oracle):
    """JSON (the default): column names and Arrow types, integers as JSON integers, floats as
    numbers, values equal to DuckDB's."""
    reply = query(server.http, HTTP_SQL)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["columns"] == [{"name": "service_name", "type": "Utf8"}, {"name": "n", "type": "Int64"},
                               {"name": "total_ns", "type": "Int64"}, {"name": "max_ns", "type": "Int64"},
                               {"name": "avg_ns", "type": "Float64"}]
    for row in body["rows"]:
        assert isinstance(row[0], str)
        assert all(type(v) is int for v in row[1:4]), row
        assert isinstance(row[4], float), row
    rows_equal([tuple(r) for r in body["rows"]], oracle.execute(HTTP_SQL).fetchall())


def test_http_csv(server, oracle):
    """`Accept: text/csv`: a header row and the rows."""
    sql = "SELECT service_name, count(*) AS n, sum(duration_ns) AS total_ns FROM spans GROUP BY 1 ORDER BY 1"
    reply = query(server.http, sql, accept="text/csv")
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(reply.body.decode())))
    assert rows[0] == ["service_name", "n", "total_ns"]
    assert rows[1:] == [[s, str(n), str(t)] for s, n, t in oracle.execute(sql).fetchall()]
    # ?format=csv is the same (on one service, to keep the test fast)
    sql = sql.replace("GROUP BY", "WHERE service_name = 'cart' GROUP BY")
    reply = query(server.http, sql, fmt="csv")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(reply.body.decode())))[1:] == \
        [[s, str(n), str(t)] for s, n, t in oracle.execute(sql).fetchall()]


def test_http_arrow_ipc_stream(server, oracle):
    """`Accept: application/vnd.apache.arrow.stream` (and `?format=arrow`): an Arrow IPC stream."""
    one_service = HTTP_SQL.replace("GROUP BY", "WHERE service_name = 'cart' GROUP BY")
    for sql, kwargs in ((HTTP_SQL, {"accept": "application/vnd.apache.arrow.stream"}), (one_service, {"fmt": "arrow"})):
        reply = query(server.http, sql, **kwargs)
        assert reply.status == 200, reply.body
        assert reply.headers["content-type"] == "application/vnd.apache.arrow.stream"
        table = pyarrow.ipc.open_stream(reply.body).read_all()
        assert table.column_names == ["service_name", "n", "total_ns", "max_ns", "avg_ns"]
        assert table.schema.field("n").type == pa.int64()
        rows_equal([tuple(r.values()) for r in table.to_pylist()], oracle.execute(sql).fetchall())


def test_http_parquet(server, oracle):
    """`Accept: application/vnd.apache.parquet` (and `?format=parquet`): a Parquet file, here of
    every span's id and duration."""
    for sql, kwargs in (("SELECT span_id, duration_ns FROM spans", {"accept": "application/vnd.apache.parquet"}),
                        ("SELECT span_id, duration_ns FROM spans WHERE service_name = 'cart'", {"fmt": "parquet"})):
        reply = query(server.http, sql, **kwargs)
        assert reply.status == 200, reply.body
        assert reply.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(reply.body))
        assert sorted(zip(table.column("span_id").to_pylist(), table.column("duration_ns").to_pylist())) == \
            sorted(oracle.execute(sql).fetchall())


def test_http_get_with_sql_parameter(server, oracle):
    """`GET /api/v1/query?sql=...` answers like the POST."""
    sql = "SELECT span_kind, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1"
    reply = http(server.http, "/api/v1/query?" + urllib.parse.urlencode({"sql": sql}))
    assert reply.status == 200, reply.body
    assert [tuple(r) for r in reply.json()["rows"]] == oracle.execute(sql).fetchall()
    sql = "SELECT span_id FROM spans WHERE service_name = 'cart' ORDER BY span_id LIMIT 2"
    reply = http(server.http, "/api/v1/query?" + urllib.parse.urlencode({"sql": sql, "format": "csv"}))
    assert reply.status == 200
    assert reply.body.decode().splitlines() == ["span_id", *(r[0] for r in oracle.execute(sql).fetchall())]


def test_http_errors(server):
    """Errors are `{"error": {"code", "message"}}`: bad SQL 400 `invalid_sql` with the position,
    a missing table 404 `not_found` naming it, an unknown format 400, a body that is not JSON 400."""
    message = assert_error(query(server.http, "SELECT count(*) FRM spans"), 400, "invalid_sql")
    assert "Line: 1, Column: 21" in message
    message = assert_error(query(server.http, "SELECT * FROM no_such_table"), 404, "not_found")
    assert "no_such_table" in message
    message = assert_error(query(server.http, "SELECT 1", fmt="xml"), 400, "invalid_sql")
    assert "xml" in message
    reply = http(server.http, "/api/v1/query", b"SELECT 1", {"Content-Type": "application/json"})
    assert reply.status == 400 and "error" in reply.json()
    assert_healthy(server)


@pytest.mark.parametrize("sql", ["SELECT duration_ns / 0 FROM spans LIMIT 1", "SELECT CAST('x' AS INT)"],
                         ids=["divide-by-zero", "invalid-cast"])
def test_errors_in_the_querys_values_are_client_errors(server, sql):
    """A query that fails on its own values is the client's error: 400 `invalid_sql` over HTTP,
    INVALID_ARGUMENT over Flight SQL (5xx / INTERNAL would tell the user the server is broken)."""
    assert_error(query(server.http, sql), 400, "invalid_sql")
    assert "INVALID_ARGUMENT" in adbc_error(server, sql)


# --- 4. Trace by id -----------------------------------------------------------------------------

KINDS = {"UNSPECIFIED": 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def otlp_spans(resource_spans):
    """(service.name, span) for every span of an OTLP JSON `resourceSpans` list."""
    out = []
    for rs in resource_spans:
        resource = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                out.append((resource["service.name"]["stringValue"], span))
    return out


def test_trace_by_id_matches_duckdb(server, oracle):
    """`GET /api/traces/{id}` of the trace with the most spans: OTLP JSON with every span of the
    trace exactly once, with the ids, parents, names, kinds, statuses, start/end nanoseconds (as
    strings) and attributes (as `stringValue`) DuckDB reads from the Parquet files."""
    trace_id, = oracle.execute(
        "SELECT trace_id FROM spans GROUP BY trace_id ORDER BY count(*) DESC, trace_id LIMIT 1").fetchone()
    expected = {
        r[0]: r for r in oracle.execute(
            "SELECT span_id, parent_span_id, span_name, epoch_ns(start_time), epoch_ns(end_time), "
            "span_attributes, service_name, span_kind, status_code FROM spans WHERE trace_id = ?",
            [trace_id]).fetchall()
    }
    assert len(expected) > 5

    reply = http(server.http, f"/api/traces/{trace_id}")
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    spans = otlp_spans(reply.json()["resourceSpans"])
    ids = [span["spanId"] for _, span in spans]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == set(expected)
    for service, span in spans:
        span_id, parent, name, start_ns, end_ns, attributes, service_name, kind, status = expected[span["spanId"]]
        assert span["traceId"] == trace_id
        assert (span.get("parentSpanId") or None) == parent
        assert span["name"] == name
        assert span["startTimeUnixNano"] == str(start_ns) and span["endTimeUnixNano"] == str(end_ns)
        assert service == service_name
        assert span["kind"] == KINDS[kind]
        assert span.get("status", {}).get("code", 0) == STATUS[status]
        assert all(set(a["value"]) == {"stringValue"} for a in span["attributes"]), span["attributes"]
        assert {a["key"]: a["value"]["stringValue"] for a in span["attributes"]} == attributes

    tempo = http(server.http, f"/api/traces/{trace_id}?format=tempo")
    assert tempo.status == 200
    body = tempo.json()
    assert "batches" in body and "resourceSpans" not in body
    assert sorted(span["spanId"] for _, span in otlp_spans(body["batches"])) == sorted(expected)


def test_trace_by_id_absent_and_malformed(server, oracle):
    """An absent (well-formed) id is 404; `xyz` is 400; both with the error shape."""
    absent = "0123456789abcdef0123456789abcdef"
    assert oracle.execute("SELECT count(*) FROM spans WHERE trace_id = ?", [absent]).fetchone()[0] == 0
    assert absent in assert_error(http(server.http, f"/api/traces/{absent}"), 404, "not_found")
    reply = http(server.http, "/api/traces/xyz")
    assert reply.status == 400
    assert set(reply.json()["error"]) == {"code", "message"}
    assert "xyz" in reply.json()["error"]["message"]


# --- 5. Security --------------------------------------------------------------------------------

REFUSED = [
    pytest.param("COPY (SELECT 1) TO '{path}'", id="copy"),
    pytest.param("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'", id="create-external-table"),
    pytest.param("INSERT INTO spans SELECT * FROM spans", id="insert"),
    pytest.param("DROP TABLE spans", id="drop"),
    pytest.param("SET datafusion.execution.batch_size = 1", id="set"),
]


@pytest.mark.parametrize("statement", REFUSED)
def test_write_statements_are_refused_over_http(server, statement):
    """DDL, DML, COPY, CREATE EXTERNAL TABLE and SET get 403 `not_allowed`; COPY writes no file;
    the server stays healthy with its 20,000 spans."""
    target = Path(f"/tmp/tracelake-copy-{uuid.uuid4().hex}.csv")
    assert_error(query(server.http, statement.format(path=target)), 403, "not_allowed")
    assert not target.exists()
    assert_healthy(server, full_count="spans" in statement)


@pytest.mark.parametrize("statement", REFUSED)
def test_write_statements_are_refused_over_flight_sql(server, statement):
    """The same statements over Flight SQL (ADBC) get PERMISSION_DENIED."""
    target = Path(f"/tmp/tracelake-copy-{uuid.uuid4().hex}.csv")
    message = adbc_error(server, statement.format(path=target))
    assert "PermissionDenied" in message, message
    assert not target.exists()
    assert_healthy(server, full_count="spans" in statement)


# A hash join whose build side cannot fit: DataFusion's sorts and aggregations spill to disk
# under the memory pool (so ORDER BY / GROUP BY on a cross join only run into the timeout), but a
# hash join's build side has to be in memory. Each row is a 160 KB string, so 256 MiB is
# exhausted after ~1,600 rows: the query fails in about 2 s.
MEMORY_HOG = ("SELECT count(*) FROM (SELECT repeat(span_id, 10000) AS k FROM spans) a "
              "JOIN (SELECT repeat(span_id, 10000) AS k FROM spans) b ON a.k = b.k")
# 20,000³ = 8·10¹² rows: runs for hours.
# Counts 10^12 rows (yielding between batches); a cross-join count would be answered from
# row-count statistics at once.
ENDLESS = "SELECT count(*) FROM range(1000000000000) WHERE value % 7 = 3"


def cpu_seconds(pid):
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_idle(srv):
    """The cancelled query really stopped: the server uses (almost) no CPU afterwards."""
    time.sleep(0.3)
    before = cpu_seconds(srv.proc.pid)
    time.sleep(1.0)
    assert cpu_seconds(srv.proc.pid) - before < 0.4, "the cancelled query is still running"


def test_memory_limit(tracelake, generated, tmp_path):
    """Under `--query-memory-limit-bytes 268435456`, a query that needs more memory fails with
    422 `memory_limit` over HTTP and RESOURCE_EXHAUSTED over Flight SQL, naming the limit; the
    server stays healthy."""
    srv = serve(tracelake, generated, "--wal-dir", str(tmp_path / "wal"),
                "--query-memory-limit-bytes", str(MEMORY_LIMIT))
    try:
        started = time.monotonic()
        message = assert_error(query(srv.http, MEMORY_HOG), 422, "memory_limit")
        assert str(MEMORY_LIMIT) in message
        assert time.monotonic() - started < 30
        message = adbc_error(srv, MEMORY_HOG)
        assert "ResourceExhausted" in message and str(MEMORY_LIMIT) in message, message
        assert_healthy(srv)
    finally:
        stop(srv)


def test_timeout(tracelake, generated, tmp_path):
    """Under `--query-timeout-secs 2`, a query that would run for hours is cancelled: 408
    `timeout` over HTTP and DEADLINE_EXCEEDED over Flight SQL, each within 5 s; afterwards the
    server is idle (the query stopped, not just its answer) and answers normally."""
    srv = serve(tracelake, generated, "--wal-dir", str(tmp_path / "wal"), "--query-timeout-secs", "2")
    try:
        started = time.monotonic()
        assert "2 s" in assert_error(query(srv.http, ENDLESS), 408, "timeout")
        assert time.monotonic() - started < 5
        assert_idle(srv)
        started = time.monotonic()
        message = adbc_error(srv, ENDLESS)
        assert time.monotonic() - started < 5
        assert "DeadlineExceeded" in message, message
        assert_idle(srv)
        assert_healthy(srv)
    finally:
        stop(srv)


def test_auth_token_http(auth_server):
    """With `--auth-token s3cret`, the HTTP query API needs `Authorization: Bearer s3cret`:
    missing or wrong → 401 `unauthenticated`, right → 200."""
    sql = "SELECT count(*) FROM spans WHERE service_name = 'cart'"
    assert_error(query(auth_server.http, sql), 401, "unauthenticated")
    assert_error(query(auth_server.http, sql, token="nope"), 401, "unauthenticated")
    assert_error(http(auth_server.http, f"/api/traces/{'ab' * 16}"), 401, "unauthenticated")
    reply = query(auth_server.http, sql, token=TOKEN)
    assert reply.status == 200 and reply.json()["rows"][0][0] > 0
    assert_healthy(auth_server, token=TOKEN)


def test_auth_token_flight_sql(auth_server):
    """Flight SQL with `--auth-token s3cret`: no or a wrong bearer header → UNAUTHENTICATED; the
    right one works; so does the Flight handshake with Basic credentials (password = token) done
    by `pyarrow.flight`, whose returned bearer header then authorizes a query."""
    assert "UNAUTHENTICATED" in adbc_error(auth_server, "SELECT 1")
    message = adbc_error(auth_server, "SELECT 1", **{"adbc.flight.sql.authorization_header": "Bearer nope"})
    assert "UNAUTHENTICATED" in message, message
    assert adbc_rows(auth_server, "SELECT length(span_id) FROM spans LIMIT 1",
                     **{"adbc.flight.sql.authorization_header": f"Bearer {TOKEN}"}) == [(16,)]

    client = flight.connect(auth_server.flight_uri)
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.get_flight_info(statement_query("SELECT 1"))
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("u", "wrong")
    header = client.authenticate_basic_token("u", TOKEN)
    info = client.get_flight_info(statement_query("SELECT length(span_id) AS n FROM spans LIMIT 1"),
                                  flight.FlightCallOptions(headers=[header]))
    reader = client.do_get(info.endpoints[0].ticket, flight.FlightCallOptions(headers=[header]))
    assert reader.read_all().column("n").to_pylist() == [16]


def test_auth_token_adbc_handshake(auth_server):
    """ADBC's username/password (a Flight handshake with Basic credentials, password = token)."""
    assert adbc_rows(auth_server, "SELECT length(span_id) FROM spans LIMIT 1", username="u", password=TOKEN) == [(16,)]


def test_auth_basic_credentials_without_base64_padding(auth_server):
    """`authorization: Basic <base64 without '=' padding>` authenticates like the padded form."""
    unpadded = base64.b64encode(f"u:{TOKEN}".encode()).decode().rstrip("=")
    assert len(unpadded) % 4 != 0  # really unpadded
    client = flight.connect(auth_server.flight_uri)
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Basic {unpadded}".encode())])
    info = client.get_flight_info(statement_query("SELECT 1 AS one"), options)
    assert client.do_get(info.endpoints[0].ticket, options).read_all().column("one").to_pylist() == [1]


# --- 6. Fresh data ------------------------------------------------------------------------------

def test_spans_are_queryable_as_soon_as_acknowledged(tracelake, tmp_path):
    """With `--flush-interval-secs 3600` on an empty store, spans acknowledged over OTLP/HTTP are
    returned by the HTTP API within 1 s, by Flight SQL (a new ADBC connection) right after, and by
    the trace endpoint — while no Parquet file exists yet. SIGTERM then flushes them to Parquet."""
    data = tmp_path / "fresh"
    srv = serve(tracelake, data, "--flush-interval-secs", "3600")
    try:
        trace_id = uuid.uuid4().hex
        span_ids = sorted(f"{0xF00D0000 + i:016x}" for i in range(3))
        body = json_request(*(json_span(f"fresh-{i}", span_id=s, traceId=trace_id) for i, s in enumerate(span_ids)),
                            service="fresh-svc")
        reply = http(srv.otlp_http, "/v1/traces", body, {"Content-Type": "application/json"})
        assert reply.status == 200, reply.body
        acknowledged = time.monotonic()

        sql = f"SELECT span_id FROM spans WHERE trace_id = '{trace_id}' ORDER BY span_id"
        while True:
            rows = query(srv.http, sql).json()["rows"]
            if rows or time.monotonic() - acknowledged > 1:
                break
            time.sleep(0.05)
        assert [r[0] for r in rows] == span_ids
        assert time.monotonic() - acknowledged < 1.0
        assert [r[0] for r in adbc_rows(srv, sql)] == span_ids
        assert time.monotonic() - acknowledged < 2.0  # a fresh ADBC connection, under CI load
        assert query(srv.http, "SELECT count(*) FROM spans").json()["rows"] == [[3]]
        assert adbc_rows(srv, "SELECT count(*) FROM spans WHERE service_name = 'fresh-svc'") == [(3,)]
        trace = http(srv.http, f"/api/traces/{trace_id}")
        assert trace.status == 200
        assert sorted(s["spanId"] for _, s in otlp_spans(trace.json()["resourceSpans"])) == span_ids
        assert not list(data.rglob("*.parquet")), "spans were flushed; the test proves nothing"
    finally:
        stop(srv)
    assert list(data.rglob("*.parquet"))


# --- 7. Metrics ---------------------------------------------------------------------------------

OK = 'tracelake_queries_total{outcome="ok"}'
INVALID = 'tracelake_queries_total{outcome="invalid_sql"}'
NOT_FOUND = 'tracelake_queries_total{outcome="not_found"}'
DURATION_COUNT = "tracelake_query_duration_seconds_count"


def test_query_metrics(server):
    """`/metrics` on the query port counts queries by outcome (`ok`, `invalid_sql`, `not_found`)
    over HTTP and Flight SQL, and has the `tracelake_query_duration_seconds` histogram; the OTLP
    port's `/metrics` shows the same counters."""
    before = metrics(server.http)
    assert "# TYPE tracelake_query_duration_seconds histogram" in http(server.http, "/metrics").body.decode()
    assert query(server.http, "SELECT 1").status == 200
    assert adbc_rows(server, "SELECT 1") == [(1,)]
    assert query(server.http, "SELEC 1").status == 400
    adbc_error(server, "SELEC 1")
    assert query(server.http, "SELECT * FROM no_such_table").status == 404
    after = metrics(server.http)
    assert after[OK] - before[OK] == 2
    assert after[INVALID] - before[INVALID] == 2
    assert after[NOT_FOUND] - before[NOT_FOUND] == 1
    assert after[DURATION_COUNT] > before[DURATION_COUNT]
    assert any(re.fullmatch(r'tracelake_query_duration_seconds_bucket\{le="\+Inf"\}', k) for k in after)
    otlp_port = metrics(server.otlp_http)
    assert otlp_port[OK] == after[OK] and otlp_port[INVALID] == after[INVALID]


def test_query_metrics_count_refused_tokens(auth_server):
    """A query refused for a wrong token counts as `outcome="unauthenticated"`."""
    key = 'tracelake_queries_total{outcome="unauthenticated"}'
    before = metrics(auth_server.http)[key]
    assert query(auth_server.http, "SELECT 1", token="nope").status == 401
    adbc_error(auth_server, "SELECT 1", **{"adbc.flight.sql.authorization_header": "Bearer nope"})
    # One refused HTTP request; ADBC makes at least one refused call (it may make more).
    assert metrics(auth_server.http)[key] - before >= 2
