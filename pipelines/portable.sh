#!/usr/bin/env bash
# A cluster-shaped Beam deployment on this machine: Prism as a standalone job
# service plus a Beam Python SDK worker pool (the EXTERNAL environment's
# sidecar), the topology of a Flink or Kubernetes deployment.
#
#   bash pipelines/portable.sh up        start both in the background
#   bash pipelines/portable.sh submit [python -m alm_beam.run flags]
#                                        run a job: --runner PortableRunner
#                                        --job_endpoint localhost:JOB_PORT
#                                        --environment_type EXTERNAL
#                                        --environment_config 127.0.0.1:POOL_PORT
#   bash pipelines/portable.sh status    what runs, and Prism's jobs with their states
#   bash pipelines/portable.sh down      stop exactly what `up` started
#
# Ports (environment): ALM_PRISM_JOB_PORT (18073; Prism's job service, which
# listens on all interfaces: Prism has no bind-address flag),
# ALM_PRISM_WEB_PORT (18074; Prism's web UI, on localhost only),
# ALM_WORKER_POOL_PORT (18075; the worker pool, on 127.0.0.1 only).
# State (pids, ports, logs prism.log and pool.log): ALM_PORTABLE_STATE_DIR,
# default ~/.local/state/alm_beam/portable.
# Needs Prism (`bash pipelines/prism.sh build`) and the `python` on PATH of the
# environment where alm_beam is installed: the pool's workers run alm_beam from it.
set -euo pipefail

PYTHON="${PYTHON:-python}"
STATE="${ALM_PORTABLE_STATE_DIR:-$HOME/.local/state/alm_beam/portable}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=pipelines/daemon_lib.sh
. "$HERE/daemon_lib.sh"
NAME=portable.sh

up() {
    local job_port="${ALM_PRISM_JOB_PORT:-18073}" web_port="${ALM_PRISM_WEB_PORT:-18074}"
    local pool_port="${ALM_WORKER_POOL_PORT:-18075}" prism
    mkdir -p "$STATE"
    refuse_if_up prism pool
    prism="$("$PYTHON" -m alm_beam.execution.runners prism-path)" ||
        die "cannot run '$PYTHON -m alm_beam.execution.runners' (activate the venv where alm_beam is installed)"
    [[ -x "$prism" ]] || die "no Prism binary at $prism; build it with 'bash pipelines/prism.sh build'"
    require_free_port 0.0.0.0 "$job_port" ALM_PRISM_JOB_PORT
    require_free_port 127.0.0.1 "$web_port" ALM_PRISM_WEB_PORT
    require_free_port 127.0.0.1 "$pool_port" ALM_WORKER_POOL_PORT
    printf 'JOB_PORT=%s\nWEB_PORT=%s\nPOOL_PORT=%s\n' "$job_port" "$web_port" "$pool_port" >"$STATE/ports.env"

    start_daemon prism "$prism" --job_port="$job_port" --web_port="$web_port" \
        --log_kind=text --log_level=info
    start_daemon pool "$PYTHON" -m alm_beam.execution.worker_pool --host 127.0.0.1 --port "$pool_port"
    wait_for_port prism 127.0.0.1 "$job_port"
    wait_for_port pool 127.0.0.1 "$pool_port"
    echo "job service  localhost:$job_port   (Prism pid $(cat "$STATE/prism.pid"), web UI http://localhost:$web_port)"
    echo "worker pool  127.0.0.1:$pool_port   (pid $(cat "$STATE/pool.pid"))"
    echo "logs         $STATE/prism.log $STATE/pool.log"
}

load_ports() {
    [[ -f "$STATE/ports.env" ]] && is_up prism && is_up pool ||
        die "the portable deployment is not up; start it with 'bash pipelines/portable.sh up'"
    # shellcheck disable=SC1091
    . "$STATE/ports.env"
}

submit() {
    load_ports
    exec "$PYTHON" -m alm_beam.run --runner PortableRunner --job_endpoint "localhost:$JOB_PORT" \
        --environment_type EXTERNAL --environment_config "127.0.0.1:$POOL_PORT" "$@"
}

status() {
    load_ports
    echo "Prism pid $(cat "$STATE/prism.pid") on localhost:$JOB_PORT; worker pool pid $(cat "$STATE/pool.pid") on 127.0.0.1:$POOL_PORT"
    "$PYTHON" -m alm_beam.execution.runners jobs "localhost:$JOB_PORT"
}

down() {
    stop_daemons pool prism
    rm -f "$STATE/ports.env"
}

case "${1:-}" in
    up) up ;;
    submit) shift; submit "$@" ;;
    status) status ;;
    down) down ;;
    *) echo "usage: bash pipelines/portable.sh up|submit [alm_beam.run flags]|status|down" >&2; exit 2 ;;
esac
