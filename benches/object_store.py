#!/usr/bin/env python3
"""The SLO report on S3-compatible object storage vs a local directory, same workload.

Starts `moto_server` (moto[server], the test venv has it) on 127.0.0.1, writes the same
`tracelake gen` workload into `s3://bench/slo` and into a local directory, then times
`sql/reports/slo_by_operation_hour.sql` with `tracelake sql` (a process per run, so every run
lists and reads the store afresh: no cache survives) on both, warm median of --runs, checks
that the answers are identical, and prints a Markdown table. moto is an in-memory Python server
on loopback: the S3 numbers show the cost of the S3 protocol (requests, signing, HTTP), not of
a network or of AWS; tracelake also writes (`gen`) through the same client.

Usage:
    export CARGO_TARGET_DIR=/root/.cache/tracelake-target
    cargo build --release -p tracelake
    /root/.cache/tracelake-venv/bin/python benches/object_store.py --spans 1000000
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "clients"))
from s3_server import MotoServer  # noqa: E402

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", "/root/.cache/tracelake-target"))


def run(cmd, env):
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed: {proc.stderr}")
    return time.perf_counter() - t, proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", default=str(TARGET / "release" / "tracelake"))
    args = ap.parse_args()
    sql = (REPO / "sql" / "reports" / "slo_by_operation_hour.sql").read_text()
    s3 = MotoServer(bucket="bench")
    try:
        local = Path(tempfile.mkdtemp(prefix="tl-objstore-")) / "data"
        sides = {"local directory": (str(local), None), "S3 (moto on 127.0.0.1)": (s3.url("slo"), s3.env())}
        rows = []
        answers = {}
        for name, (data, env) in sides.items():
            gen_s, _ = run([args.bin, "gen", "--spans", str(args.spans), "--seed", "1", "--data", data], env)
            first, answers[name] = run([args.bin, "sql", "--data", data, "--format", "csv", sql], env)
            times = [run([args.bin, "sql", "--data", data, "--format", "csv", sql], env)[0] for _ in range(args.runs)]
            rows.append((name, gen_s, first, statistics.median(times), times))
            print(f"{name}: gen {gen_s:.1f} s, first {first:.2f} s, warm median {statistics.median(times):.2f} s", flush=True)
        same = len(set(answers.values())) == 1
        files = len(list(local.glob("spans/**/*.parquet")))
        base = rows[0][3]
        print(f"\n{args.spans:,} spans (`tracelake gen --seed 1`), {files} span files; query "
              f"`sql/reports/slo_by_operation_hour.sql`; `tracelake sql` per run; answers identical: {same}\n")
        print("| store | `gen` (write) s | first query s | warm median s | warm runs s | vs local |")
        print("|---|---|---|---|---|---|")
        for name, gen_s, first, med, times in rows:
            print(f"| {name} | {gen_s:.1f} | {first:.2f} | {med:.2f} | {', '.join(f'{t:.2f}' for t in times)} "
                  f"| {med / base:.2f} |")
        if not same:
            raise SystemExit("the answers differ between the stores")
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
