#!/usr/bin/env python3
"""Foundation benchmark: gen+write throughput, bytes per span, and one SLO query next to DuckDB
on the same Parquet files. Prints a Markdown table for BENCHMARKS.md.

Usage (release build first):
    cargo build --release
    python3 benches/foundation.py --spans 1000000 --bin target/release/tracelake

Needs the `duckdb` Python package (./test.sh's venv has it: .venv-test/bin/python).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", default=str(REPO / "target/release/tracelake"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", help="directory to keep the data in")
    args = ap.parse_args()

    data = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tl-bench-"))
    if data.exists():
        shutil.rmtree(data)
    t = time.perf_counter()
    subprocess.run([args.bin, "gen", "--spans", str(args.spans), "--seed", str(args.seed), "--data", str(data)],
                   check=True, capture_output=True)
    gen_s = time.perf_counter() - t
    files = list(data.glob("spans/**/*.parquet"))
    size = sum(f.stat().st_size for f in files)

    otlp = Path(tempfile.mkdtemp(prefix="tl-otlp-"))
    sample = min(args.spans, 100_000)
    subprocess.run([args.bin, "gen", "--spans", str(sample), "--seed", str(args.seed), "--otlp-out", str(otlp)],
                   check=True, capture_output=True)
    otlp_bytes = sum(f.stat().st_size for f in otlp.glob("*.pb")) / sample
    shutil.rmtree(otlp)

    slo = (REPO / "sql/reports/slo_by_operation_hour.sql").read_text()
    threads = os.cpu_count() or 2

    def ours():
        subprocess.run([args.bin, "sql", "--data", str(data), "--format", "csv", slo], check=True, capture_output=True)

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning = true)")

    def theirs():
        con.execute(slo.replace("percentile(", "quantile_cont(")).fetchall()

    ours(); theirs()  # warm the page cache for both
    ours_s, _ = timed(ours, args.runs)
    theirs_s, _ = timed(theirs, args.runs)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    print(f"spans={args.spans} seed={args.seed} files={len(files)} threads={threads} commit={commit}")
    print()
    print("| metric | value |")
    print("|---|---|")
    print(f"| gen + write ({args.spans:,} spans, wall, incl. process start) | {gen_s:.2f} s = {args.spans / gen_s:,.0f} spans/s |")
    print(f"| bytes on disk per span | {size / args.spans:.1f} B ({size / 1e6:.1f} MB in {len(files)} files) |")
    print(f"| OTLP protobuf bytes per span (same workload) | {otlp_bytes:.1f} B (ratio {otlp_bytes / (size / args.spans):.1f}x) |")
    print(f"| SLO per service/operation/hour, tracelake sql (CLI, warm, median of {args.runs}) | {ours_s:.3f} s |")
    print(f"| same query, DuckDB {duckdb.__version__} (Python, warm, median of {args.runs}) | {theirs_s:.3f} s |")
    print(f"| ratio tracelake / DuckDB | {ours_s / theirs_s:.2f} |")
    if not args.keep:
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
