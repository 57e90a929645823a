"""`tracelake serve` under limits: a flood against a tiny memory budget (backpressure, bounded
memory, nothing lost), attribute limits (truncate and count), and configuration from a TOML
file, the environment and flags."""
import http.client
import os
import signal
import threading
import time
import urllib.request

import duckdb
import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from test_serve_otlp import free_port, start

PROTOBUF = "application/x-protobuf"
START_NS = 1_768_464_000_000_000_000  # 2026-01-15T08:00:00Z


def request_body(r, spans, attributes=None, value=None):
    """Request number `r` of `spans` spans with ids unique across requests; returns (bytes, keys)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", f"svc-{r % 3}"
    scope_spans = resource_spans.scope_spans.add()
    keys = []
    for k in range(spans):
        trace_id = (r * 1_000_003 + k // 10 + 1).to_bytes(16, "big")
        span_id = (r * 100_000 + k + 1).to_bytes(8, "big")
        span = scope_spans.spans.add(trace_id=trace_id, span_id=span_id, name=f"op-{k % 5}",
                                     start_time_unix_nano=START_NS + k, end_time_unix_nano=START_NS + k + 5000)
        for i in range(attributes or 3):
            a = span.attributes.add()
            a.key, a.value.string_value = f"attr.{i}", value or ("x" * 40)
        keys.append((trace_id.hex(), span_id.hex()))
    return request.SerializeToString(), keys


def rss_kib(pid):
    """Anonymous resident memory (heap, buffers): what a buffer limit bounds. File-backed pages
    (code of the ~300 MB debug binary paged in as the server warms up) are left out."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def stored_keys(data):
    con = duckdb.connect()
    return con.execute(
        f"SELECT trace_id, span_id FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning=true)"
    ).fetchall()


def test_flood_over_a_tiny_buffer_gets_429_and_resource_exhausted_and_loses_nothing(tracelake, tmp_path, monkeypatch):
    """A 1 MiB buffer and 8 HTTP + 4 gRPC senders pushing 80,000 spans as fast as they can:
    the server must refuse with 429 + Retry-After (HTTP) and RESOURCE_EXHAUSTED with a RetryInfo
    (gRPC, so OTLP exporters retry) instead of growing; its RSS stays bounded; senders retry
    refused requests; at the end every span is stored exactly once (DuckDB on the Parquet files)."""
    monkeypatch.setenv("TRACELAKE_MAX_BUFFERED_BYTES", str(1 << 20))
    monkeypatch.setenv("TRACELAKE_FLUSH_INTERVAL_SECS", "3600")  # only pressure triggers flushes
    data, port, grpc_port = tmp_path / "data", free_port(), free_port()
    server = start(tracelake, data, port, grpc_port=grpc_port)
    baseline_rss = rss_kib(server.pid)
    requests = [request_body(r, 500) for r in range(160)]
    lock, next_request = threading.Lock(), [0]
    acked, http_refusals, grpc_refusals, errors = [], [], [], []
    peak_rss = [baseline_rss]

    def take():
        with lock:
            i = next_request[0]
            next_request[0] += 1
            return i if i < len(requests) else None

    def http_sender():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while (i := take()) is not None:
            for _attempt in range(200):
                conn.request("POST", "/v1/traces", body=requests[i][0], headers={"Content-Type": PROTOBUF})
                response = conn.getresponse()
                body = response.read()
                if response.status == 429:
                    http_refusals.append(response.getheader("Retry-After"))
                    time.sleep(0.05)
                    continue
                if response.status != 200 or ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans:
                    errors.append((i, response.status, body[:200]))
                else:
                    acked.append(i)
                break

    def grpc_sender():
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            while (i := take()) is not None:
                message = ExportTraceServiceRequest.FromString(requests[i][0])
                for _attempt in range(200):
                    try:
                        stub.Export(message, timeout=60)
                        acked.append(i)
                        break
                    except grpc.RpcError as e:
                        if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                            errors.append((i, e.code(), e.details()))
                            break
                        grpc_refusals.append(e.trailing_metadata())
                        time.sleep(0.05)

    def watch_rss():
        while any(t.is_alive() for t in senders):
            peak_rss[0] = max(peak_rss[0], rss_kib(server.pid))
            time.sleep(0.02)

    senders = [threading.Thread(target=http_sender) for _ in range(8)] + [threading.Thread(target=grpc_sender) for _ in range(4)]
    for t in senders:
        t.start()
    watcher = threading.Thread(target=watch_rss)
    watcher.start()
    for t in senders:
        t.join(timeout=180)
    watcher.join()
    assert not errors, errors[:3]
    assert sorted(acked) == list(range(len(requests)))
    assert http_refusals and all(r == "1" for r in http_refusals), http_refusals[:3]
    assert grpc_refusals, "no gRPC request was refused: the flood did not reach the limit"
    details = dict(grpc_refusals[0]).get("grpc-status-details-bin")
    status = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.seconds == 1
    m = metrics(port)
    refused = m['tracelake_spans_refused_total{reason="overloaded"}']
    assert refused == 500 * (len(http_refusals) + len(grpc_refusals))
    assert m["tracelake_spans_accepted_total"] == 80_000
    assert m["tracelake_span_drop_ratio"] > 0
    # Memory: the buffer is 1 MiB; the flood is ~80 MB of Arrow data. Growth must stay far below.
    growth_mib = (peak_rss[0] - baseline_rss) / 1024
    print(f"baseline RSS {baseline_rss / 1024:.0f} MiB, peak {peak_rss[0] / 1024:.0f} MiB, "
          f"{len(http_refusals)} x 429, {len(grpc_refusals)} x RESOURCE_EXHAUSTED")
    assert growth_mib < 100, f"RSS grew by {growth_mib:.0f} MiB"
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, server.stderr.read()
    keys = stored_keys(data)
    assert len(keys) == len(set(keys)) == 80_000
    assert set(keys) == {k for _, ks in requests for k in ks}


