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

    def __init__(self, binary: str, env=None):
        self.binary = binary
        self.env = env  # None: this process's environment

    def with_env(self, env):
        """The same binary, run with `env` (e.g. the AWS_* variables of a test S3 server)."""
        return Tracelake(self.binary, env)

    def run(self, *args, check=True, input=None, env=None):
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True, input=input, env=env or self.env)
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


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 with one bucket, for the whole test session."""
    from s3_server import MotoServer
    server = MotoServer()
    yield server
    server.stop()


class Store:
    """Where a test keeps its data: a local directory or a prefix in the test S3 server."""

    def __init__(self, kind, data, serve_args=(), env=None):
        self.kind, self.data, self.serve_args, self.env = kind, data, tuple(serve_args), env


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """Runs a test once on a local directory and once on S3 (moto)."""
    if request.param == "local":
        return Store("local", str(tmp_path / "data"))
    s3 = request.getfixturevalue("s3")
    prefix = f"{request.node.name.split('[')[0]}-{os.getpid()}-{id(request)}"
    return Store("s3", s3.url(prefix), ("--wal-dir", str(tmp_path / "wal")), s3.env())


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
