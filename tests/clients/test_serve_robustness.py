"""Robustness of `tracelake serve` under hostile input and under a crash during heavy load.

* `test_bad_input_table` posts malformed OTLP/HTTP requests and checks each against the OTLP
  specification's rules (400 for an undecodable body, 413 over the size limit, 415 for an
  unsupported content type or encoding, 200 with `partial_success` for invalid spans in a valid
  request; error bodies are a `google.rpc.Status` in the request's encoding) and that the message
  tells the user what was wrong. Afterwards the server must still serve, and exactly the valid
  spans must be stored, once each.
* `test_crash_under_concurrent_load_keeps_every_acknowledged_span_exactly_once` sends 100,000
  spans from 16 threads, `kill -9`s the server mid-load, restarts it and checks with DuckDB and
  `tracelake sql` that every acknowledged span is stored exactly once.

The server is started with the `start` helper of `test_serve_otlp.py`; its flags are set through
their environment variables (`TRACELAKE_MAX_REQUEST_BYTES`, `TRACELAKE_FLUSH_INTERVAL_SECS`), which
the server process inherits.
"""
import gzip
import http.client
import itertools
import json
import os
import random
import re
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from test_serve_otlp import free_port, start

try:
    from google.rpc.status_pb2 import Status as RpcStatus
except ImportError:  # googleapis-common-protos comes with the OTLP exporters; be lenient anyway
    RpcStatus = None

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
LIMIT = 1 << 20  # --max-request-bytes for the bad-input server: big enough for a "huge" attribute
TRACE = "5b8efff798038103d269b633813fc60c"
START_NS = 1_705_312_800_000_000_000  # 2024-01-15T10:00:00Z


def http_request(port, method, body, headers, path="/v1/traces", chunked=False, timeout=30):
    """One request on a fresh connection; returns (status, lower-cased headers, body).

    `chunked` sends the body with `Transfer-Encoding: chunked` (no Content-Length), as streaming
    clients do, so the server cannot refuse it by its declared length alone."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if chunked:
            conn.putrequest(method, path)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for i in range(0, len(body), 1 << 16):
                    piece = body[i:i + (1 << 16)]
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (413) before reading everything; read that answer
        else:
            conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- building requests ------------------------------------------------------------------------

_span_ids = itertools.count(0xA11CE00000000001)


def new_span_id():
    """A fresh, valid (non-zero) span id, so every span of the table can be told apart."""
    return f"{next(_span_ids):016x}"


def json_span(name, span_id=None, **overrides):
    span = {"traceId": TRACE, "spanId": span_id or new_span_id(), "name": name,
            "startTimeUnixNano": str(START_NS), "endTimeUnixNano": str(START_NS + 1000)}
    span.update(overrides)
    return span


def json_request(*spans, service="robustness"):
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "robustness"}, "spans": list(spans)}],
    }]}).encode()


def pb_request(*spans, service="robustness"):
    """`spans` are dicts of Span fields with hex ids (`trace_id`, `span_id`, ...)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", service
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "robustness"
    for fields in spans:
        fields = {"trace_id": TRACE, "start_time_unix_nano": START_NS,
                  "end_time_unix_nano": START_NS + 1000, **fields}
        span = scope_spans.spans.add()
        for key, value in fields.items():
            if key == "attributes":
                for k, v in value.items():
                    a = span.attributes.add()
                    a.key, a.value.string_value = k, v
            elif key.endswith("_id"):
                setattr(span, key, bytes.fromhex(value))
            else:
                setattr(span, key, value)
    return request.SerializeToString()


def pb_request_of_exact_size(size, name, span_id):
    """A valid protobuf request of exactly `size` bytes: one span with one huge attribute."""
    pad = size
    for _ in range(10):
        body = pb_request({"name": name, "span_id": span_id, "attributes": {"big": "x" * pad}})
        if len(body) == size:
            return body, pad
        pad += size - len(body)
    raise AssertionError(f"could not build a {size}-byte request")


@dataclass
class Case:
    """One malformed (or borderline) request and what the OTLP spec says the answer is."""
    name: str
    body: bytes
    headers: dict
    status: int
    message: str = ""  # substring of the error message / partial-success message
    method: str = "POST"
    chunked: bool = False
    rejected: int = 0  # partial_success.rejected_spans expected on a 200
    stored: tuple = ()  # (span_name, span_id) of the spans this request must store
    allow: str = ""  # for 405: the Allow header


