"""tracelake on S3 (a real S3-compatible server, moto, on 127.0.0.1): an outage in the middle
of a flush loses and duplicates nothing, and the maintenance verbs work on object storage.
(The ingest → query end-to-end test runs on both stores: test_serve_otlp.py, `store` fixture.)"""
import os
import re
import signal
import time
import urllib.request

from s3_server import CuttableProxy
from test_serve_otlp import free_port, start


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_for(what, check, timeout=90):
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def test_s3_outage_mid_flush_loses_and_duplicates_nothing(tracelake, s3, tmp_path):
    proxy = CuttableProxy(s3.port)
    env = s3.env(proxy.endpoint)
    # Fail fast inside object_store, so that the server's own flush retry (WAL kept) is exercised.
    env.update({"TRACELAKE_S3_RETRY_TIMEOUT_SECS": "1", "TRACELAKE_S3_MAX_RETRIES": "1"})
    through_proxy = tracelake.with_env(env)
    direct = tracelake.with_env(s3.env())
    prefix = f"outage-{os.getpid()}"
    data, port = s3.url(prefix), free_port()
    server = start(through_proxy, data, port, extra=["--wal-dir", str(tmp_path / "wal"), "--flush-interval-secs", "1",
                                                     "--maintenance-interval-secs", "0"])
    # The next flush's first object (a span file) reaches S3, then S3 "stops".
    proxy.cut_after_puts(1)
    through_proxy.run("gen", "--endpoint", f"http://127.0.0.1:{port}", "--spans", "3000", "--seed", "3",
                      "--services", "6", "--hours", "1")
    wait_for("two failed flushes", lambda: metric(port, "tracelake_flush_failures_total") >= 2)
    stored = [k for k in s3.keys(prefix) if k.endswith(".parquet")]
    assert len(stored) == 1, f"exactly the first file of the flush got through: {stored}"
    partial = int(direct.sql_csv(data, "SELECT count(*) FROM spans")[1][0])
    assert 0 < partial < 3000, partial

    proxy.restore()
    wait_for("the retried flush", lambda: metric(port, "tracelake_buffered_spans") == 0)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, server.stderr.read()
    rows = direct.sql_csv(data, "SELECT count(*), count(DISTINCT trace_id || span_id) FROM spans")
    assert rows[1] == ["3000", "3000"], "every acknowledged span stored exactly once"
    # The same answer as the same workload generated straight into a local directory.
    local = tmp_path / "local"
    tracelake.run("gen", "--data", str(local), "--spans", "3000", "--seed", "3", "--services", "6", "--hours", "1")
    summary = ("SELECT service_name, count(*), sum(duration_ns), min(span_id), max(span_id) FROM spans "
               "GROUP BY 1 ORDER BY 1")
    assert direct.sql_csv(data, summary) == tracelake.sql_csv(local, summary)


def test_compact_and_retain_on_s3(tracelake, s3, tmp_path):
    tl = tracelake.with_env(s3.env())
    prefix = f"maint-{os.getpid()}"
    data = s3.url(prefix)
    # Three loads of the same 2 hours: three files per partition.
    for seed in (1, 2, 3):
        out = tmp_path / f"otlp-{seed}"
        tl.run("gen", "--otlp-out", str(out), "--spans", "2000", "--seed", str(seed), "--services", "3",
               "--hours", "2", "--start", "2026-01-01T00:00:00Z")
        tl.run("ingest", "--data", data, *[str(p) for p in sorted(out.iterdir())])
    summary = "SELECT service_name, count(*), sum(duration_ns) FROM spans GROUP BY 1 ORDER BY 1"
    before = tl.sql_csv(data, summary)
    files = lambda: sorted(k for k in s3.keys(f"{prefix}/spans/") if k.endswith(".parquet"))
    partitions = {k.rsplit("/", 1)[0] for k in files()}
    assert len(files()) == 3 * len(partitions)

    tl.run("compact", "--data", data, "--min-file-age-secs", "0", "--grace-secs", "0")
    assert len(files()) == len(partitions), files()
    assert tl.sql_csv(data, summary) == before

    dry = tl.run("retain", "--data", data, "--older-than", "1d", "--dry-run")
    assert "would delete date=2026-01-01/hour=00" in dry.stdout and "date=2026-01-01/hour=01" in dry.stdout
    assert len(files()) == len(partitions), "a dry run deletes nothing"
    tl.run("retain", "--data", data, "--older-than", "1d")
    assert files() == []
    assert tl.sql_csv(data, "SELECT count(*) FROM spans")[1] == ["0"]
