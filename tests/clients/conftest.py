"""Shared fixtures: the tracelake binary and helpers to run it."""
import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tracelake_bin() -> str:
    explicit = os.environ.get("TRACELAKE_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "tracelake")


class Tracelake:
    """Runs the real `tracelake` binary as a user would."""

    def __init__(self, binary: str):
        self.binary = binary

    def run(self, *args, check=True, input=None, env=None):
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True, input=input, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"tracelake {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def sql_csv(self, data, query):
        out = self.run("sql", "--data", str(data), "--format", "csv", query).stdout
        return list(csv.reader(io.StringIO(out)))

    def sql_json(self, data, query):
        return json.loads(self.run("sql", "--data", str(data), "--format", "json", query).stdout)


@pytest.fixture(scope="session")
def tracelake():
    binary = tracelake_bin()
    if not Path(binary).exists():
        raise AssertionError(f"{binary} not found: run `cargo build` first (./test.sh does)")
    return Tracelake(binary)


@pytest.fixture(scope="session")
def workload(tracelake, tmp_path_factory):
    """A 100k-span generated workload in a fresh store."""
    data = tmp_path_factory.mktemp("workload")
    tracelake.run("gen", "--spans", "100000", "--seed", "42", "--data", str(data))
    return data


# Servers started by tests (`test_serve_otlp.start`); any still running when a test ends —
# because an assertion failed before its SIGTERM — is killed, so no test leaks a process.
SERVERS = []


@pytest.fixture(autouse=True)
def _kill_leftover_servers():
    yield
    while SERVERS:
        proc = SERVERS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