def bad_input_cases():
    """The table. Every span that must not be stored is named '...:never'; the valid spans sent
    next to invalid ones (partial success) are named '...:ok' and must be stored exactly once."""
    pb, js = {"Content-Type": PROTOBUF}, {"Content-Type": JSON}
    valid_pb = pb_request({"name": "never", "span_id": new_span_id()})
    cases = [
        # --- undecodable bodies: 400 -----------------------------------------------------------
        Case("garbage bytes as protobuf", b"\xff\xff\xff\xff\xff", pb, 400, "invalid OTLP protobuf"),
        Case("truncated protobuf", valid_pb[:-3], pb, 400, "invalid OTLP protobuf"),
        Case("protobuf field 1 with wrong wire type (fixed32 instead of message)",
             b"\x0d\x00\x00\x00\x00", pb, 400, "invalid wire type"),
        Case("OTLP JSON sent as application/x-protobuf", json_request(json_span("never")), pb, 400,
             "invalid OTLP protobuf"),
        Case("JSON syntax error", b'{"resourceSpans": [', js, 400, "invalid OTLP JSON"),
        Case("JSON field of the wrong type (spans is a string)",
             b'{"resourceSpans":[{"scopeSpans":[{"spans":"nope"}]}]}', js, 400, "invalid type: string"),
        Case("JSON enum as a name (OTLP JSON requires integers)",
             json_request(json_span("never", kind="SPAN_KIND_SERVER")), js, 400, "SPAN_KIND_SERVER"),
        Case("JSON traceId not hex", json_request(json_span("never", traceId="zz" * 16)), js, 400,
             "invalid character 'z'"),
        Case("JSON traceId odd number of hex digits", json_request(json_span("never", traceId=TRACE[:31])), js,
             400, "odd number of digits"),
        Case("empty body as JSON (not a JSON document)", b"", js, 400, "invalid OTLP JSON"),
        Case("Content-Encoding gzip, body not gzip", valid_pb, {**pb, "Content-Encoding": "gzip"}, 400,
             "invalid gzip body"),
        Case("Content-Encoding gzip, truncated gzip stream", gzip.compress(valid_pb)[:-6],
             {**pb, "Content-Encoding": "gzip"}, 400, "invalid gzip body"),
        # --- unsupported media: 415 ------------------------------------------------------------
        Case("Content-Type text/plain", b"hello", {"Content-Type": "text/plain"}, 415,
             "unsupported Content-Type 'text/plain'"),
        Case("no Content-Type", valid_pb, {}, 415, "missing Content-Type"),
        Case("Content-Encoding br", valid_pb, {**pb, "Content-Encoding": "br"}, 415,
             "unsupported Content-Encoding 'br'"),
        # --- too large: 413 --------------------------------------------------------------------
        Case("protobuf body one byte over --max-request-bytes", b"\0" * (LIMIT + 1), pb, 413,
             f"exceeds the limit of {LIMIT}"),
        Case("protobuf body well over --max-request-bytes", b"\0" * (LIMIT + 4096), pb, 413,
             f"exceeds the limit of {LIMIT}"),
        Case("JSON body over --max-request-bytes, chunked (no Content-Length)", b" " * (LIMIT + 4096), js, 413,
             f"exceeds the limit of {LIMIT}", chunked=True),
        Case("gzip bomb (32 KiB inflating to 32 MiB)", gzip.compress(b"\0" * (32 << 20), 9),
             {**pb, "Content-Encoding": "gzip"}, 413, f"exceeds the limit of {LIMIT}"),
        # --- wrong method: 405 -----------------------------------------------------------------
        Case("GET /v1/traces", b"", {}, 405, method="GET", allow="POST"),
        # --- valid but empty: 200, nothing stored ----------------------------------------------
        Case("empty protobuf body (a valid empty ExportTraceServiceRequest)", b"", pb, 200),
        Case("empty JSON object", b"{}", js, 200),
    ]

    # --- invalid spans in a valid request: 200 + partial_success naming the span -------------
    def partial(name, bad_span, reason):
        ok = json_span(f"{name}:ok")
        bad = json_span(f"{name}:never", **bad_span)
        return Case(f"JSON span with {name}", json_request(bad, ok), js, 200,
                    f"span '{name}:never' (resourceSpans[0].scopeSpans[0].spans[0]): {reason}",
                    rejected=1, stored=((ok["name"], ok["spanId"]),))

    cases += [
        partial("traceId of 15 bytes", {"traceId": TRACE[:30]}, "trace_id must be 16 bytes, got 15"),
        partial("all-zero traceId", {"traceId": "0" * 32}, "trace_id is all zeros"),
        partial("spanId of 6 bytes", {"spanId": "eee19b7ec3c1"}, "span_id must be 8 bytes, got 6"),
        partial("all-zero spanId", {"spanId": "0" * 16}, "span_id is all zeros"),
        partial("parentSpanId of 4 bytes", {"parentSpanId": "eee19b7e"},
                "parent_span_id must be empty (root) or 8 bytes, got 4"),
        partial("end before start", {"endTimeUnixNano": str(START_NS - 1)},
                f"end_time_unix_nano ({START_NS - 1}) is before start_time_unix_nano ({START_NS})"),
        partial("no start time", {"startTimeUnixNano": "0"}, "start_time_unix_nano is missing"),
    ]
    ok_id = new_span_id()
    cases.append(Case(
        "protobuf: two invalid spans and a valid one",
        pb_request({"name": "pb-two-bad:never", "span_id": "0" * 16},
                   {"name": "pb-two-bad:ok", "span_id": ok_id},
                   {"name": "pb-two-bad:never", "span_id": new_span_id(), "trace_id": TRACE[:8]}),
        pb, 200, "2 spans refused; first: span 'pb-two-bad:never'", rejected=2,
        stored=(("pb-two-bad:ok", ok_id),)))

    # --- big but legal: a request of exactly --max-request-bytes, one huge attribute --------
    huge_id = new_span_id()
    huge, _ = pb_request_of_exact_size(LIMIT, "huge-attribute:ok", huge_id)
    cases.append(Case("huge attribute value, body exactly --max-request-bytes", huge, pb, 200,
                      stored=(("huge-attribute:ok", huge_id),)))
    return cases


