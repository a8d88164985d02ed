#!/usr/bin/env bash
# A standalone Spark cluster on 127.0.0.1 (one master, one worker) from
# pyspark's distribution, Beam's Spark job server in front of it, and job
# submission to that job server with Beam's PortableRunner.
#
#   bash pipelines/spark.sh install   1. pyspark (ALM_SPARK_VERSION, default 3.5.9: Beam's
#                                        Spark 3 runner) with pip into its own directory,
#                                        ~/.cache/alm_beam/spark/<version>/ (--no-deps: only
#                                        its JVM part, spark-class and jars/, is used);
#                                     2. Beam's Spark job server, built with Maven from Beam's
#                                        published sources (pipelines/job-servers/build.sh spark;
#                                        needs java 17 and mvn; a few minutes and ~480 MB of
#                                        Maven downloads the first time) into
#                                        ~/.cache/alm_beam/spark-job-server/2.70.0/
#                                        beam-runners-spark-3-job-server-2.70.0.jar
#                                        (Spark 3.5.9 inside: the job server is the driver)
#                                     Idempotent: what is installed is not installed again.
#   bash pipelines/spark.sh up        start the master and a worker, the job server
#                                     (java -jar ..., on ALM_SPARK_JOB_PORT) and an SDK worker
#                                     pool for EXTERNAL jobs; waits until the worker has
#                                     registered and the job server listens
#   bash pipelines/spark.sh submit [python -m alm_beam.run flags]
#                                     --runner PortableRunner --job_endpoint 127.0.0.1:JOB_PORT
#                                     --environment_type $ALM_SPARK_ENVIRONMENT_TYPE
#                                     (LOOPBACK, default: the SDK harness runs in this client
#                                     process; or EXTERNAL: the pool from `up`)
#   bash pipelines/spark.sh status    the master's own /json/ (applications and their states)
#   bash pipelines/spark.sh down      stop exactly what `up` started
#
# Ports: ALM_SPARK_MASTER_PORT (17077), ALM_SPARK_MASTER_WEBUI_PORT (18080),
# ALM_SPARK_WORKER_WEBUI_PORT (18082), ALM_SPARK_POOL_PORT (18086),
# ALM_SPARK_JOB_PORT (18089, the job server's job service), ALM_SPARK_ARTIFACT_PORT
# (18088, its artifact staging service), ALM_SPARK_EXPANSION_PORT (-1: its Java
# expansion service is not started; alm_beam uses no cross-language transform;
# a port >= 0 starts it, on 127.0.0.1). The worker's own port, the driver's
# (inside the job server, one application per job) and the executors' are
# picked by Spark; the driver's web UI takes 4040 or the next free port.
# The master, the worker, the driver, the executors (SPARK_LOCAL_IP) and the
# worker pool bind 127.0.0.1. What does not, and cannot be made to without
# changing Beam's Java code: Beam's gRPC servers are built by
# org.apache.beam.sdk.fn.server.ServerFactory with NettyServerBuilder.forPort(port),
# i.e. on all interfaces; --job-host only names the address advertised to
# clients. So the job server's job and artifact ports listen on 0.0.0.0, and
# so do the ports each executor opens per job for the SDK harness (control,
# data, state, logging, artifact retrieval, provisioning; random ports). In
# LOOPBACK mode the client's SDK worker service (Beam Python's worker_pool_main)
# listens on [::] too, on a random port.
#
# State (pids, logs, work dir, the job server's staged artifacts):
# ALM_SPARK_STATE_DIR, default ~/.local/state/alm_beam/spark. Each job's
# executor copies the job server jar (about 300 MB: Beam ships it as the job's
# jar) into work/app-*/; nothing removes those directories. The job server jar
# `up` runs: ALM_SPARK_JOB_SERVER_JAR, default the one `install` builds (its
# Spark is 3.5.9: the cluster must be Spark 3.5). Needs Java 17 and the `python`
# on PATH of alm_beam's environment.
set -euo pipefail

PYTHON="${PYTHON:-python}"
VERSION="${ALM_SPARK_VERSION:-3.5.9}"
STATE="${ALM_SPARK_STATE_DIR:-$HOME/.local/state/alm_beam/spark}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=pipelines/daemon_lib.sh
. "$HERE/daemon_lib.sh"
NAME=spark.sh
CACHE="${ALM_BEAM_CACHE:-$HOME/.cache/alm_beam}"
DIST="$CACHE/spark/$VERSION"
SPARK_HOME_DIR="$DIST/pyspark"
BEAM_JAVA_VERSION="$(sed -n 's:.*<beam.version>\(.*\)</beam.version>.*:\1:p' "$HERE/job-servers/pom.xml")"
JOB_SERVER_JAR="${ALM_SPARK_JOB_SERVER_JAR:-$CACHE/spark-job-server/$BEAM_JAVA_VERSION/beam-runners-spark-3-job-server-$BEAM_JAVA_VERSION.jar}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

