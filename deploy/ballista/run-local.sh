#!/usr/bin/env bash
# A Ballista cluster of tracelake on this machine: one scheduler and $EXECUTORS executors, each
# a separate process (the same `tracelake` binary). Ctrl-C / SIGTERM stops them all.
#
#   deploy/ballista/run-local.sh                     # scheduler on 127.0.0.1:50050, 2 executors
#   tracelake sql --data /srv/traces --ballista df://127.0.0.1:50050 "SELECT count(*) FROM spans"
#
# Settings (environment): TRACELAKE (binary, default `tracelake`), SCHEDULER_PORT (50050),
# EXECUTORS (2), EXECUTOR_BASE_PORT (50060: executor i uses BASE+10*i for Flight and +1 for
# gRPC), VCORES (tasks per executor, default: CPUs), WORK_DIR (shuffle files; default: a new
# temporary directory). The executors and the scheduler read the data location themselves:
# a local path must exist on every machine, S3 needs the AWS_* variables everywhere.
set -euo pipefail
TRACELAKE=${TRACELAKE:-tracelake}
SCHEDULER_PORT=${SCHEDULER_PORT:-50050}
EXECUTORS=${EXECUTORS:-2}
BASE_PORT=${EXECUTOR_BASE_PORT:-50060}
WORK=${WORK_DIR:-$(mktemp -d -t tracelake-ballista-XXXXXX)}
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

"$TRACELAKE" ballista-scheduler --bind "127.0.0.1:$SCHEDULER_PORT" &
pids+=($!)
sleep 1
for i in $(seq 1 "$EXECUTORS"); do
  port=$((BASE_PORT + 10 * i))
  "$TRACELAKE" ballista-executor --scheduler "127.0.0.1:$SCHEDULER_PORT" --host 127.0.0.1 \
    --flight-port "$port" --grpc-port "$((port + 1))" ${VCORES:+--vcores "$VCORES"} \
    --work-dir "$WORK/executor-$i" &
  pids+=($!)
done
echo "tracelake on Ballista: scheduler df://127.0.0.1:$SCHEDULER_PORT, $EXECUTORS executors, work dir $WORK" >&2
wait
