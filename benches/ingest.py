#!/usr/bin/env python3
"""OTLP/gRPC ingest benchmark: `tracelake serve` under the `otlp-load` generator, with and
without WAL group commit. Prints Markdown tables for BENCHMARKS.md.

For each mode (and each of --runs runs): start `tracelake serve` on free ports with a fresh data
directory, wait for /ready, run `otlp-load` (it generates and encodes its requests before
timing; its first stderr line marks the start of the timed phase), take the server's CPU time
(utime + stime from /proc/<pid>/stat) and the machine's busy time (/proc/stat) around the timed
phase, scrape /metrics (WAL records, fsyncs and bytes, buffered bytes, flushes), SIGTERM the
server (final flush; its CPU from wait4), and check with `tracelake sql` that every acknowledged
span is stored exactly once. The tables show the median run by spans/s and all runs' rates.

Modes:
    group-commit              defaults (flushes to Parquet by size and age happen during the run)
    fsync-per-request         --wal-group-commit false
    group-commit-noflush      --flush-bytes/--max-buffered-bytes 64 GiB: only receive, decode,
                              convert and WAL run during the load (Parquet at SIGTERM)
    fsync-per-request-noflush both

Usage (Python 3 stdlib only; builds nothing, release binaries first):
    export CARGO_TARGET_DIR=/root/.cache/tracelake-target
    cargo build --release -p tracelake
    cargo build --release -p tracelake-benches --bin otlp-load
    python3 benches/ingest.py --spans 1000000 --runs 3

    # perf profile (call graphs via .eh_frame) of the server during the load of one mode:
    python3 benches/ingest.py --modes group-commit-noflush --runs 1 --perf /tmp/perf
    perf report -i /tmp/perf/group-commit-noflush.data --stdio --children --sort sym -g none | head -60
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


def machine_busy_secs():
    """CPU seconds all cores spent busy (not idle or waiting for I/O), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS


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
                    "--concurrency", str(args.concurrency), "--seed", str(args.seed), "--hours", str(args.hours), "--json"]
        if args.gzip:
            load_cmd.append("--gzip")
        load = subprocess.Popen(load_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # otlp-load prints its first stderr line once its requests are generated: the timed
        # phase starts right after it.
        first_line = load.stderr.readline()
        cpu_before, busy_before = cpu_secs(server.pid), machine_busy_secs()
        perf = None
        if args.perf:
            perf_data = Path(args.perf) / f"{mode}.data"
            perf_data.parent.mkdir(parents=True, exist_ok=True)
            perf = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(server.pid),
                                     "-o", str(perf_data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out, err = load.communicate()
        cpu_load, busy = cpu_secs(server.pid) - cpu_before, machine_busy_secs() - busy_before
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        err = first_line + err
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
        # Everything after the load started: the load, then the final flush at SIGTERM.
        cpu_total = usage.ru_utime + usage.ru_stime - cpu_before
        csv = subprocess.run([args.bin, "sql", "--data", str(data), "--format", "csv",
                              "SELECT count(*) AS n, count(DISTINCT trace_id || span_id) AS d FROM spans"],
                             check=True, capture_output=True, text=True, env=env).stdout
        stored, distinct = (int(v) for v in csv.strip().splitlines()[-1].split(","))
        files = len(list(data.glob("spans/**/*.parquet")))
        log.seek(0)
        server_log = log.read()
        return {
            "mode": mode, "flags": " ".join(extra), "load": result, "server_cpu_load_s": cpu_load,
            "other_cpu_s": max(0.0, busy - cpu_load - (result["client_cpu_s"] or 0)),
            "server_cpu_total_s": cpu_total, "stop_s": stop_s, "stored": stored, "distinct": distinct, "files": files,
            "wal_records": m.get("tracelake_wal_records_total", 0), "wal_syncs": m.get("tracelake_wal_syncs_total", 0),
            "flushes_during_load": m.get("tracelake_flush_duration_seconds_count", 0),
            "wal_bytes": m.get("tracelake_wal_bytes_total", 0), "buffered_bytes": m.get("tracelake_buffered_bytes", 0),
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
    ap.add_argument("--hours", type=int, default=1, help="hours the span start times spread over")
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--flush-interval-secs", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3, help="runs per mode; the table shows the median run by spans/s")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated, from: " + ", ".join(MODES))
    ap.add_argument("--bin", default=str(TARGET / "release/tracelake"))
    ap.add_argument("--load", default=str(TARGET / "release/otlp-load"))
    ap.add_argument("--perf", help="directory for `perf record` data of the server during each load "
                                   "(perf slows the server: do not report these numbers)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    args = ap.parse_args()

    results = []
    for mode in args.modes.split(","):
        runs = []
        for _ in range(args.runs):
            r = run_mode(args, mode, MODES[mode])
            print(json.dumps(r), flush=True)
            runs.append(r)
        runs.sort(key=lambda r: r["load"]["spans_per_s"])
        median = dict(runs[len(runs) // 2])
        median["rates"] = [r["load"]["spans_per_s"] for r in runs]
        median["per_core"] = [r["load"]["spans_ok"] / r["server_cpu_load_s"] for r in runs]
        median["all_ok"] = all(
            r["stored"] == r["load"]["spans_ok"] == r["distinct"] and r["load"]["spans_failed"] == 0
            and r["load"]["spans_rejected"] == 0 for r in runs)
        results.append(median)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    print(f"\nspans={args.spans} batch={args.batch} concurrency={args.concurrency} gzip={args.gzip} "
          f"seed={args.seed} hours={args.hours} runs={args.runs} cores={os.cpu_count()} commit={commit}\n")
    print("| mode | spans | wall s | spans/s | server CPU s | spans/s per server core | p50 / p99 ack ms "
          "| records per fsync | load generator CPU s | RESOURCE_EXHAUSTED retries |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lo = r["load"]
        per_sync = r["wal_records"] / r["wal_syncs"] if r["wal_syncs"] else float("nan")
        print(f"| {r['mode']} | {lo['spans_ok']:,} | {lo['wall_s']:.2f} | {lo['spans_per_s']:,.0f} "
              f"| {r['server_cpu_load_s']:.2f} | {lo['spans_ok'] / r['server_cpu_load_s']:,.0f} "
              f"| {lo['p50_ms']:.0f} / {lo['p99_ms']:.0f} | {per_sync:.1f} | {lo['client_cpu_s']:.2f} | {lo['retries']} |")
    print()
    print("| mode | spans/s, all runs | per server core, all runs | other CPU s on the machine | flushes during load "
          "| SIGTERM → exit s (final flush) | spans/s per server core incl. final flush | WAL B/span | Arrow B/span buffered "
          "| stored = sent, distinct (all runs) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lo = r["load"]
        buffered = f"{r['buffered_bytes'] / lo['spans_ok']:.0f}" if not r["flushes_during_load"] else "–"
        print(f"| {r['mode']} | {', '.join(f'{v / 1e3:.0f}k' for v in r['rates'])} "
              f"| {', '.join(f'{v / 1e3:.0f}k' for v in r['per_core'])} | {r['other_cpu_s']:.2f} "
              f"| {r['flushes_during_load']:.0f} | {r['stop_s']:.1f} | {lo['spans_ok'] / r['server_cpu_total_s']:,.0f} "
              f"| {r['wal_bytes'] / lo['spans_ok']:.0f} | {buffered} | {'yes' if r['all_ok'] else 'NO'} |")
    for r in results:
        for line in r["server_errors"]:
            print(f"server log ({r['mode']}): {line}")
    if not all(r["all_ok"] for r in results):
        raise SystemExit("some spans were lost or duplicated")


if __name__ == "__main__":
    main()
