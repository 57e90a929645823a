#!/usr/bin/env python3
"""`tracelake gate` benchmark: baseline vs candidate over ~2 × 1M spans, end to end (read the
Parquet files, bootstrap, tests, report), against a peer doing *less* work on the same files:
DuckDB reading the two sides' durations + numpy quantiles/mean + scipy's KS and Mann–Whitney
(no bootstrap, no per-operation split, no correction). Prints a Markdown table for
BENCHMARKS.md.

Cases (median of --runs, each a fresh process; the OS page cache is warm after the first):
    single         all spans, v1 vs v2: default rules (p50 +10%, p99 +10%, error_rate +0.5pp)
    per-operation  the same, gated per (service, operation), Holm over every rule
    traces         --unit traces (trace durations: a join of roots with all their spans)

Usage (release binary first; Python packages from the test venv: duckdb, numpy, scipy):
    export CARGO_TARGET_DIR=/root/.cache/tracelake-target
    cargo build --release -p tracelake
    /root/.cache/tracelake-venv/bin/python benches/gate.py --spans 2000000 --runs 3
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import scipy.stats

REPO = Path(__file__).resolve().parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
BIN = str(TARGET / "release" / "tracelake")
V1 = "resource_attributes['service.version'] = 'v1'"
V2 = "resource_attributes['service.version'] = 'v2'"
CASES = {
    "single": [],
    "per-operation": ["--per-operation"],
    "traces": ["--unit", "traces"],
}


def run_gate(data, extra):
    env = dict(os.environ, TRACELAKE_LOG="tracelake=info")
    start = time.perf_counter()
    proc = subprocess.run([BIN, "gate", "--data", str(data), "--baseline", V1, "--candidate", V2, "--quiet",
                           "--json", os.devnull, *extra], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2):
        raise SystemExit(f"gate failed ({proc.returncode}): {proc.stderr}")
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr)  # tracing colours its fields
    fetch = re.search(r"fetch_ms=(\d+)", log)
    rows = [int(x) for x in re.findall(r"rows=(\d+)", log)]
    return wall, int(fetch.group(1)) / 1000 if fetch else float("nan"), rows, proc.returncode


def run_peer(data):
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning=true)")
    sides = []
    for predicate in (V1, V2):
        d, e = con.execute(f"SELECT duration_ns, status_code = 'ERROR' FROM spans WHERE {predicate}").fetchnumpy().values()
        sides.append((np.sort(d), int(e.sum())))
    (b, _), (c, _) = sides
    for values in (b, c):
        np.quantile(values, [0.5, 0.9, 0.95, 0.99, 0.999], method="linear")
        values.mean()
    scipy.stats.ks_2samp(b, c, method="asymp")
    scipy.stats.mannwhitneyu(c, b, alternative="greater", method="asymptotic")
    return time.perf_counter() - start, (len(b), len(c))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", help="reuse (or create) this data directory instead of a temporary one")
    args = parser.parse_args()

    tmp = None
    data = Path(args.data) if args.data else Path(tmp := tempfile.mkdtemp(prefix="gate-bench-")) / "data"
    if not (data / "spans").exists():
        start = time.perf_counter()
        subprocess.run([BIN, "gen", "--spans", str(args.spans), "--seed", "42", "--data", str(data),
                        "--regression", "checkout/POST /api/checkout@v2*1.3"], check=True, capture_output=True)
        print(f"generated {args.spans} spans in {time.perf_counter() - start:.1f} s into {data}")

    peer_times = []
    for _ in range(args.runs):
        t, sizes = run_peer(data)
        peer_times.append(t)
    peer = statistics.median(peer_times)

    print(f"\n| case | spans per side (baseline / candidate) | tracelake gate, median of {args.runs} | of which reading spans | DuckDB + numpy + scipy (no bootstrap) | ratio | exit |")
    print("|---|---|---|---|---|---|---|")
    for name, extra in CASES.items():
        results = [run_gate(data, extra) for _ in range(args.runs)]
        wall = statistics.median(r[0] for r in results)
        fetch = statistics.median(r[1] for r in results)
        rows, code = results[0][2], results[0][3]
        peer_cell = f"{peer:.2f} s" if name != "traces" else "n/a"
        ratio = f"{wall / peer:.2f}×" if name != "traces" else "n/a"
        print(f"| {name} | {' / '.join(f'{r:,}' for r in rows)} | {wall:.2f} s | {fetch:.2f} s | {peer_cell} | {ratio} | {code} |")
    print(f"\npeer runs: {', '.join(f'{t:.2f}' for t in peer_times)} s; sides {sizes[0]:,} / {sizes[1]:,} spans")
    if tmp:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
