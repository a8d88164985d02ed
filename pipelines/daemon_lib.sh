# Shared by portable.sh, flink.sh and spark.sh (sourced, not run): background
# services started by pid, each in its own session (process group), recorded
# in $STATE as NAME.pid + NAME.start (the process's start time, so a reused pid
# is never mistaken for ours), logged to $STATE/NAME.log, and stopped by
# process group: a service and everything it started, nothing else.
# The caller sets STATE, NAME (for messages) and PYTHON.

STARTED=()

die() { echo "$NAME: error: $*" >&2; exit 2; }

start_time() { # pid -> field 22 of /proc/pid/stat (clock ticks since boot)
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    # after "comm) ", field 3 is the first; start time is field 22
    awk '{print $20}' <<<"$stat"
}

is_up() { # name: its recorded process is alive and is the one we started
    local pid start
    [[ -f "$STATE/$1.pid" && -f "$STATE/$1.start" ]] || return 1
    pid="$(cat "$STATE/$1.pid")"
    start="$(start_time "$pid")" || return 1
    [[ "$start" == "$(cat "$STATE/$1.start")" ]] || return 1
    ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}

refuse_if_up() { # names...
    local name
    for name in "$@"; do
        if is_up "$name"; then
            die "already up ($name pid $(cat "$STATE/$name.pid")); run '$NAME down' first"
        fi
    done
}

require_free_port() { # host port variable
    "$PYTHON" - "$1" "$2" <<'EOF' || die "port $2 ($3) is already in use; free it or set $3 to another port"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not busy
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
EOF
}

start_daemon() { # name command...
    local name="$1" pid
    shift
    setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$STATE/$name.pid"
    start_time "$pid" >"$STATE/$name.start" || true
    STARTED+=("$name")
}

group_exists() { kill -0 -- "-$1" 2>/dev/null; }

stop_one() { # name: stop its process group; 0 if something was stopped
    local name="$1" pid i
    [[ -f "$STATE/$name.pid" ]] || return 1
    pid="$(cat "$STATE/$name.pid")"
    if is_up "$name" || { ! kill -0 "$pid" 2>/dev/null && group_exists "$pid"; }; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            group_exists "$pid" || break
            sleep 0.1
        done
        if group_exists "$pid"; then
            kill -KILL -- "-$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do group_exists "$pid" || break; sleep 0.1; done
        fi
        rm -f "$STATE/$name.pid" "$STATE/$name.start"
        echo "stopped $name (pid $pid)"
        return 0
    fi
    rm -f "$STATE/$name.pid" "$STATE/$name.start"
    return 1
}

stop_daemons() { # names...: stop each; say so when none was running
    local name any=0
    for name in "$@"; do
        if stop_one "$name"; then any=1; fi
    done
    if [[ $any == 0 ]]; then echo "$NAME: nothing was running"; fi
    return 0
}

fail_up() { # message: stop what this `up` started, then fail
    local name
    for name in "${STARTED[@]}"; do stop_one "$name" >/dev/null || true; done
    die "$*"
}

wait_for_port() { # name host port [timeout_s]: until it accepts, or its process died
    local name="$1" host="$2" port="$3" limit="${4:-120}" i
    for ((i = 0; i < limit * 10; i++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        if ! is_up "$name"; then
            tail -n 20 "$STATE/$name.log" >&2 || true
            fail_up "$name exited before listening on $host:$port (log: $STATE/$name.log)"
        fi
        sleep 0.1
    done
    fail_up "$name did not listen on $host:$port within ${limit}s (log: $STATE/$name.log)"
}

wait_for_http() { # name url [timeout_s]: until the URL answers 200
    local name="$1" url="$2" limit="${3:-120}" i
    for ((i = 0; i < limit * 5; i++)); do
        if "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
            return 0
        fi
        if ! is_up "$name"; then
            tail -n 20 "$STATE/$name.log" >&2 || true
            fail_up "$name exited before answering $url (log: $STATE/$name.log)"
        fi
        sleep 0.2
    done
    fail_up "$name did not answer $url within ${limit}s (log: $STATE/$name.log)"
}
