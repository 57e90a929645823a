"""The README's query snippets run as written (ports swapped for the test server's) against a
`tracelake serve` loaded with the `sql/fixtures/shop.json` example, and print what they say."""
import re
import subprocess
import sys
from pathlib import Path

from test_serve_otlp import free_port, start

ROOT = Path(__file__).resolve().parents[2]


def readme_blocks(kind):
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"<!-- readme-test: {kind} -->\n```\w+\n(.*?)```", text, re.S)


def test_readme_query_snippets(tracelake, tmp_path):
    data = tmp_path / "data"
    tracelake.run("ingest", "--data", str(data), str(ROOT / "sql" / "fixtures" / "shop.json"))
    flight, http = free_port(), free_port()
    server = start(tracelake, data, free_port(),
                   extra=["--flight-addr", f"127.0.0.1:{flight}", "--http-addr", f"127.0.0.1:{http}"])
    swap = lambda code: code.replace("127.0.0.1:50051", f"127.0.0.1:{flight}").replace("127.0.0.1:3200", f"127.0.0.1:{http}")
    (python,) = readme_blocks("python")
    run = subprocess.run([sys.executable, "-c", swap(python)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "GET /checkout" in run.stdout and "p99_ms" in run.stdout, run.stdout
    (shell,) = readme_blocks("shell")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", swap(shell)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert '"rows":[["cart",4],' in out, out
    assert "n\n" in out, "the CSV has a header"
    assert '"traceId":"0af7651916cd43dd8448eb211c80319c"' in out
    server.terminate()
    server.wait(timeout=60)


def test_readme_object_storage_commands(tracelake, s3, tmp_path):
    (shell,) = readme_blocks("s3")
    shell = shell.replace("http://127.0.0.1:9000", s3.endpoint).replace("s3://traces/", f"s3://{s3.bucket}/readme-")
    shell = re.sub(r"(?m)^tracelake ", f"{tracelake.binary} ", shell)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "service_name,spans" and len(lines) == 4, run.stdout


def test_readme_maintenance_commands(tracelake, tmp_path):
    data = tmp_path / "data"
    for seed in (1, 2):  # two loads: two files per partition
        tracelake.run("gen", "--otlp-out", str(tmp_path / f"o{seed}"), "--spans", "2000", "--seed", str(seed),
                      "--start", "2026-01-01T00:00:00Z", "--hours", "2", "--services", "2")
        tracelake.run("ingest", "--data", str(data), *map(str, sorted((tmp_path / f"o{seed}").iterdir())))
    (shell,) = readme_blocks("maintenance")
    # The defaults wait for files to age (5 min) and for queries (120 s); a test cannot.
    shell = re.sub(r"(?m)^tracelake ", f"{tracelake.binary} ", shell.replace("./tracelake-data", str(data)))
    shell = shell.replace("compact --data " + str(data), f"compact --min-file-age-secs 0 --grace-secs 0 --data {data}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "2 files" in run.stdout, "the dry run lists the merges"
    assert "would delete date=2026-01-01/hour=00" in run.stdout and "deleting date=2026-01-01/hour=01" in run.stdout
    assert not list((data / "spans").rglob("*.parquet")), "hours of January 2026 are older than 14 days"
