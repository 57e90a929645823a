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
