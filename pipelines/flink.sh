#!/usr/bin/env bash
# A standalone Flink cluster on 127.0.0.1 (one JobManager, one TaskManager) from
# the PyPI distribution, Beam's Flink job server in front of it, and job
# submission to that job server with Beam's PortableRunner.
#
#   bash pipelines/flink.sh install   1. apache-flink + apache-flink-libraries (ALM_FLINK_VERSION,
#                                        default 1.19.3: the job server below is Beam's
#                                        Flink 1.19 runner) with pip into their own
#                                        directory, ~/.cache/alm_beam/flink/<version>/ (they pin
#                                        an older apache-beam, so never into alm_beam's
#                                        environment; --no-deps: only the JVM cluster is used);
#                                     2. Beam's Flink job server, built with Maven from Beam's
#                                        published sources (pipelines/job-servers/build.sh flink;
#                                        needs java 17 and mvn; a few minutes and ~480 MB of
#                                        Maven downloads the first time) into
#                                        ~/.cache/alm_beam/flink-job-server/2.70.0/
#                                        beam-runners-flink-1.19-job-server-2.70.0.jar
#                                     Idempotent: what is installed is not installed again.
#   bash pipelines/flink.sh up        start the cluster (REST/web UI on ALM_FLINK_REST_PORT),
#                                     the job server (java -jar ..., on ALM_FLINK_JOB_PORT) and
#                                     an SDK worker pool for EXTERNAL jobs; waits until the
#                                     TaskManager offers its 2 slots and the job server listens
#   bash pipelines/flink.sh submit [python -m alm_beam.run flags]
#                                     --runner PortableRunner --job_endpoint 127.0.0.1:JOB_PORT
#                                     --environment_type $ALM_FLINK_ENVIRONMENT_TYPE
#                                     (LOOPBACK, default: the SDK harness runs in this client
#                                     process; or EXTERNAL: the pool from `up`)
#   bash pipelines/flink.sh status    the cluster's own /overview (jobs and their states:
#                                     http://127.0.0.1:REST_PORT/jobs/overview)
#   bash pipelines/flink.sh down      stop exactly what `up` started
#
# Ports: ALM_FLINK_REST_PORT (18081), ALM_FLINK_RPC_PORT (16123, JobManager RPC),
# ALM_FLINK_POOL_PORT (18085, worker pool), ALM_FLINK_JOB_PORT (18099, the job
# server's job service), ALM_FLINK_ARTIFACT_PORT (18098, its artifact staging
# service), ALM_FLINK_EXPANSION_PORT (-1: its Java expansion service is not
# started; alm_beam uses no cross-language transform; a port >= 0 starts it, on
# 127.0.0.1). Every other Flink port is picked by Flink.
# Flink, the worker pool and the expansion service bind 127.0.0.1. What does
# not, and cannot be made to without changing Beam's Java code: Beam's gRPC
# servers are built by org.apache.beam.sdk.fn.server.ServerFactory with
# NettyServerBuilder.forPort(port), i.e. on all interfaces; --job-host only
# names the address advertised to clients. So the job server's job and artifact
# ports listen on 0.0.0.0, and so do the ports the TaskManager opens per job
# for the SDK harness (control, data, state, logging, artifact retrieval,
# provisioning; random ports). In LOOPBACK mode the client's SDK worker service
# (Beam Python's worker_pool_main) listens on [::] too, on a random port.
#
# Fault tolerance: config.yaml sets a fixed-delay restart strategy (3 attempts,
# 10 s apart), and `up` runs the TaskManager under a loop that starts a new one
# when it exits (as Kubernetes or systemd would in a real deployment): a
# TaskManager killed mid-job is noticed by the JobManager (heartbeat), the job
# goes to RESTARTING, and re-runs on the new TaskManager's slots. Without a new
# TaskManager a restart waits for slots (slot.request.timeout, 5 min) and then
# counts as a failed attempt.
#
# State (pids, config, logs, the job server's staged artifacts):
# ALM_FLINK_STATE_DIR, default ~/.local/state/alm_beam/flink. The job server jar
# `up` runs: ALM_FLINK_JOB_SERVER_JAR, default the one `install` builds (its
# Flink client is 1.19: the cluster must be Flink 1.19). Needs Java 17 (java on
# PATH or JAVA_HOME) and the `python` on PATH of alm_beam's environment.
set -euo pipefail

