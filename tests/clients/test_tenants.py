"""Tenants: with `--tenants true`, spans sent with `X-Scope-OrgID: a` are invisible to queries
with `b` (and to the default tenant), over HTTP and Flight SQL, before and after a flush and a
restart; the data of tenant `a` lives under `<data>/tenants/a/spans/`."""
import json
import signal
import urllib.parse
import urllib.request

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import pytest

from test_serve_otlp import free_port, start


def post_spans(port, org_id, names):
    spans = [{"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": name,
              "startTimeUnixNano": "1768464000000000000", "endTimeUnixNano": "1768464000000001000"}
             for i, name in enumerate(names)]
    body = json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": f"svc-{org_id or 'default'}"}}]},
        "scopeSpans": [{"spans": spans}]}]}).encode()
    headers = {"Content-Type": "application/json"}
    if org_id:
        headers["X-Scope-OrgID"] = org_id
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and json.loads(r.read()) == {}


def names_over_http(port, org_id):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"sql": "SELECT span_name FROM spans ORDER BY 1"})
    req = urllib.request.Request(url, headers={"X-Scope-OrgID": org_id} if org_id else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return [row[0] for row in json.loads(r.read())["rows"]]


def names_over_flight(port, org_id):
    kwargs = {"adbc.flight.sql.rpc.call_header.x-scope-orgid": org_id} if org_id else {}
    with flight_sql.connect(f"grpc://127.0.0.1:{port}", db_kwargs=kwargs) as conn, conn.cursor() as cur:
        cur.execute("SELECT span_name FROM spans ORDER BY 1")
        return [row[0] for row in cur.fetchall()]


def test_tenants_see_only_their_own_spans(tracelake, tmp_path):
    data = tmp_path / "data"
    ports = {name: free_port() for name in ("otlp", "grpc", "flight", "http")}
    extra = ["--tenants", "true", "--flight-addr", f"127.0.0.1:{ports['flight']}",
             "--http-addr", f"127.0.0.1:{ports['http']}", "--flush-interval-secs", "3600"]
    server = start(tracelake, data, ports["otlp"], ports["grpc"], extra=extra)
    post_spans(ports["otlp"], "a", ["a1", "a2"])
    post_spans(ports["otlp"], "b", ["b1"])
    post_spans(ports["otlp"], None, ["d1"])
    expected = {"a": ["a1", "a2"], "b": ["b1"], None: ["d1"], "nobody": []}
    # Buffered (nothing flushed yet), then after a restart (flushed by SIGTERM, read from Parquet).
    for phase in ("buffered", "flushed"):
        for org_id, names in expected.items():
            assert names_over_http(ports["http"], org_id) == names, (phase, org_id)
            assert names_over_flight(ports["flight"], org_id) == names, (phase, org_id)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, server.stderr.read()
        server = start(tracelake, data, ports["otlp"], ports["grpc"], extra=extra)
    # On disk: tenant a's spans in its own tree, checked by DuckDB.
    con = duckdb.connect()
    a_names = con.execute(f"SELECT span_name FROM read_parquet('{data}/tenants/a/spans/**/*.parquet') ORDER BY 1").fetchall()
    assert [n for (n,) in a_names] == ["a1", "a2"]
    # Bad org ids are refused with the rule in the message.
    req = urllib.request.Request(f"http://127.0.0.1:{ports['http']}/api/v1/query?sql=SELECT%201",
                                 headers={"X-Scope-OrgID": "../etc"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 400 and "invalid X-Scope-OrgID" in refused.value.read().decode()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
