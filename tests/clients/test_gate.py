"""`tracelake gate` end to end: a planted regression is found on exactly its operation, the
numbers agree with numpy / scipy on the same spans read by DuckDB, too few samples are
inconclusive, plots are real images, and errors exit 3."""
import json
import struct
import xml.etree.ElementTree as ET

import duckdb
import numpy as np
import pytest
import scipy.stats

from conftest import REPO, SERVERS
from test_serve_otlp import free_port, start

V1 = "resource_attributes['service.version'] = 'v1'"
V2 = "resource_attributes['service.version'] = 'v2'"
SERVICE, OPERATION = "checkout", "POST /api/checkout"


@pytest.fixture(scope="module")
def planted(tracelake, tmp_path_factory):
    """200k spans; v2 of checkout's `POST /api/checkout` is 30 % slower, nothing else differs."""
    data = tmp_path_factory.mktemp("gate") / "data"
    tracelake.run("gen", "--spans", "200000", "--seed", "42", "--data", str(data),
                  "--regression", f"{SERVICE}/{OPERATION}@v2*1.3")
    return data


def gate(tracelake, *args, expect):
    proc = tracelake.run("gate", *args, check=False)
    assert proc.returncode == expect, f"exit {proc.returncode}, wanted {expect}\n{proc.stdout}\n{proc.stderr}"
    return proc


def gate_json(tracelake, tmp_path, *args, expect):
    out = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.json"
    proc = gate(tracelake, *args, "--json", str(out), expect=expect)
    return json.loads(out.read_text()), proc


def duck_side(data, predicate, service=SERVICE, operation=OPERATION):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning=true)")
    rows = con.execute(
        f"SELECT duration_ns, status_code = 'ERROR' FROM spans WHERE ({predicate}) AND service_name = ? AND span_name = ?",
        [service, operation]).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64), sum(1 for r in rows if r[1])


def test_planted_regression_fails_exactly_that_operation(tracelake, planted, tmp_path):
    md = tmp_path / "gate.md"
    report, proc = gate_json(tracelake, tmp_path, "--data", str(planted), "--baseline", V1, "--candidate", V2,
                             "--per-operation", "--markdown", str(md), expect=1)
    assert report["verdict"] == "regression" and report["exit_code"] == 1
    regressed = [(c["scope"]["service"], c["scope"]["operation"]) for c in report["comparisons"]
                 if c["verdict"] == "regression"]
    assert regressed == [(SERVICE, OPERATION)]
    others = [c for c in report["comparisons"] if c["verdict"] != "regression"]
    assert len(others) > 50 and all(c["verdict"] == "pass" for c in others)
    worst = report["comparisons"][0]
    assert (worst["scope"]["service"], worst["scope"]["operation"]) == (SERVICE, OPERATION)
    p50 = next(r for r in worst["rules"] if r["threshold"] == "p50 +10%")
    assert 0.2 < p50["change"] < 0.4 and p50["verdict"] == "regression" and p50["p_adjusted"] < 0.05
    assert "REGRESSION" in proc.stdout and OPERATION in proc.stdout
    markdown = md.read_text()
    assert markdown.startswith("### ❌ tracelake gate: REGRESSION") and f"**Worst: {SERVICE} / {OPERATION}**" in markdown


def test_unaffected_scope_passes_and_seeded_reruns_agree(tracelake, planted, tmp_path):
    args = ["--data", str(planted), "--baseline", V1, "--candidate", V2, "--service", "frontend"]
    one, _ = gate_json(tracelake, tmp_path, *args, expect=0)
    two, _ = gate_json(tracelake, tmp_path, *args, expect=0)
    assert one["verdict"] == "pass"
    assert one["comparisons"] == two["comparisons"]
    other_seed, _ = gate_json(tracelake, tmp_path, *args, "--seed", "7", expect=0)
    ci = lambda r: [(x["ci_low"], x["ci_high"]) for x in r["comparisons"][0]["rules"] if x["threshold"].startswith("p")]
    assert ci(other_seed) != ci(one)