install() {
    if [[ ! -f "$DIST/.installed" ]]; then
        local tmp="$DIST.tmp.$$"
        rm -rf "$tmp"
        mkdir -p "$(dirname "$DIST")"
        echo "spark.sh: installing pyspark $VERSION into $DIST" >&2
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" \
            "pyspark==$VERSION" || { rm -rf "$tmp"; die "pip install pyspark==$VERSION failed"; }
        rm -rf "$DIST"
        mv "$tmp" "$DIST"
        touch "$DIST/.installed"
    fi
    echo "$SPARK_HOME_DIR"
    JOB_SERVERS_CALLER="$NAME" bash "$HERE/job-servers/build.sh" spark
}

require_installed() {
    [[ -f "$DIST/.installed" ]] || die "Spark $VERSION is not installed; run 'bash pipelines/spark.sh install'"
    command -v "$JAVA" >/dev/null 2>&1 ||
        die "Java is not installed (no java on PATH, no JAVA_HOME); Spark $VERSION needs Java 17"
    [[ -f "$JOB_SERVER_JAR" ]] ||
        die "no Spark job server at $JOB_SERVER_JAR; run 'bash pipelines/spark.sh install' (or set ALM_SPARK_JOB_SERVER_JAR)"
}

up() {
    local port="${ALM_SPARK_MASTER_PORT:-17077}" ui="${ALM_SPARK_MASTER_WEBUI_PORT:-18080}"
    local wui="${ALM_SPARK_WORKER_WEBUI_PORT:-18082}" pool="${ALM_SPARK_POOL_PORT:-18086}"
    local job="${ALM_SPARK_JOB_PORT:-18089}" artifact="${ALM_SPARK_ARTIFACT_PORT:-18088}"
    local expansion="${ALM_SPARK_EXPANSION_PORT:--1}"
    require_installed
    mkdir -p "$STATE/work" "$STATE/conf" "$STATE/artifacts"
    refuse_if_up master worker jobserver pool
    require_free_port 127.0.0.1 "$port" ALM_SPARK_MASTER_PORT
    require_free_port 127.0.0.1 "$ui" ALM_SPARK_MASTER_WEBUI_PORT
    require_free_port 127.0.0.1 "$wui" ALM_SPARK_WORKER_WEBUI_PORT
    require_free_port 127.0.0.1 "$pool" ALM_SPARK_POOL_PORT
    # the job server's job and artifact services listen on all interfaces (see above)
    require_free_port 0.0.0.0 "$job" ALM_SPARK_JOB_PORT
    require_free_port 0.0.0.0 "$artifact" ALM_SPARK_ARTIFACT_PORT
    if ((expansion > 0)); then require_free_port 127.0.0.1 "$expansion" ALM_SPARK_EXPANSION_PORT; fi
    printf 'MASTER_PORT=%s\nWEBUI_PORT=%s\nPOOL_PORT=%s\nJOB_PORT=%s\n' "$port" "$ui" "$pool" "$job" >"$STATE/ports.env"
    # SPARK_LOCAL_IP also reaches the job server: without it the Spark driver
    # inside it binds (and advertises) the host's address, not 127.0.0.1.
    export SPARK_HOME="$SPARK_HOME_DIR" SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=127.0.0.1 \
        SPARK_CONF_DIR="$STATE/conf" SPARK_LOG_DIR="$STATE" SPARK_NO_DAEMONIZE=1
    start_daemon master "$SPARK_HOME_DIR/bin/spark-class" org.apache.spark.deploy.master.Master \
        --host 127.0.0.1 --port "$port" --webui-port "$ui"
    start_daemon jobserver "$JAVA" -jar "$JOB_SERVER_JAR" --job-host 127.0.0.1 --job-port "$job" \
        --artifact-port "$artifact" --expansion-port "$expansion" --artifacts-dir "$STATE/artifacts" \
        --spark-master-url "spark://127.0.0.1:$port"
    start_daemon pool "$PYTHON" -m alm_beam.execution.worker_pool --host 127.0.0.1 --port "$pool"
    wait_for_http master "http://127.0.0.1:$ui/json/" 180
    start_daemon worker "$SPARK_HOME_DIR/bin/spark-class" org.apache.spark.deploy.worker.Worker \
        --host 127.0.0.1 --webui-port "$wui" --cores 2 --memory 2g --work-dir "$STATE/work" \
        "spark://127.0.0.1:$port"
    wait_for_port pool 127.0.0.1 "$pool"
    wait_for_port jobserver 127.0.0.1 "$job" 180
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
    echo "job server 127.0.0.1:$job, artifacts :$artifact (pid $(cat "$STATE/jobserver.pid"), $JOB_SERVER_JAR)"
    echo "worker pool 127.0.0.1:$pool (pid $(cat "$STATE/pool.pid")); logs in $STATE"
}

load_ports() {
    [[ -f "$STATE/ports.env" ]] && is_up master && is_up jobserver ||
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
    exec "$PYTHON" -m alm_beam.run --runner PortableRunner --job_endpoint "127.0.0.1:$JOB_PORT" \
        --environment_type "$env_type" "${extra[@]}" "$@"
}

status() {
    load_ports
    "$PYTHON" -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())" \
        "http://127.0.0.1:$WEBUI_PORT/json/"
}

down() {
    stop_daemons pool jobserver worker master
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
