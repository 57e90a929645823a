#!/usr/bin/env python3
"""OTLP/gRPC ingest benchmark: `tracelake serve` under the `otlp-load` generator, with and
without WAL group commit. Prints a Markdown table for BENCHMARKS.md.

For each mode: start `tracelake serve` on free ports with a fresh data directory, wait for
/ready, run `otlp-load` (it generates its requests before timing), take the server's CPU time
(utime + stime from /proc/<pid>/stat) before and after the load, scrape /metrics (WAL records
and fsyncs, flushes), SIGTERM the server (final flush; its total CPU comes from wait4), and check
with `tracelake sql` that every acknowledged span is stored exactly once.

Modes:
    group-commit         defaults (flushes to Parquet by size and age happen during the run)
    fsync-per-request    --wal-group-commit false
    group-commit-noflush --flush-bytes/--max-buffered-bytes 64 GiB: only convert + WAL is timed
    fsync-per-request-noflush

Usage (Python 3 stdlib only; builds nothing, release binaries first):
    export CARGO_TARGET_DIR=/root/.cache/tracelake-target
    cargo build --release -p tracelake
    cargo build --release -p tracelake-benches --bin otlp-load
    python3 benches/ingest.py --spans 1000000

    # with a flat perf profile of the server during the load of one mode:
    python3 benches/ingest.py --modes group-commit-noflush --perf /tmp/perf-ingest
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
TICKS = os.sysconf("SC_CLK_TCK")
HUGE = str(64 << 30)

MODES = {
    "group-commit": [],
    "fsync-per-request": ["--wal-group-commit", "false"],
    "group-commit-noflush": ["--flush-bytes", HUGE, "--max-buffered-bytes", HUGE],
    "fsync-per-request-noflush": ["--wal-group-commit", "false", "--flush-bytes", HUGE, "--max-buffered-bytes", HUGE],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_secs(pid):
    """utime + stime of a live process, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def metrics(http):
    text = urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def wait_ready(http, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tracelake serve exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(f"http://{http}/ready", timeout=1).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("tracelake serve did not become ready")


def run_mode(args, mode, extra):
    data = Path(tempfile.mkdtemp(prefix="tl-ingest-"))
    grpc, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELAKE_")}
    log = open(data.parent / f"{data.name}.log", "w+")
    server = subprocess.Popen(
        [args.bin, "serve", "--data", str(data), "--otlp-grpc-addr", grpc, "--otlp-http-addr", http,
         "--flight-addr", f"127.0.0.1:{free_port()}", "--http-addr", f"127.0.0.1:{free_port()}",
         "--flush-interval-secs", str(args.flush_interval_secs), *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(http, server)
        load_cmd = [args.load, "--endpoint", f"http://{grpc}", "--spans", str(args.spans), "--batch", str(args.batch),
                    "--concurrency", str(args.concurrency), "--seed", str(args.seed), "--json"]
        if args.gzip:
            load_cmd.append("--gzip")
        cpu_before = cpu_secs(server.pid)
        load = subprocess.Popen(load_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        perf = None
        if args.perf:
            # otlp-load prints its first stderr line once its requests are generated.
            load.stderr.readline()
            perf_data = Path(args.perf) / f"{mode}.data"
            perf_data.parent.mkdir(parents=True, exist_ok=True)
            perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(server.pid), "-o", str(perf_data)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out, err = load.communicate()
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        cpu_load = cpu_secs(server.pid) - cpu_before
        if load.returncode not in (0, 1):
            raise RuntimeError(f"otlp-load failed ({load.returncode}): {err}{out}")
        result = json.loads(out.strip().splitlines()[-1])
        m = metrics(http)
        t = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(server.pid, 0)
        server.returncode = os.waitstatus_to_exitcode(status)
        stop_s = time.perf_counter() - t
        if server.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"tracelake serve exited with {server.returncode}:\n{log.read()}")
        cpu_total = usage.ru_utime + usage.ru_stime
        csv = subprocess.run([args.bin, "sql", "--data", str(data), "--format", "csv",
                              "SELECT count(*) AS n, count(DISTINCT trace_id || span_id) AS d FROM spans"],
                             check=True, capture_output=True, text=True, env=env).stdout
        stored, distinct = (int(v) for v in csv.strip().splitlines()[-1].split(","))
        log.seek(0)
        server_log = log.read()
        return {
            "mode": mode, "flags": " ".join(extra), "load": result, "server_cpu_load_s": cpu_load,
            "server_cpu_total_s": cpu_total, "stop_s": stop_s, "stored": stored, "distinct": distinct,
            "wal_records": m.get("tracelake_wal_records_total", 0), "wal_syncs": m.get("tracelake_wal_syncs_total", 0),
            "flushes_during_load": m.get("tracelake_flush_duration_seconds_count", 0),
            "refused_overloaded": m.get('tracelake_spans_refused_total{reason="overloaded"}', 0),
            "server_errors": [line for line in server_log.splitlines() if "ERROR" in line or "WARN" in line][:5],
        }
    finally:
        if server.returncode is None:
            server.kill()
            server.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)
        if args.keep:
            print(f"kept {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--flush-interval-secs", type=int, default=30)
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    ap.add_argument("--bin", default=str(TARGET / "release/tracelake"))
    ap.add_argument("--load", default=str(TARGET / "release/otlp-load"))
    ap.add_argument("--perf", help="directory for `perf record` data of the server during each load")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    args = ap.parse_args()

    results = []
    for mode in args.modes.split(","):
        r = run_mode(args, mode, MODES[mode])
        results.append(r)
        print(json.dumps(r), flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    print(f"\nspans={args.spans} batch={args.batch} concurrency={args.concurrency} gzip={args.gzip} "
          f"seed={args.seed} cores={os.cpu_count()} commit={commit}\n")
    print("| mode | spans | wall s | spans/s | server CPU s | spans/s per server core | p50 / p99 ack ms "
          "| records per fsync | load generator CPU s | RESOURCE_EXHAUSTED retries |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lo = r["load"]
        per_sync = r["wal_records"] / r["wal_syncs"] if r["wal_syncs"] else float("nan")
        print(f"| {r['mode']} | {lo['spans_ok']:,} | {lo['wall_s']:.2f} | {lo['spans_per_s']:,.0f} "
              f"| {r['server_cpu_load_s']:.2f} | {lo['spans_ok'] / r['server_cpu_load_s']:,.0f} "
              f"| {lo['p50_ms']:.1f} / {lo['p99_ms']:.1f} | {per_sync:.1f} | {lo['client_cpu_s']:.2f} | {lo['retries']} |")
    print()
    print("| mode | flushes during load | SIGTERM → exit s (final flush) | server CPU s incl. final flush "
          "| spans/s per server core incl. flushes | stored = sent, distinct | errors |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        lo = r["load"]
        exact = r["stored"] == lo["spans_ok"] == r["distinct"] and lo["spans_failed"] == 0 and lo["spans_rejected"] == 0
        ok &= exact
        errors = ", ".join(f"{k}={v}" for k, v in lo["errors"].items()) or "none"
        print(f"| {r['mode']} | {r['flushes_during_load']:.0f} | {r['stop_s']:.2f} | {r['server_cpu_total_s']:.2f} "
              f"| {lo['spans_ok'] / r['server_cpu_total_s']:,.0f} "
              f"| {'yes' if exact else 'NO'} ({r['stored']:,}, {r['distinct']:,}) | {errors} |")
    for r in results:
        for line in r["server_errors"]:
            print(f"server log ({r['mode']}): {line}")
    if not ok:
        raise SystemExit("some spans were lost or duplicated")


if __name__ == "__main__":
    main()
