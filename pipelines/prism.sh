#!/usr/bin/env bash
# Beam's Prism runner, built from source (never downloaded).
#
#   bash pipelines/prism.sh build   build Prism from the Go module of Beam at the
#                                   installed apache-beam version, into
#                                   ~/.cache/alm_beam/prism/<version>/prism
#                                   (ALM_BEAM_CACHE moves ~/.cache/alm_beam); prints
#                                   the binary's path. Instant when already built.
#   bash pipelines/prism.sh path    print where the binary is (or will be)
#
# `python -m alm_beam.run --runner PrismRunner ...` then uses that binary.
# Uses the `python` on PATH (the environment where alm_beam is installed) to
# learn the apache-beam version; needs the Go toolchain (`go`) and the Go module
# proxy for the build (about 4 minutes on 2 cores the first time).
set -euo pipefail

PYTHON="${PYTHON:-python}"
die() { echo "prism.sh: error: $*" >&2; exit 2; }

binary_path() {
    "$PYTHON" -m alm_beam.execution.runners prism-path 2>/dev/null ||
        die "cannot run '$PYTHON -m alm_beam.execution.runners' (activate the venv where alm_beam is installed)"
}

build() {
    local bin dir version
    bin="$(binary_path)"
    if [[ -x "$bin" ]]; then
        echo "$bin"
        return 0
    fi
    command -v go >/dev/null 2>&1 ||
        die "Go is not installed (no 'go' on PATH); install the Go toolchain (https://go.dev/doc/install), then rerun 'bash pipelines/prism.sh build'"
    dir="$(dirname "$bin")"
    version="$(basename "$dir")"
    mkdir -p "$dir"
    BUILD_TMP="$(mktemp -d "$dir/.build.XXXXXX")"
    trap 'rm -rf "$BUILD_TMP"' EXIT
    echo "prism.sh: building Prism v$version from the Go module github.com/apache/beam/sdks/v2 (a few minutes the first time)" >&2
    if ! GOBIN="$BUILD_TMP" \
            go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$version" >"$BUILD_TMP/build.log" 2>&1; then
        tail -n 20 "$BUILD_TMP/build.log" >&2
        die "go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$version failed (log above)"
    fi
    mv -f "$BUILD_TMP/prism" "$bin"   # atomic: a concurrent reader sees no half-written binary
    echo "$bin"
}

case "${1:-}" in
    build) build ;;
    path) binary_path ;;
    *) echo "usage: bash pipelines/prism.sh build|path" >&2; exit 2 ;;
esac
