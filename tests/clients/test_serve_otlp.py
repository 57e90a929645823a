"""`tracelake serve` receives spans from the real OpenTelemetry Python SDK over OTLP/HTTP and
OTLP/gRPC, keeps every acknowledged span across `kill -9`, and flushes on SIGTERM."""
import signal
import socket
import subprocess
import time
import urllib.request

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from conftest import SERVERS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tracelake, data, port, grpc_port=None, extra=()):
    grpc_port = grpc_port or free_port()
    extra = list(extra)
    for flag in ("--flight-addr", "--http-addr"):
        if flag not in extra:
            extra += [flag, f"127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(
        [tracelake.binary, "serve", "--data", str(data), "--otlp-http-addr", f"127.0.0.1:{port}",
         "--otlp-grpc-addr", f"127.0.0.1:{grpc_port}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tracelake.env,
    )
    SERVERS.append(proc)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"server did not become ready: {proc.stderr.read()}")


def test_sdk_spans_survive_kill_9_exactly_once(tracelake, store):
    """The end-to-end test of both stores: a local directory and S3 (moto)."""
    tracelake = tracelake.with_env(store.env)
    data, port = store.data, free_port()
    server = start(tracelake, data, port, extra=store.serve_args)

    provider = TracerProvider(resource=Resource.create({"service.name": "py-svc", "service.version": "1.2.3"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")))
    tracer = provider.get_tracer("tracelake-test", "0.1")
    with tracer.start_as_current_span("parent", attributes={"http.route": "/orders/{id}", "retries": 3}) as parent:
        parent.add_event("cache-miss", {"key": "orders:42"})
        with tracer.start_as_current_span("child") as child:
            child.set_status(Status(StatusCode.ERROR, "db timeout"))
    trace_id = format(parent.get_span_context().trace_id, "032x")
    parent_id = format(parent.get_span_context().span_id, "016x")
    provider.shutdown()  # SimpleSpanProcessor exported each span synchronously: both acknowledged

    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)

    # Restart: the WAL is replayed; SIGTERM flushes everything and exits 0.
    server = start(tracelake, data, port, extra=store.serve_args)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, server.stderr.read()

    rows = tracelake.sql_csv(
        data,
        "SELECT span_name, parent_span_id, status_code, status_message, span_attributes['retries'], "
        "http_route, service_version, cardinality(events), scope_name "
        f"FROM spans WHERE trace_id = '{trace_id}' ORDER BY span_name",
    )
    assert rows[1:] == [
        ["child", parent_id, "ERROR", "db timeout", "", "", "1.2.3", "0", "tracelake-test"],
        ["parent", "", "UNSET", "", "3", "/orders/{id}", "1.2.3", "1", "tracelake-test"],
    ]
    assert tracelake.sql_csv(data, "SELECT count(*) FROM spans")[1] == ["2"]


def test_http_errors(tracelake, tmp_path):
    port = free_port()
    server = start(tracelake, tmp_path / "d", port)
    try:
        def post(body, content_type):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                         headers={"Content-Type": content_type}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()
        assert post(b"x", "text/plain")[0] == 415
        status, body = post(b"{oops", "application/json")
        assert status == 400 and b"invalid OTLP JSON" in body
        assert post(b"\xff\xff\xff", "application/x-protobuf")[0] == 400
        assert post(b"\0" * (17 << 20), "application/x-protobuf")[0] == 413
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


def test_sdk_grpc_exporter_with_gzip(tracelake, tmp_path):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression

    data, port, grpc_port = tmp_path / "data", free_port(), free_port()
    server = start(tracelake, data, port, grpc_port)
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(
        GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, compression=Compression.Gzip)))
    tracer = provider.get_tracer("grpc-test")
    for i in range(5):
        with tracer.start_as_current_span(f"op-{i}", attributes={"i": i, "ok": i % 2 == 0, "ratio": i / 4}):
            pass
    provider.shutdown()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, server.stderr.read()
    rows = tracelake.sql_csv(
        data,
        "SELECT span_name, span_attributes['i'], span_attributes['ok'], span_attributes['ratio'] "
        "FROM spans WHERE service_name = 'grpc-svc' ORDER BY span_name",
    )
    assert rows[1:] == [[f"op-{i}", str(i), "true" if i % 2 == 0 else "false", repr(i / 4).rstrip("0").rstrip(".") if i % 4 else str(i // 4)] for i in range(5)]


def test_gen_endpoint_sends_exactly_the_workload(tracelake, tmp_path):
    data, port = tmp_path / "served", free_port()
    server = start(tracelake, data, port)
    tracelake.run("gen", "--spans", "3000", "--seed", "5", "--endpoint", f"http://127.0.0.1:{port}")
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, server.stderr.read()
    direct = tmp_path / "direct"
    tracelake.run("gen", "--spans", "3000", "--seed", "5", "--data", str(direct))
    q = "SELECT count(*), count(DISTINCT span_id), sum(duration_ns), sum(cardinality(span_attributes)) FROM spans"
    assert tracelake.sql_csv(data, q) == tracelake.sql_csv(direct, q)
    assert tracelake.sql_csv(data, q)[1][0] == "3000"


def test_metrics_count_received_accepted_and_refused(tracelake, tmp_path):
    port = free_port()
    server = start(tracelake, tmp_path / "d", port)
    try:
        body = (
            '{"resourceSpans":[{"scopeSpans":[{"spans":['
            '{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok",'
            '"startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000001"},'
            '{"traceId":"5b8efff798038103d269b633813fc6","spanId":"eee19b7ec3c1b175","name":"bad",'
            '"startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000001"}]}]}]}'
        ).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        assert samples["tracelake_spans_received_total"] == "2"
        assert samples["tracelake_spans_accepted_total"] == "1"
        assert samples['tracelake_spans_refused_total{reason="invalid"}'] == "1"
        assert samples["tracelake_spans_buffered"] == "1"
        assert int(samples["tracelake_wal_syncs_total"]) >= 1
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


SDK_FROM_ENVIRONMENT = """
from opentelemetry.exporter.otlp.proto.{kind}.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
provider = TracerProvider(resource=Resource.create())   # service.name from OTEL_SERVICE_NAME
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))   # endpoint etc. from the environment
with provider.get_tracer("env-test").start_as_current_span("configured-by-env"):
    pass
provider.shutdown()
"""


def test_sdks_configured_only_by_the_readme_environment_variables(tracelake, tmp_path):
    """The README's OTEL_EXPORTER_OTLP_* settings work as written, for both exporters, in a
    separate process that configures nothing in code."""
    import os
    import sys
    data, port, grpc_port = tmp_path / "data", free_port(), free_port()
    server = start(tracelake, data, port, grpc_port)
    try:
        for kind, endpoint, service in [("http", f"http://127.0.0.1:{port}/v1/traces", "env-http"),
                                        ("grpc", f"http://127.0.0.1:{grpc_port}", "env-grpc")]:
            env = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
                   "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_SERVICE_NAME": service,
                   "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf" if kind == "http" else "grpc"}
            run = subprocess.run([sys.executable, "-c", SDK_FROM_ENVIRONMENT.format(kind=kind)], env=env,
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0 and "Failed to export" not in run.stderr, run.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, server.stderr.read()
    rows = tracelake.sql_csv(data, "SELECT service_name, span_name FROM spans ORDER BY 1")
    assert rows[1:] == [["env-grpc", "configured-by-env"], ["env-http", "configured-by-env"]]