def decode_error_body(headers, body):
    """(code, message) of an OTLP error body, decoded by the response's Content-Type."""
    content_type = headers.get("content-type", "")
    if content_type.startswith(PROTOBUF):
        if RpcStatus is None:
            assert body, "empty error body"
            return -1, body.decode("utf-8", "replace")
        status = RpcStatus.FromString(body)
        return status.code, status.message
    if content_type.startswith(JSON):
        doc = json.loads(body)
        return doc["code"], doc["message"]
    raise AssertionError(f"error body is neither protobuf nor JSON: Content-Type {content_type!r}")


def decode_success_body(request_type, headers, body):
    """(rejected_spans, error_message) of an ExportTraceServiceResponse in the request's encoding."""
    assert headers.get("content-type", "").startswith(request_type), \
        f"response Content-Type {headers.get('content-type')!r}, request was {request_type}"
    if request_type == PROTOBUF:
        response = ExportTraceServiceResponse.FromString(body)
        return response.partial_success.rejected_spans, response.partial_success.error_message
    partial_success = json.loads(body).get("partialSuccess") or {}
    return int(partial_success.get("rejectedSpans", 0)), partial_success.get("errorMessage", "")


def check_case(case, status, headers, body):
    """The ways the answer to `case` departs from the expectation (empty when it matches)."""
    problems = []
    if status != case.status:
        problems.append(f"status {status}, expected {case.status}")
    request_type = case.headers.get("Content-Type", "")
    if case.status == 405:
        if case.allow not in headers.get("allow", ""):
            problems.append(f"Allow header {headers.get('allow')!r}, expected {case.allow!r}")
    elif case.status >= 400:
        content_type = headers.get("content-type", "")
        if request_type in (PROTOBUF, JSON) and not content_type.startswith(request_type):
            problems.append(f"error body is {content_type!r}, not a google.rpc.Status in the request's {request_type}")
        try:
            code, message = decode_error_body(headers, body)
        except Exception:  # noqa: BLE001 - not a Status: judge the raw text
            code, message = None, body.decode("utf-8", "replace")
            if request_type not in (PROTOBUF, JSON):
                problems.append(f"error body ({content_type!r}) is not a google.rpc.Status in protobuf or JSON")
        if code == 0:
            problems.append("google.rpc.Status code is 0 (OK) on an error")
        if case.message not in message:
            problems.append(f"message {message!r} does not contain {case.message!r}")
    else:
        try:
            rejected, message = decode_success_body(request_type, headers, body)
        except Exception as e:  # noqa: BLE001
            return problems + [f"undecodable success body ({e})"]
        if rejected != case.rejected:
            problems.append(f"partial_success.rejected_spans {rejected}, expected {case.rejected}")
        if case.message not in message:
            problems.append(f"partial_success.error_message {message!r} does not contain {case.message!r}")
        # (On a full success error_message may carry a warning: the OTLP spec allows it.)
    return problems


