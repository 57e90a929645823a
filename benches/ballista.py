#!/usr/bin/env python3
"""Ballista with 2 executors vs the embedded engine, same files, same machine.

Starts `deploy/ballista/run-local.sh` (a scheduler and 2 executors as processes on 127.0.0.1),
then runs the issue-7 suite's Q1 (SLO table, one day) and Q6 (critical path of the slowest 1 %)
and the suite's Q5 (`service_edges`) with `tracelake sql` embedded and with `--ballista`, warm
median of --runs, checking the answers are identical. On one 2-core machine Ballista cannot be
faster (the executors share the same cores); the table shows what distribution costs: planning
on the scheduler, stage scheduling, shuffle files and Arrow Flight transfers between executors.

Usage (a data directory made by benches/suite.py, e.g. /tmp/suite/data with 10M spans):
    cargo build --release -p tracelake
    /root/.cache/tracelake-venv/bin/python benches/ballista.py --data /tmp/suite/data
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benches"))
import datetime as dt  # noqa: E402

from suite import q1, q5, q6  # noqa: E402

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", "/root/.cache/tracelake-target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd):
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - t, proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=str(TARGET / "release" / "tracelake"))
    args = ap.parse_args()
    first = run([args.bin, "sql", "--data", args.data, "--format", "csv", "SELECT min(start_time) FROM spans"])[1]
    day = dt.datetime.fromisoformat(first.splitlines()[1][:10]).replace(tzinfo=dt.timezone.utc)
    op = run([args.bin, "sql", "--data", args.data, "--format", "csv",
              "SELECT service_name, span_name FROM spans WHERE parent_span_id IS NULL GROUP BY 1, 2 "
              "ORDER BY count(*) DESC, 1, 2 LIMIT 1"])[1].splitlines()[1].split(",", 1)
    p = {"day": (day, day + dt.timedelta(days=1)), "op": tuple(op)}
    queries = {"Q1 SLO table, one day": q1("tl", p), "Q5 service_edges": q5("tl", p),
               "Q6 critical path, slowest 1 %": q6("tl", p)}
    port = free_port()
    env = dict(os.environ, TRACELAKE=args.bin, SCHEDULER_PORT=str(port), EXECUTORS="2",
               EXECUTOR_BASE_PORT=str(free_port() // 100 * 100 % 40000 + 20000),
               WORK_DIR=tempfile.mkdtemp(prefix="tl-ballista-bench-"))
    cluster = subprocess.Popen([str(REPO / "deploy" / "ballista" / "run-local.sh")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"df://127.0.0.1:{port}"
    rows = []
    try:
        deadline = time.time() + 60
        while subprocess.run([args.bin, "sql", "--data", args.data, "--ballista", url, "SELECT 1"],
                             capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("the Ballista cluster did not come up")
            time.sleep(0.5)
        for name, sql in queries.items():
            emb = [run([args.bin, "sql", "--data", args.data, "--format", "csv", sql]) for _ in range(args.runs + 1)]
            bal = [run([args.bin, "sql", "--data", args.data, "--ballista", url, "--format", "csv", sql])
                   for _ in range(args.runs + 1)]
            same = emb[0][1] == bal[0][1]
            e, b = statistics.median(t for t, _ in emb[1:]), statistics.median(t for t, _ in bal[1:])
            rows.append((name, e, b, same))
            print(f"{name}: embedded {e:.2f} s, Ballista {b:.2f} s, same answer {same}", flush=True)
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        cluster.wait(timeout=30)
    print(f"\n{args.data}; `tracelake sql` per run (process start included), warm median of {args.runs}; "
          "Ballista: 1 scheduler + 2 executors on the same 2 cores\n")
    print("| query | embedded s | Ballista (2 executors) s | Ballista / embedded | answers identical |")
    print("|---|---|---|---|---|")
    for name, e, b, same in rows:
        print(f"| {name} | {e:.2f} | {b:.2f} | {b / e:.2f} | {'yes' if same else 'NO'} |")
    if not all(r[3] for r in rows):
        raise SystemExit("answers differ")


if __name__ == "__main__":
    main()
