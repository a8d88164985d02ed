#!/usr/bin/env bash
# A local S3-compatible server for trying and testing alm_beam's object-store
# support: Versity's versitygw (Apache-2.0) serving S3 over a POSIX directory.
#
#   pipelines/s3-local.sh build   build versitygw once (Go module proxy), cached per version
#   pipelines/s3-local.sh up      build if needed, start it on 127.0.0.1 (fixed local credentials)
#   pipelines/s3-local.sh flags   the Beam options that reach it, one per line
#   pipelines/s3-local.sh down    stop it (by its pid)
#
# Environment (all optional):
#   ALM_BEAM_S3_STATE   state dir: pid, port, log, and data/ (one directory per bucket)
#                       default ${TMPDIR:-/tmp}/alm_beam-s3-local
#   ALM_BEAM_S3_PORT    port for `up` (default: a free port, remembered in the state dir)
#   ALM_BEAM_S3_BUCKETS buckets `up` creates (space-separated; default "alm-beam")
#   ALM_BEAM_S3_WATCH_PID  stop the server when this process ends (tests pass their
#                       own pid, so even a killed test run leaves no server behind)
#   VERSITYGW_VERSION   default v1.8.0; the binary lives in
#                       ~/.cache/alm_beam/versitygw/<version>/bin/versitygw
#
# Example:
#   pipelines/s3-local.sh up
#   python -m alm_beam.run --input s3://alm-beam/manifests/ --output s3://alm-beam/out \
#       $(pipelines/s3-local.sh flags)
#   pipelines/s3-local.sh down
set -euo pipefail

VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE="${ALM_BEAM_CACHE:-$HOME/.cache/alm_beam}/versitygw/$VERSION"
BIN="$CACHE/bin/versitygw"
STATE="${ALM_BEAM_S3_STATE:-${TMPDIR:-/tmp}/alm_beam-s3-local}"
ACCESS_KEY="alm-beam-local"
SECRET_KEY="alm-beam-local-secret"
REGION="us-east-1"

die() { echo "s3-local: $*" >&2; exit 1; }

alive() {  # a zombie (exited, not yet reaped) counts as gone; an exiting process does not
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != "Z" && "${stat:0:1}" != "X" ]]
}

running_pid() {  # prints the server's pid if it is alive
    [[ -f "$STATE/pid" ]] || return 1
    local pid; pid="$(cat "$STATE/pid")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q versitygw "/proc/$pid/cmdline" 2>/dev/null \
        && echo "$pid"
}

build() {
    if [[ -x "$BIN" ]]; then
        return 0
    fi
    command -v go >/dev/null || die "Go is needed to build versitygw (https://go.dev/dl/)"
    echo "s3-local: building versitygw $VERSION into $CACHE (once; about a minute)" >&2
    local tmp="$CACHE/bin.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    (cd "$tmp" && GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION")
    mkdir -p "$CACHE/bin"
    mv "$tmp/versitygw" "$BIN"   # atomic: a half-built binary is never at $BIN
    rm -rf "$tmp"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up() {
    build
    mkdir -p "$STATE/data"
    if pid="$(running_pid)"; then
        echo "s3-local: already running (pid $pid) on http://127.0.0.1:$(cat "$STATE/port")" >&2
        return 0
    fi
    local port="${ALM_BEAM_S3_PORT:-}"
    [[ -n "$port" ]] || port="$(free_port)"
    for bucket in ${ALM_BEAM_S3_BUCKETS-alm-beam}; do
        mkdir -p "$STATE/data/$bucket"   # posix backend: a bucket is a top-level directory
    done
    echo "$port" > "$STATE/port"
    # setsid: the server does not share our process group, so a Ctrl-C in the
    # calling shell does not kill it half-way; `down` stops it by pid.
    setsid "$BIN" --access "$ACCESS_KEY" --secret "$SECRET_KEY" --region "$REGION" \
        --port "127.0.0.1:$port" posix "$STATE/data" >"$STATE/log" 2>&1 < /dev/null &
    local server=$!
    echo "$server" > "$STATE/pid"
    if [[ -n "${ALM_BEAM_S3_WATCH_PID:-}" ]]; then
        local watched="$ALM_BEAM_S3_WATCH_PID"
        ( while kill -0 "$watched" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
          kill "$server" 2>/dev/null || true ) >/dev/null 2>&1 < /dev/null &
        disown
    fi
    for _ in $(seq 100); do
        if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
            rm -f "$STATE/pid"
            die "versitygw exited at start: $(tail -n 3 "$STATE/log" | tr '\n' ' ')"
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "s3-local: versitygw $VERSION up on http://127.0.0.1:$port (pid $(cat "$STATE/pid"), data $STATE/data)" >&2
            return 0
        fi
        sleep 0.1
    done
    down
    die "versitygw did not listen on 127.0.0.1:$port within 10 s (log: $STATE/log)"
}

flags() {
    [[ -f "$STATE/port" ]] && running_pid >/dev/null || die "not running; start it with: $0 up"
    echo "--s3_endpoint_url=http://127.0.0.1:$(cat "$STATE/port")"
    echo "--s3_access_key_id=$ACCESS_KEY"
    echo "--s3_secret_access_key=$SECRET_KEY"
    echo "--s3_region_name=$REGION"
}

down() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$STATE/pid"
        echo "s3-local: not running" >&2
        return 0
    fi
    kill "$pid"
    for _ in $(seq 50); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    if alive "$pid"; then
        die "versitygw (pid $pid) is still running after SIGKILL"
    fi
    rm -f "$STATE/pid"
    echo "s3-local: stopped (pid $pid)" >&2
}

case "${1:-}" in
    build) build ;;
    up) up ;;
    flags) flags ;;
    down) down ;;
    bin) build; echo "$BIN" ;;
    *) echo "usage: $0 build|up|flags|down|bin" >&2; exit 2 ;;
esac