def test_bad_input_table(tracelake, tmp_path, monkeypatch):
    """Every kind of malformed OTLP/HTTP request gets the status the OTLP spec gives and a
    message that says what is wrong; none of them stores anything it should not, none of them
    breaks the server, and the valid spans of partially accepted requests are stored once.

    All cases run against one server (one start, fast) and every mismatch is collected, so one
    failure lists all departures from the spec at once with the exact request and response."""
    monkeypatch.setenv("TRACELAKE_MAX_REQUEST_BYTES", str(LIMIT))
    data, port = tmp_path / "data", free_port()
    server = start(tracelake, data, port)
    failures, expected_stored = [], set()
    try:
        cases = bad_input_cases()
        assert len(cases) >= 16
        for case in cases:
            try:
                status, headers, body = http_request(port, case.method, case.body, case.headers,
                                                     chunked=case.chunked)
            except (OSError, http.client.HTTPException) as e:
                failures.append(f"{case.name}: no response ({e!r})")
                continue
            problems = check_case(case, status, headers, body)
            if problems:
                failures.append(
                    f"{case.name}:\n    " + "\n    ".join(problems)
                    + f"\n    request: {case.method} /v1/traces {case.headers} {len(case.body)} bytes"
                    + (" chunked" if case.chunked else "") + f" {case.body[:24]!r}"
                    + f"\n    response: {status} {headers.get('content-type')!r} {body[:200]!r}"
                )
            expected_stored.update(case.stored)

        # The server still serves: a valid request is accepted in full, /health is ok.
        final_id = new_span_id()
        status, headers, body = http_request(port, "POST", json_request(json_span("after-table:ok", final_id)),
                                             {"Content-Type": JSON})
        if (status, body) != (200, b"{}"):
            failures.append(f"valid request after the table: {status} {body[:200]!r}")
        expected_stored.add(("after-table:ok", final_id))
        status, _, body = http_request(port, "GET", None, {}, path="/health")
        if (status, body) != (200, b"ok"):
            failures.append(f"/health after the table: {status} {body!r}")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        stderr = server.stderr.read()
    assert code == 0, f"serve exited {code} on SIGTERM:\n{stderr}"
    if "panicked" in stderr:
        failures.append(f"the server panicked:\n{stderr}")

    rows = tracelake.sql_csv(data, "SELECT span_name, span_id, count(*) FROM spans GROUP BY 1, 2 ORDER BY 1, 2")[1:]
    stored = {(name, span_id): int(n) for name, span_id, n in rows}
    if stored != {key: 1 for key in expected_stored}:
        failures.append(f"stored spans {stored}, expected each of {sorted(expected_stored)} exactly once")
    # The ~1 MiB value is kept whole, or cut to a prefix by an attribute length limit (as the
    # OpenTelemetry attribute limits allow): either way a non-empty run of the 'x's sent.
    [[length, only_xs]] = tracelake.sql_csv(
        data, "SELECT length(span_attributes['big']), replace(span_attributes['big'], 'x', '') = '' "
              "FROM spans WHERE span_name = 'huge-attribute:ok'")[1:]
    if not (int(length or 0) > 0 and only_xs == "true"):
        failures.append(f"the huge attribute was stored as {length} characters (only 'x's: {only_xs})")

    assert not failures, f"{len(failures)} departure(s) from the OTLP spec:\n" + "\n".join(failures)


# --- crash under load ---------------------------------------------------------------------------

SERVICES = ("checkout", "cart", "payments", "inventory")
HOURS = 3
SPANS_PER_REQUEST = 500
REQUESTS = 200
THREADS = 16
WAVE_GAP_SECS = 0.3  # 13 waves of 16 concurrent requests over ~4 s: several 1-second flushes
SEED = int(os.environ.get("TRACELAKE_CRASH_SEED", "20261126"))  # another seed, another crash moment
HOUR0_NS = int(datetime(2026, 1, 15, 8, tzinfo=timezone.utc).timestamp()) * 10**9


