#!/usr/bin/env bash
# Build Beam's Flink and/or Spark job server with Maven from this directory's
# poms (which unpack Beam's published -sources.jar artifacts; see pom.xml).
#
#   bash pipelines/job-servers/build.sh flink|spark|all
#
# Puts each jar at ALM_BEAM_CACHE (default ~/.cache/alm_beam)/
#   flink-job-server/<beam version>/beam-runners-flink-1.19-job-server-<beam version>.jar
#   spark-job-server/<beam version>/beam-runners-spark-3-job-server-<beam version>.jar
# and prints its path. Idempotent: a jar whose directory has its .installed
# marker is not built again. The build runs in a temporary directory under the
# cache (the poms are copied there, so this directory gets no target/), the
# finished jar is moved into place with one rename, and Maven's output (batch
# mode, -q: warnings and errors only) is kept at
# <cache>/<engine>-job-server/build-<beam version>.log. Maven uses its
# default local repository (~/.m2/repository; about 480 MB when cold).
# flink.sh and spark.sh `install` run this with JOB_SERVERS_CALLER set to their
# name, which prefixes the messages.
set -euo pipefail

NAME="${JOB_SERVERS_CALLER:-build.sh}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${ALM_BEAM_CACHE:-$HOME/.cache/alm_beam}"
BEAM_VERSION="$(sed -n 's:.*<beam.version>\(.*\)</beam.version>.*:\1:p' "$HERE/pom.xml")"

die() { echo "$NAME: error: $*" >&2; exit 2; }

[[ -n "$BEAM_VERSION" ]] || die "no <beam.version> in $HERE/pom.xml"

jar_dir() { echo "$CACHE/$1-job-server/$BEAM_VERSION"; }
jar_name() {
    case "$1" in
        flink) echo "beam-runners-flink-1.19-job-server-$BEAM_VERSION.jar" ;;
        spark) echo "beam-runners-spark-3-job-server-$BEAM_VERSION.jar" ;;
    esac
}

case "${1:-}" in
    flink | spark) engines=("$1") ;;
    all) engines=(flink spark) ;;
    *) echo "usage: bash pipelines/job-servers/build.sh flink|spark|all" >&2; exit 2 ;;
esac

missing() { # the engines whose jar is not built yet
    local engine
    for engine in "${engines[@]}"; do
        [[ -f "$(jar_dir "$engine")/.installed" ]] || echo "$engine"
    done
}

print_jars() {
    local engine
    for engine in "${engines[@]}"; do echo "$(jar_dir "$engine")/$(jar_name "$engine")"; done
}

mapfile -t todo < <(missing)
if [[ ${#todo[@]} == 0 ]]; then print_jars; exit 0; fi

command -v java >/dev/null 2>&1 || [[ -n "${JAVA_HOME:-}" ]] ||
    die "Java is not installed (no java on PATH, no JAVA_HOME); building the job server needs a JDK 17"
command -v javac >/dev/null 2>&1 || [[ -x "${JAVA_HOME:-/nonexistent}/bin/javac" ]] ||
    die "no javac (a JRE without a JDK?); building the job server needs a JDK 17"
command -v mvn >/dev/null 2>&1 || die "Maven is not installed (no mvn on PATH); building the job server needs it"

mkdir -p "$CACHE"
# One build at a time (a second caller waits, then finds the jar built).
exec 9>"$CACHE/.job-servers-build.lock"
flock 9
mapfile -t todo < <(missing)
if [[ ${#todo[@]} == 0 ]]; then print_jars; exit 0; fi

tmp="$(mktemp -d "$CACHE/.job-servers-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp -r "$HERE/pom.xml" "$HERE/java-job-service" "$HERE/flink-runner" "$HERE/flink-job-server" \
    "$HERE/spark-runner" "$HERE/spark-job-server" "$tmp/"
modules="$(printf '%s-job-server,' "${todo[@]}")"
log="$tmp/build.log"
logs=()
for engine in "${todo[@]}"; do
    mkdir -p "$CACHE/$engine-job-server"
    logs+=("$CACHE/$engine-job-server/build-$BEAM_VERSION.log")
done
echo "$NAME: building Beam $BEAM_VERSION's ${todo[*]} job server with Maven (a few minutes; log ${logs[0]})" >&2
start=$SECONDS
status=0
mvn -B -q -Dstyle.color=never -f "$tmp/pom.xml" package -pl "${modules%,}" -am >"$log" 2>&1 || status=$?
for keep in "${logs[@]}"; do cp "$log" "$keep"; done
if [[ $status != 0 ]]; then
    tail -n 30 "$log" >&2
    die "Maven failed (exit $status) building the ${todo[*]} job server; full log: ${logs[0]}"
fi
for engine in "${todo[@]}"; do
    dest="$(jar_dir "$engine")"
    built="$tmp/$engine-job-server/target/$(jar_name "$engine")"
    [[ -f "$built" ]] || die "Maven succeeded but left no $built; full log: ${logs[0]}"
    mkdir "$tmp/$engine-out"
    mv "$built" "$tmp/$engine-out/"
    touch "$tmp/$engine-out/.installed"
    rm -rf "$dest"
    mv "$tmp/$engine-out" "$dest"
done
echo "$NAME: built in $((SECONDS - start)) s" >&2
print_jars
