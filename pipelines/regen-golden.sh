#!/usr/bin/env bash
# Regenerate the repository's golden outputs (tests/data/golden/) with NVIDIA NeMo
# Curator's own ALM stages, in the reference venv of pipelines/nemo-reference.sh
# (installed once, about 2 GB; never alm_beam's code):
#   bash pipelines/regen-golden.sh           # rewrite tests/data/golden/
#   bash pipelines/regen-golden.sh --check   # exit 1 if a file differs from the stages' output
# NEMO_CURATOR_VERSION picks another release (tests/data/README.md names the one used).
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(bash pipelines/nemo-reference.sh)"
exec "$python" tests/data/regenerate.py "$@"