def load_requests(rng):
    """REQUESTS protobuf bodies of SPANS_PER_REQUEST spans each, and their (trace_id, span_id)s.

    Each request has one resource per service (so 4 services) spread over 3 hours: every request
    touches several partitions. Span ids are n * (an odd constant) mod 2^64 for a global counter
    n, so all 100,000 are distinct and non-zero; traces have 25 spans (a root and its children)."""
    per_service = SPANS_PER_REQUEST // len(SERVICES)
    bodies, keys, n = [], [], 0
    for r in range(REQUESTS):
        request, request_keys = ExportTraceServiceRequest(), []
        for s, service in enumerate(SERVICES):
            resource_spans = request.resource_spans.add()
            attr = resource_spans.resource.attributes.add()
            attr.key, attr.value.string_value = "service.name", service
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "load"
            hour_ns = HOUR0_NS + ((r + s) % HOURS) * 3600 * 10**9
            for k in range(per_service):
                n += 1
                if k % 25 == 0:
                    trace_id = rng.getrandbits(128).to_bytes(16, "big")
                    root = None
                span_id = (n * 0x9E3779B97F4A7C15 % (1 << 64)).to_bytes(8, "big")
                start_ns = hour_ns + rng.randrange(3000 * 10**9)
                span = scope_spans.spans.add(
                    trace_id=trace_id, span_id=span_id, parent_span_id=root or b"", name=f"op-{k % 7}",
                    kind=2 if root is None else 3, start_time_unix_nano=start_ns,
                    end_time_unix_nano=start_ns + rng.randrange(1, 10**9))
                a = span.attributes.add()
                a.key, a.value.string_value = "http.route", f"/{service}/{k % 7}"
                root = root or span_id
                request_keys.append((trace_id.hex(), span_id.hex()))
        bodies.append(request.SerializeToString())
        keys.append(request_keys)
    return bodies, keys


def parquet_glob(data):
    return f"{data}/spans/**/*.parquet"