PYTHON="${PYTHON:-python}"
VERSION="${ALM_FLINK_VERSION:-1.19.3}"
STATE="${ALM_FLINK_STATE_DIR:-$HOME/.local/state/alm_beam/flink}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=pipelines/daemon_lib.sh
. "$HERE/daemon_lib.sh"
NAME=flink.sh
SLOTS=2  # task slots of the one TaskManager (taskmanager.numberOfTaskSlots)
CACHE="${ALM_BEAM_CACHE:-$HOME/.cache/alm_beam}"
DIST="$CACHE/flink/$VERSION"
FLINK_HOME_DIR="$DIST/pyflink"
BEAM_JAVA_VERSION="$(sed -n 's:.*<beam.version>\(.*\)</beam.version>.*:\1:p' "$HERE/job-servers/pom.xml")"
JOB_SERVER_JAR="${ALM_FLINK_JOB_SERVER_JAR:-$CACHE/flink-job-server/$BEAM_JAVA_VERSION/beam-runners-flink-1.19-job-server-$BEAM_JAVA_VERSION.jar}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

install() {
    if [[ ! -f "$DIST/.installed" ]]; then
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
    fi
    echo "$FLINK_HOME_DIR"
    JOB_SERVERS_CALLER="$NAME" bash "$HERE/job-servers/build.sh" flink
}

require_installed() {
    [[ -f "$DIST/.installed" ]] || die "Flink $VERSION is not installed; run 'bash pipelines/flink.sh install'"
    command -v "$JAVA" >/dev/null 2>&1 ||
        die "Java is not installed (no java on PATH, no JAVA_HOME); Flink $VERSION needs Java 17"
    [[ -f "$JOB_SERVER_JAR" ]] ||
        die "no Flink job server at $JOB_SERVER_JAR; run 'bash pipelines/flink.sh install' (or set ALM_FLINK_JOB_SERVER_JAR)"
}

# The TaskManager, started again whenever it exits (see "Fault tolerance" above);
# `down` stops the loop and the TaskManager together (one process group).
supervise_taskmanager() {
    local status
    while :; do
        status=0
        "$FLINK_HOME_DIR/bin/taskmanager.sh" start-foreground || status=$?
        echo "flink.sh: the TaskManager exited (status $status); starting a new one in 2 s"
        sleep 2
    done
}

