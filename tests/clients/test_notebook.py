"""The notebooks run headless (nbclient) against a `tracelake serve` loaded with a generated
workload, and their numbers agree with DuckDB on the same Parquet files."""
import os
from pathlib import Path

import duckdb
import nbformat
from nbclient import NotebookClient

from test_serve_otlp import free_port, start

ROOT = Path(__file__).resolve().parents[2]


def test_slo_report_notebook(tracelake, tmp_path, monkeypatch):
    data = tmp_path / "data"
    tracelake.run("gen", "--spans", "20000", "--seed", "11", "--hours", "3", "--data", str(data))
    flight = free_port()
    server = start(tracelake, data, free_port(), extra=["--flight-addr", f"127.0.0.1:{flight}", "--http-addr", f"127.0.0.1:{free_port()}"])
    plot = tmp_path / "p99.png"
    monkeypatch.setenv("TRACELAKE_FLIGHT_URL", f"grpc://127.0.0.1:{flight}")
    monkeypatch.setenv("TRACELAKE_NOTEBOOK_PLOT", str(plot))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(ROOT / "notebooks" / "slo_report.ipynb", as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    server.terminate()
    server.wait(timeout=60)
    outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells if cell.cell_type == "code"]
    summary = next(o for o in outputs if "services," in o)
    services, hours = duckdb_counts(data)
    assert summary.strip() == f"{services} services, {hours} hours", summary
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def duckdb_counts(data):
    """Services with SERVER spans and distinct hours, computed by DuckDB."""
    con = duckdb.connect()
    return con.execute(
        f"SELECT count(DISTINCT service_name), count(DISTINCT date_trunc('hour', start_time)) "
        f"FROM read_parquet('{data}/spans/**/*.parquet', hive_partitioning=true) WHERE span_kind = 'SERVER'"
    ).fetchone()