def test_crash_under_concurrent_load_keeps_every_acknowledged_span_exactly_once(tracelake, tmp_path, monkeypatch):
    """A request acknowledged with 200 is durable: after `kill -9` during heavy concurrent load
    and a restart, every acknowledged span is in Parquet, and no span is there twice.

    16 threads send 200 protobuf requests of 500 spans (100,000 spans, 4 services x 3 hours) over
    keep-alive connections to a server flushing every second, in waves of 16 simultaneous
    requests every 0.3 s (unpaced, even the debug server takes all 200 in under a second, before
    its first flush, and the crash would never find data in both Parquet and the WAL). Once a seeded-random 30-70 % of the
    requests are acknowledged (and at least one flush has reached Parquet), the server gets
    SIGKILL: some acknowledged spans are then in Parquet, others only in the write-ahead log, and
    requests are in flight. The restarted server replays the WAL and SIGTERM flushes it. DuckDB
    (on the Parquet files, independently of tracelake) and `tracelake sql` must both find each
    (trace_id, span_id) at most once and every acknowledged one present. Requests that failed
    (reset connections) were never acknowledged and may or may not be stored."""
    t0 = time.monotonic()
    rng = random.Random(SEED)
    bodies, keys = load_requests(rng)
    sent_keys = {key for request_keys in keys for key in request_keys}
    assert len(sent_keys) == REQUESTS * SPANS_PER_REQUEST
    kill_at = rng.randint(int(REQUESTS * 0.3), int(REQUESTS * 0.7))

    monkeypatch.setenv("TRACELAKE_FLUSH_INTERVAL_SECS", "1")
    data, port = tmp_path / "data", free_port()
    server = start(tracelake, data, port)
    t_load = time.monotonic()
    lock, crashed = threading.Lock(), threading.Event()
    next_request, acked, failed, refused = [0], [], [], []

    def flushed_something():
        return any((data / "spans").rglob("*.parquet")) if (data / "spans").exists() else False

    def worker():
        conn = None
        while not crashed.is_set():
            with lock:
                i = next_request[0]
                if i == REQUESTS:
                    break
                next_request[0] += 1
            # Request i belongs to wave i // THREADS: the 16 requests of a wave go out together.
            time.sleep(max(0.0, t_load + (i // THREADS) * WAVE_GAP_SECS - time.monotonic()))
            if crashed.is_set():
                break
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("POST", "/v1/traces", body=bodies[i], headers={"Content-Type": PROTOBUF})
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as e:
                failed.append((i, repr(e)))
                if conn:
                    conn.close()
                conn = None
                continue
            if response.status != 200 or ExportTraceServiceResponse.FromString(payload).partial_success.rejected_spans:
                refused.append((i, response.status, payload[:200]))  # valid spans: must not happen
                continue
            with lock:
                acked.append(i)
                if len(acked) >= kill_at and not crashed.is_set() and flushed_something():
                    server.send_signal(signal.SIGKILL)
                    crashed.set()
        if conn:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert crashed.is_set(), (
            f"all {len(acked)} requests were acknowledged before the crash could happen "
            f"(first Parquet file seen: {flushed_something()})")
        assert server.wait(timeout=30) == -signal.SIGKILL, server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    t_crash = time.monotonic()
    assert not refused, f"valid requests were refused: {refused[:3]}"
    acked_keys = {key for i in acked for key in keys[i]}
    in_parquet_at_crash = {
        tuple(row) for row in duckdb.sql(
            f"SELECT trace_id, span_id FROM read_parquet('{parquet_glob(data)}', hive_partitioning=true)").fetchall()}
    assert in_parquet_at_crash, "no flush reached Parquet before the crash"
    assert acked_keys - in_parquet_at_crash, "every acknowledged span was already in Parquet: the WAL was not tested"

    # Restart on the same data: replay the WAL (finishing any interrupted flush), then SIGTERM.
    port = free_port()
    server = start(tracelake, data, port)
    banner = server.stderr.readline()
    recovered = int(re.search(r"\((\d+) spans recovered\)", banner).group(1))
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=60)
    stderr = banner + server.stderr.read()
    assert code == 0, f"serve exited {code} on SIGTERM:\n{stderr}"
    assert "panicked" not in stderr, stderr
    t_restart = time.monotonic()

    # DuckDB, on the Parquet files alone.
    con = duckdb.connect()
    source = f"read_parquet('{parquet_glob(data)}', hive_partitioning=true)"
    rows = {}
    for trace_id, span_id, n in con.sql(f"SELECT trace_id, span_id, count(*) FROM {source} GROUP BY 1, 2").fetchall():
        rows[(trace_id, span_id)] = n
    [(total, distinct)] = con.sql(
        f"SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM {source}").fetchall()
    assert total == distinct == len(rows), f"{total - distinct} duplicate span(s): " + \
        str([k for k, n in rows.items() if n > 1][:5])
    missing = acked_keys - rows.keys()
    assert not missing, f"{len(missing)} acknowledged span(s) lost, e.g. {sorted(missing)[:5]}"
    assert rows.keys() <= sent_keys, "spans that were never sent are stored"
    [(misfiled, partitions)] = con.sql(
        f"SELECT count(*) FILTER (WHERE service <> service_name), count(DISTINCT (date, hour, service)) "
        f"FROM {source}").fetchall()
    assert misfiled == 0
    assert partitions == len(SERVICES) * HOURS

    # tracelake sql, through the spans table.
    assert tracelake.sql_csv(data, "SELECT count(*), count(DISTINCT trace_id || span_id) FROM spans")[1] == \
        [str(total), str(total)]
    served = {tuple(row) for row in tracelake.sql_csv(data, "SELECT trace_id, span_id FROM spans")[1:]}
    assert served == rows.keys()
    t_end = time.monotonic()

    print(
        f"\ncrash test: kill at >= {kill_at} acks; {len(acked)} requests acknowledged "
        f"({len(acked_keys)} spans), {len(failed)} failed, "
        f"{REQUESTS - len(acked) - len(failed)} not sent (the crash came first); "
        f"{len(in_parquet_at_crash)} spans in Parquet at the crash, {recovered} recovered from the WAL; "
        f"{total} stored ({total - len(acked_keys)} unacknowledged but durable)\n"
        f"timing: build {t_load - t0:.1f}s, load until kill {t_crash - t_load:.1f}s, "
        f"restart + final flush {t_restart - t_crash:.1f}s, checks {t_end - t_restart:.1f}s, "
        f"total {t_end - t0:.1f}s"
    )