up() {
    local rest="${ALM_FLINK_REST_PORT:-18081}" rpc="${ALM_FLINK_RPC_PORT:-16123}"
    local pool="${ALM_FLINK_POOL_PORT:-18085}" job="${ALM_FLINK_JOB_PORT:-18099}"
    local artifact="${ALM_FLINK_ARTIFACT_PORT:-18098}" expansion="${ALM_FLINK_EXPANSION_PORT:--1}"
    require_installed
    mkdir -p "$STATE/conf" "$STATE/log" "$STATE/artifacts"
    refuse_if_up jobmanager taskmanager jobserver pool
    require_free_port 127.0.0.1 "$rest" ALM_FLINK_REST_PORT
    require_free_port 127.0.0.1 "$rpc" ALM_FLINK_RPC_PORT
    require_free_port 127.0.0.1 "$pool" ALM_FLINK_POOL_PORT
    # the job server's job and artifact services listen on all interfaces (see above)
    require_free_port 0.0.0.0 "$job" ALM_FLINK_JOB_PORT
    require_free_port 0.0.0.0 "$artifact" ALM_FLINK_ARTIFACT_PORT
    if ((expansion > 0)); then require_free_port 127.0.0.1 "$expansion" ALM_FLINK_EXPANSION_PORT; fi
    cp "$FLINK_HOME_DIR"/conf/log4j*.properties "$FLINK_HOME_DIR"/conf/logback*.xml "$STATE/conf/"
    # TaskManager memory, measured with a 5000-entry input (175 MB): Beam's gRPC data
    # plane needs direct memory (task.off-heap.size; with Flink's default of 0 the
    # job failed with "OutOfMemoryError: Cannot reserve 2097152 bytes of direct
    # buffer memory") and task heap (at 3072m with the default managed.fraction 0.4,
    # about 0.5 GB of heap, a gRPC thread died with "OutOfMemoryError: Java heap
    # space" and the job hung); 4096m with managed.fraction 0.2 gives about 1.7 GB.
    # sort-shuffle.min-buffers (adjustment 3 in job-servers/pom.xml): Beam's batch jobs use blocking (sort) shuffles, which
    # by default want 512 network buffers per result partition; a TaskManager with
    # little network memory (10% of its Flink memory; 1280m gave about 90 buffers)
    # fails jobs with "Insufficient number of network buffers: required 512, but
    # only 90 available". The setting lowers that minimum to 64.
    # jvm-metaspace.size: every Beam job loads the job server's classes anew in its
    # own class loader, and Flink's default 256m filled after about eight jobs on one
    # cluster (the TaskManager died with "OutOfMemoryError: Metaspace" and the next
    # job failed); 768m, with the process size raised by the same 512m.
    # env.java.opts.all: the JDK packages Flink's own config.yaml opens for Java 17.
    cat >"$STATE/conf/config.yaml" <<EOF
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: $rpc
jobmanager.bind-host: 127.0.0.1
jobmanager.memory.process.size: 1024m
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.memory.process.size: 4608m
taskmanager.memory.jvm-metaspace.size: 768m
taskmanager.memory.managed.fraction: 0.2
taskmanager.memory.task.off-heap.size: 512m
taskmanager.numberOfTaskSlots: $SLOTS
taskmanager.network.sort-shuffle.min-buffers: 64
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $rest
blob.server.port: 0
parallelism.default: 1
restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: 3
restart-strategy.fixed-delay.delay: 10 s
EOF
    "$PYTHON" - "$FLINK_HOME_DIR/conf/config.yaml" >>"$STATE/conf/config.yaml" <<'EOF'
import sys, yaml
opts = yaml.safe_load(open(sys.argv[1])).get("env", {}).get("java", {}).get("opts", {}).get("all")
if opts:
    print("env.java.opts.all:", opts)
EOF
    printf 'REST_PORT=%s\nPOOL_PORT=%s\nJOB_PORT=%s\n' "$rest" "$pool" "$job" >"$STATE/ports.env"
    export FLINK_CONF_DIR="$STATE/conf" FLINK_LOG_DIR="$STATE/log" FLINK_PID_DIR="$STATE"
    start_daemon jobmanager "$FLINK_HOME_DIR/bin/jobmanager.sh" start-foreground
    start_daemon taskmanager bash "$HERE/flink.sh" _taskmanager
    start_daemon jobserver "$JAVA" -jar "$JOB_SERVER_JAR" --job-host 127.0.0.1 --job-port "$job" \
        --artifact-port "$artifact" --expansion-port "$expansion" --artifacts-dir "$STATE/artifacts" \
        --flink-master "127.0.0.1:$rest" --flink-conf-dir "$STATE/conf"
    start_daemon pool "$PYTHON" -m alm_beam.execution.worker_pool --host 127.0.0.1 --port "$pool"
    wait_for_http jobmanager "http://127.0.0.1:$rest/overview" 180
    wait_for_port pool 127.0.0.1 "$pool"
    wait_for_port jobserver 127.0.0.1 "$job" 180
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
    echo "job server 127.0.0.1:$job, artifacts :$artifact (pid $(cat "$STATE/jobserver.pid"), $JOB_SERVER_JAR)"
    echo "worker pool 127.0.0.1:$pool (pid $(cat "$STATE/pool.pid")); logs in $STATE"
}

load_ports() {
    [[ -f "$STATE/ports.env" ]] && is_up jobmanager && is_up jobserver ||
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
    exec "$PYTHON" -m alm_beam.run --runner PortableRunner --job_endpoint "127.0.0.1:$JOB_PORT" \
        --environment_type "$env_type" "${extra[@]}" "$@"
}

status() {
    load_ports
    "$PYTHON" -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())" \
        "http://127.0.0.1:$REST_PORT/overview"
}

down() {
    stop_daemons pool jobserver taskmanager jobmanager
    rm -f "$STATE/ports.env"
}

case "${1:-}" in
    install) install ;;
    up) up ;;
    submit) shift; submit "$@" ;;
    status) status ;;
    down) down ;;
    _taskmanager) supervise_taskmanager ;; # internal: run by `up`
    *) echo "usage: bash pipelines/flink.sh install|up|submit [alm_beam.run flags]|status|down" >&2; exit 2 ;;
esac
