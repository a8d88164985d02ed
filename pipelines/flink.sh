#!/usr/bin/env bash
# A standalone Flink cluster on 127.0.0.1 (one JobManager, one TaskManager) from
# the PyPI distribution, and job submission to it with Beam's FlinkRunner.
#
#   bash pipelines/flink.sh install   apache-flink + apache-flink-libraries (ALM_FLINK_VERSION,
#                                     default 2.2.1) with pip into their own directory,
#                                     ~/.cache/alm_beam/flink/<version>/ (they pin an older
#                                     apache-beam, so never into alm_beam's environment;
#                                     --no-deps: only the JVM cluster is used). Idempotent.
#   bash pipelines/flink.sh up        start the cluster (and an SDK worker pool for
#                                     EXTERNAL jobs); REST/web UI on ALM_FLINK_REST_PORT
#   bash pipelines/flink.sh submit [python -m alm_beam.run flags]
#                                     --runner FlinkRunner --flink_master 127.0.0.1:REST_PORT
#                                     --flink_version <major.minor>
#                                     --environment_type $ALM_FLINK_ENVIRONMENT_TYPE
#                                     (LOOPBACK, default, or EXTERNAL: the pool from `up`)
#                                     --flink_job_server_jar $ALM_FLINK_JOB_SERVER_JAR (when set;
#                                     otherwise Beam resolves the job server itself)
#   bash pipelines/flink.sh status    the cluster's own /overview
#   bash pipelines/flink.sh down      stop exactly what `up` started
#
# Ports: ALM_FLINK_REST_PORT (18081), ALM_FLINK_RPC_PORT (16123, JobManager RPC),
# ALM_FLINK_POOL_PORT (18085, worker pool); every other Flink port is picked
# by Flink. Everything binds 127.0.0.1. State (pids, config, logs):
# ALM_FLINK_STATE_DIR, default ~/.local/state/alm_beam/flink. Needs Java 17 (java on
# PATH or JAVA_HOME) and the `python` on PATH of alm_beam's environment.
set -euo pipefail

PYTHON="${PYTHON:-python}"
VERSION="${ALM_FLINK_VERSION:-2.2.1}"
STATE="${ALM_FLINK_STATE_DIR:-$HOME/.local/state/alm_beam/flink}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=pipelines/daemon_lib.sh
. "$HERE/daemon_lib.sh"
NAME=flink.sh
SLOTS=2  # task slots of the one TaskManager (taskmanager.numberOfTaskSlots)
DIST="${ALM_BEAM_CACHE:-$HOME/.cache/alm_beam}/flink/$VERSION"
FLINK_HOME_DIR="$DIST/pyflink"

install() {
    if [[ -f "$DIST/.installed" ]]; then echo "$FLINK_HOME_DIR"; return 0; fi
    local tmp="$DIST.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$DIST")"
    echo "flink.sh: installing apache-flink $VERSION into $DIST" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" \
        "apache-flink==$VERSION" "apache-flink-libraries==$VERSION" ||
        { rm -rf "$tmp"; die "pip install apache-flink==$VERSION apache-flink-libraries==$VERSION failed"; }
    rm -rf "$DIST"
    mv "$tmp" "$DIST"
    touch "$DIST/.installed"
    echo "$FLINK_HOME_DIR"
}

require_installed() {
    [[ -f "$DIST/.installed" ]] || die "Flink $VERSION is not installed; run 'bash pipelines/flink.sh install'"
    command -v java >/dev/null 2>&1 || [[ -n "${JAVA_HOME:-}" ]] ||
        die "Java is not installed (no java on PATH, no JAVA_HOME); Flink $VERSION needs Java 17"
}

