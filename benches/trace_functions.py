#!/usr/bin/env python3
"""Trace-function benchmark: critical_path over 1,000 traces, trace_tree of one 10k-span trace,
sketch build/merge throughput, and percentile() next to DuckDB's quantile_cont on the same
Parquet files. Prints a Markdown table for BENCHMARKS.md.

Usage (release build first):
    cargo build --release
    python3 benches/trace_functions.py --spans 10000000 --bin target/release/tracelake

Needs the `duckdb` Python package (./test.sh's venv has it: .venv-test/bin/python).
"""
import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

BIG_TRACE = "ab" * 16


def run(binary, data, sql):
    t = time.perf_counter()
    out = subprocess.run([binary, "sql", "--data", str(data), "--format", "csv", sql],
                         check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t, out


def median_time(fn, runs):
    fn()  # warm
    return statistics.median(fn() for _ in range(runs))


def big_trace_file(path, spans=10_000):
    """One trace of `spans` spans: a root with 100 children, each with 99 grandchildren."""
    base = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
    rows = [{"traceId": BIG_TRACE, "spanId": "%016x" % 1, "name": "root", "kind": 2,
             "startTimeUnixNano": str(base), "endTimeUnixNano": str(base + 10_000_000_000)}]
    sid = 2
    for c in range(100):
        parent = sid
        start = base + c * 100_000_000
        rows.append({"traceId": BIG_TRACE, "spanId": "%016x" % sid, "parentSpanId": "%016x" % 1,
                     "name": f"child-{c}", "kind": 1, "startTimeUnixNano": str(start),
                     "endTimeUnixNano": str(start + 90_000_000)})
        sid += 1
        for g in range(99):
            if sid > spans:
                break
            gs = start + g * 900_000
            rows.append({"traceId": BIG_TRACE, "spanId": "%016x" % sid, "parentSpanId": "%016x" % parent,
                         "name": f"leaf-{g}", "kind": 1, "startTimeUnixNano": str(gs),
                         "endTimeUnixNano": str(gs + 1_000_000)})
            sid += 1
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "big"}}]},
                               "scopeSpans": [{"spans": rows}]}]}
    path.write_text(json.dumps(body))
    return len(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin", default="target/release/tracelake")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", help="reuse/keep this data directory")
    args = ap.parse_args()

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="tl-fn-"))
    if not (data / "spans").exists():
        subprocess.run([args.bin, "gen", "--spans", str(args.spans), "--seed", str(args.seed), "--data", str(data)],
                       check=True, capture_output=True)
        big = data / "big-trace.json"
        n_big = big_trace_file(big)
        subprocess.run([args.bin, "ingest", "--data", str(data), str(big)], check=True, capture_output=True)
    total = int(run(args.bin, data, "SELECT count(*) FROM spans")[1].splitlines()[1])

    results = []
    tree = median_time(lambda: run(args.bin, data, f"SELECT count(*), max(depth), sum(self_time_ns) FROM trace_tree('{BIG_TRACE}')")[0], args.runs)
    results.append(("`trace_tree` of one 10,000-span trace (lookup among all spans + tree)", f"{tree:.3f} s"))
    cp_one = median_time(lambda: run(args.bin, data, f"SELECT count(*), sum(segment_ns) FROM critical_path('{BIG_TRACE}')")[0], args.runs)
    results.append(("`critical_path` of the same trace", f"{cp_one:.3f} s"))

    thousand = ("WITH ids AS (SELECT trace_id FROM spans WHERE parent_span_id IS NULL AND service_name = 'frontend' "
                "ORDER BY trace_id LIMIT 1000) "
                "SELECT count(*), sum(cardinality(p)) FROM (SELECT critical_path_agg(s.span_id, s.parent_span_id, "
                "s.start_time, s.end_time, s.service_name, s.span_name) AS p FROM spans s JOIN ids ON s.trace_id = ids.trace_id "
                "GROUP BY s.trace_id)")
    cp = median_time(lambda: run(args.bin, data, thousand)[0], args.runs)
    results.append(("`critical_path_agg` over 1,000 traces (join to pick them + aggregate)", f"{cp:.3f} s"))

    build = median_time(lambda: run(args.bin, data, "SELECT service_name, hour, latency_sketch(duration_ns) FROM spans GROUP BY 1, 2")[0], args.runs)
    results.append((f"`latency_sketch` per service/hour over {total:,} spans", f"{build:.3f} s = {total / build / 1e6:.1f} M values/s"))
    merge = median_time(lambda: run(args.bin, data,
        "SELECT service_name, sketch_quantile(sketch_merge(s), 0.99) FROM (SELECT service_name, span_name, hour, "
        "latency_sketch(duration_ns) AS s FROM spans GROUP BY 1, 2, 3) GROUP BY 1")[0], args.runs)
    results.append(("build per service/operation/hour + `sketch_merge` to per-service p99", f"{merge:.3f} s"))

    q = "SELECT service_name, percentile(duration_ns, 0.99) AS p99 FROM spans GROUP BY 1 ORDER BY 1"
    ours = median_time(lambda: run(args.bin, data, q)[0], args.runs)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning = true)")
    dq = q.replace("percentile(", "quantile_cont(")

    def theirs():
        t = time.perf_counter()
        con.execute(dq).fetchall()
        return time.perf_counter() - t

    duck = median_time(theirs, args.runs)
    results.append((f"`percentile(duration_ns, 0.99)` per service, {total:,} rows, tracelake CLI", f"{ours:.3f} s"))
    results.append(("same with DuckDB `quantile_cont`, same files", f"{duck:.3f} s (ratio {ours / duck:.2f})"))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"spans={total} commit={commit} runs={args.runs} (median, warm)\n")
    print("| measurement | result |\n|---|---|")
    for name, value in results:
        print(f"| {name} | {value} |")
    if not args.data:
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