def test_attribute_limits_truncate_and_count(tracelake, tmp_path):
    """300 attributes of 100 KB each with `--max-attributes 50 --max-attribute-value-bytes 1000`:
    the span is kept with its first 50 attributes, each cut to 1000 bytes, and /metrics counts
    250 dropped and 50 truncated."""
    data, port = tmp_path / "data", free_port()
    server = start(tracelake, data, port, extra=["--max-attributes", "50", "--max-attribute-value-bytes", "1000",
                                                 "--max-request-bytes", str(64 << 20)])
    try:
        body, _ = request_body(0, 1, attributes=300, value="é" * 50_000)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                     headers={"Content-Type": PROTOBUF})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        m = metrics(port)
        assert m["tracelake_attributes_dropped_total"] == 250
        assert m["tracelake_attribute_values_truncated_total"] == 50
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    rows = tracelake.sql_csv(data, "SELECT cardinality(span_attributes), octet_length(span_attributes['attr.49']), "
                                   "span_attributes['attr.50'] IS NULL FROM spans")
    # 'é' is 2 bytes: 1000 bytes hold exactly 500 of them.
    assert rows[1:] == [["50", "1000", "true"]]


def test_config_file_env_and_flags(tracelake, tmp_path):
    """Precedence: flag > environment > TOML file > default; `--print-config` shows the result
    and unknown keys are refused with the file name."""
    config = tmp_path / "tracelake.toml"
    config.write_text(f'data = "{tmp_path / "from-file"}"\nflush_interval_secs = 5\nmax_attributes = 64\n'
                      'max_request_bytes = 1000\n')
    env = {**os.environ, "TRACELAKE_MAX_ATTRIBUTES": "32", "TRACELAKE_FLUSH_BYTES": "12345"}
    out = tracelake.run("serve", "--config", str(config), "--max-attributes", "16", "--print-config", env=env).stdout
    settings = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    assert settings["data"] == f'"{tmp_path / "from-file"}"'  # file
    assert settings["flush_interval_secs"] == "5"  # file
    assert settings["flush_bytes"] == "12345"  # environment
    assert settings["max_attributes"] == "16"  # flag beats environment and file
    assert settings["max_request_bytes"] == "1000"
    assert settings["otlp_grpc_addr"] == '"127.0.0.1:4317"'  # default
    config.write_text("flush_intervall_secs = 5\n")
    bad = tracelake.run("serve", "--config", str(config), "--print-config", check=False)
    assert bad.returncode != 0
    assert "tracelake.toml" in bad.stderr and "unknown field `flush_intervall_secs`" in bad.stderr


def test_the_example_config_in_deploy_is_valid(tracelake):
    """deploy/tracelake.toml parses and says what its comments say."""
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "deploy" / "tracelake.toml"
    out = tracelake.run("serve", "--config", str(example), "--print-config").stdout
    settings = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    assert settings["data"] == '"/var/lib/tracelake"'
    assert settings["otlp_grpc_addr"] == '"0.0.0.0:4317"'
    assert settings["max_buffered_bytes"] == str(512 << 20)


def test_slow_senders_time_out_and_others_are_served(tracelake, tmp_path):
    """Slowloris: a client that never finishes its headers is disconnected, one that never
    finishes its body gets 408, after `--request-timeout-secs`; meanwhile others are served."""
    import socket
    data, port = tmp_path / "data", free_port()
    server = start(tracelake, data, port, extra=["--request-timeout-secs", "1"])
    try:
        slow_headers = socket.create_connection(("127.0.0.1", port))
        slow_headers.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # headers never end
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 1000\r\n\r\n{\"resourceSpans\"")  # 16 of 1000 bytes
        t0 = time.monotonic()
        body, _ = request_body(0, 3)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body, headers={"Content-Type": PROTOBUF})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200, "a normal client is served while the slow ones wait"
        slow_body.settimeout(10)
        answer = slow_body.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "not received within 1 s" in answer
        slow_headers.settimeout(10)
        closing = slow_headers.recv(4096)
        print("slow headers got:", closing[:80])
        assert closing == b"" or closing.startswith(b"HTTP/1.1 408"), closing
        assert slow_headers.recv(4096) == b"", "and the connection is closed"
        assert time.monotonic() - t0 < 8
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
