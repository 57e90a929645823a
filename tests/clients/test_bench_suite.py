"""Smoke test of benches/suite.py (issue 7): on 100k spans, every query of the benchmark gives
the same answer on tracelake as on DuckDB reading the same Parquet files. Answers only, no
timing (`--check`); the binary under test is the fixture's (a debug build under ./test.sh)."""
import subprocess
import sys

import pytest

from conftest import REPO

SUITE = REPO / "benches" / "suite.py"


def run_suite(tracelake, *args, timeout):
    proc = subprocess.run([sys.executable, str(SUITE), "--check", "--bin", tracelake.binary, *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"benches/suite.py exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def suite_data(tmp_path_factory):
    # The suite generates into it (and its "-28d" sibling for Q8); the Flight test reuses it.
    return tmp_path_factory.mktemp("suite") / "data"


def test_every_query_agrees_with_duckdb(tracelake, suite_data):
    out = run_suite(tracelake, "--spans", "100000", "--data", str(suite_data),
                    "--lookups", "20", "--cli-lookups", "3", timeout=170)
    assert "8/8 queries agree with DuckDB" in out, out
    for name in [f"Q{i}" for i in range(1, 9)]:
        assert f"{name}: answers agree" in out, out


def test_flight_sql_answers_agree_with_duckdb(tracelake, suite_data):
    # A few queries over Flight SQL too (a `tracelake serve` the suite starts on free ports).
    out = run_suite(tracelake, "--spans", "100000", "--data", str(suite_data), "--flight",
                    "--only", "Q2,Q3,Q6", "--lookups", "3", "--cli-lookups", "1", timeout=120)
    assert "3/3 queries agree with DuckDB" in out, out
