#!/usr/bin/env bash
# A standalone Spark cluster on 127.0.0.1 (one master, one worker) from
# pyspark's distribution, and job submission to it with Beam's SparkRunner.
#
#   bash pipelines/spark.sh install   pyspark (ALM_SPARK_VERSION, default 3.5.9: Beam's
#                                     Spark 3 runner) with pip into its own directory,
#                                     ~/.cache/alm_beam/spark/<version>/ (--no-deps: only
#                                     its JVM part, spark-class and jars/, is used). Idempotent.
#   bash pipelines/spark.sh up        start the master and a worker (and an SDK worker
#                                     pool for EXTERNAL jobs)
#   bash pipelines/spark.sh submit [python -m alm_beam.run flags]
#                                     --runner SparkRunner --spark_master_url spark://127.0.0.1:PORT
#                                     --environment_type $ALM_SPARK_ENVIRONMENT_TYPE
#                                     (LOOPBACK, default, or EXTERNAL: the pool from `up`)
#                                     --spark_job_server_jar $ALM_SPARK_JOB_SERVER_JAR (when set;
#                                     otherwise Beam resolves the job server itself)
#   bash pipelines/spark.sh status    the master's own /json/
#   bash pipelines/spark.sh down      stop exactly what `up` started
#
# Ports: ALM_SPARK_MASTER_PORT (17077), ALM_SPARK_MASTER_WEBUI_PORT (18080),
# ALM_SPARK_WORKER_WEBUI_PORT (18082), ALM_SPARK_POOL_PORT (18086); the
# worker's own port is picked by Spark. Everything binds 127.0.0.1
# (SPARK_LOCAL_IP). State (pids, logs, work dir): ALM_SPARK_STATE_DIR, default
# ~/.local/state/alm_beam/spark. Needs Java 17 and the `python` on PATH of
# alm_beam's environment.
set -euo pipefail

PYTHON="${PYTHON:-python}"
VERSION="${ALM_SPARK_VERSION:-3.5.9}"
STATE="${ALM_SPARK_STATE_DIR:-$HOME/.local/state/alm_beam/spark}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=pipelines/daemon_lib.sh
. "$HERE/daemon_lib.sh"
NAME=spark.sh
DIST="${ALM_BEAM_CACHE:-$HOME/.cache/alm_beam}/spark/$VERSION"
SPARK_HOME_DIR="$DIST/pyspark"

install() {
    if [[ -f "$DIST/.installed" ]]; then echo "$SPARK_HOME_DIR"; return 0; fi
    local tmp="$DIST.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$DIST")"
    echo "spark.sh: installing pyspark $VERSION into $DIST" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" \
        "pyspark==$VERSION" || { rm -rf "$tmp"; die "pip install pyspark==$VERSION failed"; }
    rm -rf "$DIST"
    mv "$tmp" "$DIST"
    touch "$DIST/.installed"
    echo "$SPARK_HOME_DIR"
}

require_installed() {
    [[ -f "$DIST/.installed" ]] || die "Spark $VERSION is not installed; run 'bash pipelines/spark.sh install'"
    command -v java >/dev/null 2>&1 || [[ -n "${JAVA_HOME:-}" ]] ||
        die "Java is not installed (no java on PATH, no JAVA_HOME); Spark $VERSION needs Java 17"
}

