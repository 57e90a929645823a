"""tracelake on Apache DataFusion Ballista: `deploy/ballista/run-local.sh` starts a scheduler and
two executors as processes on 127.0.0.1; the SLO report, a critical-path report and the
`traces` view answer exactly as the embedded engine does on the same files."""
import os
import signal
import subprocess
import time
from pathlib import Path

from test_serve_otlp import free_port

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ["slo_by_operation_hour.sql", "critical_path_slowest.sql", "slowest_traces.sql", "error_budget.sql"]


def test_ballista_cluster_gives_the_embedded_answers(tracelake, tmp_path):
    data = tmp_path / "data"
    tracelake.run("gen", "--spans", "20000", "--seed", "5", "--data", str(data))
    port = free_port()
    env = dict(os.environ, TRACELAKE=tracelake.binary, SCHEDULER_PORT=str(port), EXECUTORS="2",
               EXECUTOR_BASE_PORT=str(free_port() // 100 * 100 % 40000 + 20000), VCORES="2",
               WORK_DIR=str(tmp_path / "work"))
    cluster = subprocess.Popen([str(ROOT / "deploy" / "ballista" / "run-local.sh")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"df://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:  # until the scheduler answers and an executor has registered
            probe = tracelake.run("sql", "--data", str(data), "--ballista", url, "--format", "csv",
                                  "SELECT count(*) FROM spans", check=False)
            if probe.returncode == 0:
                break
            assert time.time() < deadline, probe.stderr
            time.sleep(0.5)
        assert probe.stdout.splitlines()[1] == "20000"
        # The critical-path report's operation: this workload's most common root operation.
        service, op = tracelake.sql_csv(data, "SELECT service_name, span_name FROM spans WHERE parent_span_id IS NULL "
                                              "GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1")[1]
        for report in REPORTS:
            sql = (ROOT / "sql" / "reports" / report).read_text()
            sql = sql.replace("'frontend'", f"'{service}'").replace("'POST /checkout'", f"'{op}'")
            embedded = tracelake.run("sql", "--data", str(data), "--format", "csv", sql).stdout
            distributed = tracelake.run("sql", "--data", str(data), "--ballista", url, "--format", "csv", sql).stdout
            assert distributed == embedded, report
            assert len(embedded.splitlines()) > 1, f"{report} has rows"
        # Both executors ran tasks: each wrote shuffle files into its work directory.
        for i in (1, 2):
            assert any((tmp_path / "work" / f"executor-{i}").rglob("*")), f"executor {i} did no work"
        # A scheduler that is not there is named in the error.
        down = tracelake.run("sql", "--data", str(data), "--ballista", f"df://127.0.0.1:{free_port()}",
                             "SELECT count(*) FROM spans", check=False)
        assert down.returncode == 1 and "Ballista scheduler df://127.0.0.1:" in down.stderr, down.stderr
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        cluster.wait(timeout=30)