up() {
    local rest="${ALM_FLINK_REST_PORT:-18081}" rpc="${ALM_FLINK_RPC_PORT:-16123}"
    local pool="${ALM_FLINK_POOL_PORT:-18085}"
    require_installed
    mkdir -p "$STATE/conf" "$STATE/log"
    refuse_if_up jobmanager taskmanager pool
    require_free_port 127.0.0.1 "$rest" ALM_FLINK_REST_PORT
    require_free_port 127.0.0.1 "$rpc" ALM_FLINK_RPC_PORT
    require_free_port 127.0.0.1 "$pool" ALM_FLINK_POOL_PORT
    cp "$FLINK_HOME_DIR"/conf/log4j*.properties "$FLINK_HOME_DIR"/conf/logback*.xml "$STATE/conf/"
    cat >"$STATE/conf/config.yaml" <<EOF
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: $rpc
jobmanager.bind-host: 127.0.0.1
jobmanager.memory.process.size: 1024m
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.memory.process.size: 1280m
taskmanager.numberOfTaskSlots: $SLOTS
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $rest
blob.server.port: 0
parallelism.default: 1
EOF
    printf 'REST_PORT=%s\nPOOL_PORT=%s\n' "$rest" "$pool" >"$STATE/ports.env"
    export FLINK_CONF_DIR="$STATE/conf" FLINK_LOG_DIR="$STATE/log" FLINK_PID_DIR="$STATE"
    start_daemon jobmanager "$FLINK_HOME_DIR/bin/jobmanager.sh" start-foreground
    start_daemon taskmanager "$FLINK_HOME_DIR/bin/taskmanager.sh" start-foreground
    start_daemon pool "$PYTHON" -m alm_beam.worker_pool --host 127.0.0.1 --port "$pool"
    wait_for_http jobmanager "http://127.0.0.1:$rest/overview" 180
    wait_for_port pool 127.0.0.1 "$pool"
    # Ready for jobs once the TaskManager has registered and its slots are
    # offered: /overview can count the TaskManager while slots-total is still 0.
    local i ready=""
    for ((i = 0; i < 600; i++)); do
        if "$PYTHON" -c "import json, sys, urllib.request; o = json.load(urllib.request.urlopen(sys.argv[1])); sys.exit(o['taskmanagers'] < 1 or o['slots-total'] < $SLOTS)" "http://127.0.0.1:$rest/overview" 2>/dev/null; then
            ready=1
            break
        fi
        is_up taskmanager || fail_up "the TaskManager exited (log: $STATE/taskmanager.log)"
        sleep 0.3
    done
    [[ -n "$ready" ]] || fail_up "the TaskManager did not offer its $SLOTS slots within 180 s (log: $STATE/taskmanager.log)"
    echo "Flink $VERSION REST/web UI http://127.0.0.1:$rest (JobManager pid $(cat "$STATE/jobmanager.pid"), TaskManager pid $(cat "$STATE/taskmanager.pid"))"
    echo "worker pool 127.0.0.1:$pool (pid $(cat "$STATE/pool.pid")); logs in $STATE"
}

load_ports() {
    [[ -f "$STATE/ports.env" ]] && is_up jobmanager ||
        die "the Flink cluster is not up; start it with 'bash pipelines/flink.sh up'"
    # shellcheck disable=SC1091
    . "$STATE/ports.env"
}

submit() {
    load_ports
    local env_type="${ALM_FLINK_ENVIRONMENT_TYPE:-LOOPBACK}" extra=()
    case "$env_type" in
        LOOPBACK) ;;
        EXTERNAL) extra+=(--environment_config "127.0.0.1:$POOL_PORT") ;;
        *) die "ALM_FLINK_ENVIRONMENT_TYPE=$env_type: use LOOPBACK or EXTERNAL" ;;
    esac
    if [[ -n "${ALM_FLINK_JOB_SERVER_JAR:-}" ]]; then
        [[ -f "$ALM_FLINK_JOB_SERVER_JAR" ]] || die "ALM_FLINK_JOB_SERVER_JAR=$ALM_FLINK_JOB_SERVER_JAR: no such file"
        extra+=(--flink_job_server_jar "$ALM_FLINK_JOB_SERVER_JAR")
    fi
    exec "$PYTHON" -m alm_beam.run --runner FlinkRunner --flink_master "127.0.0.1:$REST_PORT" \
        --flink_version "${VERSION%.*}" --environment_type "$env_type" "${extra[@]}" "$@"
}

status() {
    load_ports
    "$PYTHON" -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())" \
        "http://127.0.0.1:$REST_PORT/overview"
}

down() {
    stop_daemons pool taskmanager jobmanager
    rm -f "$STATE/ports.env"
}

case "${1:-}" in
    install) install ;;
    up) up ;;
    submit) shift; submit "$@" ;;
    status) status ;;
    down) down ;;
    *) echo "usage: bash pipelines/flink.sh install|up|submit [alm_beam.run flags]|status|down" >&2; exit 2 ;;
esac