up() {
    local port="${ALM_SPARK_MASTER_PORT:-17077}" ui="${ALM_SPARK_MASTER_WEBUI_PORT:-18080}"
    local wui="${ALM_SPARK_WORKER_WEBUI_PORT:-18082}" pool="${ALM_SPARK_POOL_PORT:-18086}"
    require_installed
    mkdir -p "$STATE/work" "$STATE/conf"
    refuse_if_up master worker pool
    require_free_port 127.0.0.1 "$port" ALM_SPARK_MASTER_PORT
    require_free_port 127.0.0.1 "$ui" ALM_SPARK_MASTER_WEBUI_PORT
    require_free_port 127.0.0.1 "$wui" ALM_SPARK_WORKER_WEBUI_PORT
    require_free_port 127.0.0.1 "$pool" ALM_SPARK_POOL_PORT
    printf 'MASTER_PORT=%s\nWEBUI_PORT=%s\nPOOL_PORT=%s\n' "$port" "$ui" "$pool" >"$STATE/ports.env"
    export SPARK_HOME="$SPARK_HOME_DIR" SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1 \
        SPARK_CONF_DIR="$STATE/conf" SPARK_LOG_DIR="$STATE" SPARK_NO_DAEMONIZE=1
    start_daemon master "$SPARK_HOME_DIR/bin/spark-class" org.apache.spark.deploy.master.Master \
        --host 127.0.0.1 --port "$port" --webui-port "$ui"
    wait_for_http master "http://127.0.0.1:$ui/json/" 180
    start_daemon worker "$SPARK_HOME_DIR/bin/spark-class" org.apache.spark.deploy.worker.Worker \
        --host 127.0.0.1 --webui-port "$wui" --cores 2 --memory 2g --work-dir "$STATE/work" \
        "spark://127.0.0.1:$port"
    start_daemon pool "$PYTHON" -m alm_beam.worker_pool --host 127.0.0.1 --port "$pool"
    wait_for_port pool 127.0.0.1 "$pool"
    local i ready=""
    for ((i = 0; i < 600; i++)); do # ready once the worker has registered
        if "$PYTHON" -c "import json, sys, urllib.request; sys.exit(json.load(urllib.request.urlopen(sys.argv[1])).get('aliveworkers', 0) < 1)" "http://127.0.0.1:$ui/json/" 2>/dev/null; then
            ready=1
            break
        fi
        is_up worker || fail_up "the Spark worker exited (log: $STATE/worker.log)"
        sleep 0.3
    done
    [[ -n "$ready" ]] || fail_up "the Spark worker did not register with the master within 180 s (log: $STATE/worker.log)"
    echo "Spark $VERSION master spark://127.0.0.1:$port, web UI http://127.0.0.1:$ui (pid $(cat "$STATE/master.pid")), worker pid $(cat "$STATE/worker.pid")"
    echo "worker pool 127.0.0.1:$pool (pid $(cat "$STATE/pool.pid")); logs in $STATE"
}

load_ports() {
    [[ -f "$STATE/ports.env" ]] && is_up master ||
        die "the Spark cluster is not up; start it with 'bash pipelines/spark.sh up'"
    # shellcheck disable=SC1091
    . "$STATE/ports.env"
}

submit() {
    load_ports
    local env_type="${ALM_SPARK_ENVIRONMENT_TYPE:-LOOPBACK}" extra=()
    case "$env_type" in
        LOOPBACK) ;;
        EXTERNAL) extra+=(--environment_config "127.0.0.1:$POOL_PORT") ;;
        *) die "ALM_SPARK_ENVIRONMENT_TYPE=$env_type: use LOOPBACK or EXTERNAL" ;;
    esac
    if [[ -n "${ALM_SPARK_JOB_SERVER_JAR:-}" ]]; then
        [[ -f "$ALM_SPARK_JOB_SERVER_JAR" ]] || die "ALM_SPARK_JOB_SERVER_JAR=$ALM_SPARK_JOB_SERVER_JAR: no such file"
        extra+=(--spark_job_server_jar "$ALM_SPARK_JOB_SERVER_JAR")
    fi
    exec "$PYTHON" -m alm_beam.run --runner SparkRunner --spark_master_url "spark://127.0.0.1:$MASTER_PORT" \
        --spark_version 3 --environment_type "$env_type" "${extra[@]}" "$@"
}

status() {
    load_ports
    "$PYTHON" -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())" \
        "http://127.0.0.1:$WEBUI_PORT/json/"
}

down() {
    stop_daemons pool worker master
    rm -f "$STATE/ports.env"
}

case "${1:-}" in
    install) install ;;
    up) up ;;
    submit) shift; submit "$@" ;;
    status) status ;;
    down) down ;;
    *) echo "usage: bash pipelines/spark.sh install|up|submit [alm_beam.run flags]|status|down" >&2; exit 2 ;;
esac