def test_numbers_agree_with_numpy_and_scipy(tracelake, planted, tmp_path):
    report, _ = gate_json(tracelake, tmp_path, "--data", str(planted), "--baseline", V1, "--candidate", V2,
                          "--service", SERVICE, "--operation", OPERATION, expect=1)
    base, base_errors = duck_side(planted, V1)
    cand, cand_errors = duck_side(planted, V2)
    cmp = report["comparisons"][0]
    assert cmp["baseline"]["count"] == len(base) and cmp["candidate"]["count"] == len(cand)
    assert cmp["baseline"]["errors"] == base_errors and cmp["candidate"]["errors"] == cand_errors
    for side, values in (("baseline", base), ("candidate", cand)):
        for key, q in (("p50_ns", .5), ("p90_ns", .9), ("p95_ns", .95), ("p99_ns", .99), ("p999_ns", .999)):
            assert cmp[side][key] == pytest.approx(np.quantile(values, q, method="linear"), rel=1e-12), (side, key)
        assert cmp[side]["mean_ns"] == pytest.approx(values.mean(), rel=1e-12)
    ks = scipy.stats.ks_2samp(base, cand, method="asymp")
    assert cmp["kolmogorov_smirnov"]["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    # tracelake's p-value is Kolmogorov's limiting distribution at sqrt(mn/(m+n))·D; scipy's
    # ks_2samp(method="asymp") refines it with kstwo at n = round(mn/(m+n)) — the same
    # limit, different far-tail digits — so compare with scipy's kstwobign directly.
    en = len(base) * len(cand) / (len(base) + len(cand))
    assert cmp["kolmogorov_smirnov"]["p_value"] == pytest.approx(
        scipy.stats.kstwobign.sf(np.sqrt(en) * ks.statistic), rel=1e-9, abs=1e-300)
    mw = scipy.stats.mannwhitneyu(cand, base, alternative="greater", method="asymptotic", use_continuity=True)
    assert cmp["mann_whitney"]["u"] == pytest.approx(mw.statistic, rel=1e-12)
    assert cmp["mann_whitney"]["p_value"] == pytest.approx(mw.pvalue, rel=1e-6, abs=1e-300)
    # The error-rate rule: two-proportion z-test, pooled, one-sided.
    nb, nc = len(base), len(cand)
    pooled = (base_errors + cand_errors) / (nb + nc)
    z = (cand_errors / nc - base_errors / nb) / np.sqrt(pooled * (1 - pooled) * (1 / nb + 1 / nc))
    rule = next(r for r in cmp["rules"] if r["threshold"].startswith("error_rate"))
    assert rule["p_value"] == pytest.approx(scipy.stats.norm.sf(z), rel=1e-9)
    # The bootstrap interval of p50's change holds the observed change of the 1.3 factor.
    p50 = next(r for r in cmp["rules"] if r["threshold"] == "p50 +10%")
    observed = np.quantile(cand, .5) / np.quantile(base, .5) - 1
    assert p50["change"] == pytest.approx(observed, rel=1e-9)
    assert p50["ci_low"] < observed < p50["ci_high"]


def test_twenty_spans_are_inconclusive(tracelake, planted, tmp_path):
    con = duckdb.connect()
    ids = [r[0] for r in con.execute(
        f"SELECT span_id FROM read_parquet('{planted}/spans/**/*.parquet', hive_partitioning=true) "
        "WHERE service_name = ? ORDER BY span_id LIMIT 40", [SERVICE]).fetchall()]
    pick = lambda xs: "span_id IN (" + ", ".join(f"'{x}'" for x in xs) + ")"
    report, proc = gate_json(tracelake, tmp_path, "--data", str(planted), "--baseline", pick(ids[:20]),
                             "--candidate", pick(ids[20:]), expect=2)
    assert report["verdict"] == "inconclusive"
    assert all(r["verdict"] == "inconclusive" for r in report["comparisons"][0]["rules"])
    assert "too few samples" in report["summary"] and "need ≥ 100" in report["summary"]
    assert "INCONCLUSIVE" in proc.stdout


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_is_a_valid_image_of_the_requested_size(tracelake, planted, tmp_path, suffix):
    out = tmp_path / f"cdf.{suffix}"
    gate(tracelake, "--data", str(planted), "--baseline", V1, "--candidate", V2, "--service", SERVICE,
         "--operation", OPERATION, "--plot", str(out), "--plot-size", "800x500", "--quiet", expect=1)
    if suffix == "png":
        assert png_size(out) == (800, 500)
        assert out.stat().st_size > 5000  # curves and text, not a blank canvas
    else:
        root = ET.parse(out).getroot()
        assert root.tag.endswith("svg")
        assert (root.get("width"), root.get("height")) == ("800", "500")
        text = out.read_text()
        assert "p99" in text and "candidate" in text


def test_gate_file_from_deploy_drives_the_gate(tracelake, planted, tmp_path):
    report, _ = gate_json(tracelake, tmp_path, "--data", str(planted), "--gate-file",
                          str(REPO / "deploy" / "ci" / "gate.toml"), expect=1)
    assert report["settings"]["correction"] == "holm"
    regressed = {c["scope"]["operation"] for c in report["comparisons"] if c["verdict"] == "regression"}
    assert regressed == {OPERATION}
    # Flags override the file: a looser p50 / p99 allowance than the 30 % change passes.
    loose, _ = gate_json(tracelake, tmp_path, "--data", str(planted), "--gate-file",
                         str(REPO / "deploy" / "ci" / "gate.toml"), "--threshold", "p50 +50%",
                         "--threshold", "p99 +50%", expect=0)
    assert [r["threshold"] for r in loose["comparisons"][0]["rules"]] == ["p50 +50%", "p99 +50%"]


def test_trace_unit_matches_duckdb(tracelake, planted, tmp_path):
    report, _ = gate_json(tracelake, tmp_path, "--data", str(planted), "--unit", "traces", "--baseline", V1,
                          "--candidate", V2, "--service", "frontend", "--operation", "GET /",
                          "--threshold", "p50 +10%", "--threshold", "p95 +10%", expect=0)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{planted}/spans/**/*.parquet', hive_partitioning=true)")
    durations = {}
    for version in ("v1", "v2"):
        rows = con.execute(f"""
            WITH roots AS (SELECT DISTINCT trace_id FROM spans WHERE parent_span_id IS NULL
                           AND resource_attributes['service.version'] = '{version}'
                           AND service_name = 'frontend' AND span_name = 'GET /')
            SELECT epoch_ns(max(end_time)) - epoch_ns(min(start_time))
            FROM spans JOIN roots USING (trace_id) GROUP BY trace_id""").fetchall()
        durations[version] = np.array([r[0] for r in rows])
    cmp = report["comparisons"][0]
    assert cmp["baseline"]["count"] == len(durations["v1"]) > 100
    assert cmp["candidate"]["count"] == len(durations["v2"])
    for key, q in (("p50_ns", .5), ("p99_ns", .99)):
        assert cmp["baseline"][key] == pytest.approx(np.quantile(durations["v1"], q), rel=1e-12)
        assert cmp["candidate"][key] == pytest.approx(np.quantile(durations["v2"], q), rel=1e-12)


def test_flight_sql_source_gives_the_same_numbers(tracelake, planted, tmp_path):
    http, flight = free_port(), free_port()
    server = start(tracelake, planted, free_port(), extra=("--flight-addr", f"127.0.0.1:{flight}",
                                                           "--http-addr", f"127.0.0.1:{http}"))
    try:
        args = ["--baseline", V1, "--candidate", V2, "--service", SERVICE, "--operation", OPERATION]
        remote, _ = gate_json(tracelake, tmp_path, "--flight", f"grpc://127.0.0.1:{flight}", *args, expect=1)
        local, _ = gate_json(tracelake, tmp_path, "--data", str(planted), *args, expect=1)
        assert remote["comparisons"] == local["comparisons"]
    finally:
        server.terminate()
        server.wait(timeout=60)
        SERVERS.remove(server)


@pytest.mark.parametrize("args, message", [
    (["--threshold", "p98 +10%"], "unknown metric"),
    (["--threshold", "p99 10%"], "must start with +"),
    (["--no-such-flag"], "unexpected argument"),
    (["--baseline", "no_such_column = 1"], "baseline selection"),
    (["--baseline-from", "yesterday"], "RFC 3339"),
    (["--plot", "out.gif"], "unsupported file type"),
    (["--correction", "bonferroni"], "unknown correction"),
])
def test_errors_exit_3_with_a_clear_message(tracelake, planted, tmp_path, args, message):
    base = ["--data", str(planted), "--candidate", V2, "--service", SERVICE]
    if "--baseline" not in args:
        base += ["--baseline", V1]
    proc = tracelake.run("gate", *base, *args, check=False)
    assert proc.returncode == 3, proc.stderr
    assert message in proc.stderr


def test_missing_candidate_is_a_usage_error(tracelake, planted):
    proc = tracelake.run("gate", "--data", str(planted), "--baseline", V1, check=False)
    assert proc.returncode == 3
    assert "nothing selects the candidate" in proc.stderr


def test_readme_gate_example_runs_as_written(tracelake, tmp_path):
    from pathlib import Path
    import os
    import re
    import subprocess
    text = (REPO / "README.md").read_text()
    (block,) = re.findall(r"<!-- readme-test: gate -->\n```sh\n(.*?)```", text, re.S)
    env = dict(os.environ, PATH=f"{Path(tracelake.binary).parent}:{os.environ['PATH']}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "exit code 1" in run.stdout and "1 regressed" in run.stdout, run.stdout
    report = json.loads((tmp_path / "gate.json").read_text())
    assert [(c["scope"]["service"], c["scope"]["operation"]) for c in report["comparisons"]
            if c["verdict"] == "regression"] == [(SERVICE, OPERATION)]
    assert (tmp_path / "gate.md").read_text().startswith("### ❌")
    assert png_size(tmp_path / "gate.png") == (1000, 600)


def test_shared_flight_url_does_not_select_a_side(tracelake):
    # Checked before connecting: a shared server is where both sides come from, not a selection.
    proc = tracelake.run("gate", "--flight", "grpc://127.0.0.1:9", "--baseline", V1, check=False)
    assert proc.returncode == 3 and "nothing selects the candidate" in proc.stderr


def test_verdict_survives_a_closed_stdout(tracelake, planted):
    import subprocess
    cmd = (f"'{tracelake.binary}' gate --data '{planted}' --service {SERVICE} --operation '{OPERATION}' "
           f"--baseline \"{V1}\" --candidate \"{V2}\" --quiet --json - | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}")
    assert subprocess.run(["bash", "-c", cmd]).returncode == 1


def test_strict_makes_noisy_operations_inconclusive(tracelake, planted, tmp_path):
    # A 0 % allowance on the error rate: somewhere among ~90 operations the observed rate is
    # higher by chance (noisy), but not significantly so.
    args = ["--data", str(planted), "--baseline", V1, "--candidate", V2, "--per-operation",
            "--service", "frontend", "--threshold", "error_rate +0pp"]
    relaxed, _ = gate_json(tracelake, tmp_path, *args, expect=0)
    assert any(r["noisy"] for c in relaxed["comparisons"] for r in c["rules"])
    strict, _ = gate_json(tracelake, tmp_path, *args, "--strict", expect=2)
    assert strict["verdict"] == "inconclusive"
