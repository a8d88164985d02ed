#!/usr/bin/env bash
# Run alm_beam on this machine with one worker process per core (DirectRunner,
# multi-processing). All arguments go to `python -m alm_beam.run`, e.g.
#   bash pipelines/direct.sh --input manifests/ --output out/ --set builder.min_speakers=3
# Uses the `python` on PATH (the environment where alm_beam is installed).
set -euo pipefail
workers="${ALM_BEAM_WORKERS:-$(nproc)}"
exec python -m alm_beam.run --direct_num_workers "$workers" \
    --direct_running_mode multi_processing "$@"
