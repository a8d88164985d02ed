#!/usr/bin/env bash
# Install NVIDIA NeMo Curator's ALM stages as the reference (the benchmark's,
# and the maker of the golden outputs in tests/data/golden), in a virtual
# environment of their own (never alm_beam's dependencies):
#   bash pipelines/nemo-reference.sh          # installs once, prints its python
#   python -m benchmarks.bench --reference nemo # uses it
#   bash pipelines/regen-golden.sh              # uses it: remakes tests/data/golden
# A full `pip install nemo-curator` pulls about 6 GB (torch, transformers, ...).
# The two stage modules (ALMDataBuilderStage, ALMDataOverlapStage) need only
# the package's core import chain, so the wheel goes in with --no-deps plus the
# packages that chain imports (about 2 GB, most of it Ray). The bench loads the
# two stage files from this released wheel and prints their sha256.
set -euo pipefail
version="${NEMO_CURATOR_VERSION:-1.4.0}"
root="${ALM_BEAM_CACHE:-$HOME/.cache/alm_beam}/nemo-curator/$version"
venv="$root/venv"
if [ -f "$root/.installed" ]; then
    echo "$venv/bin/python"
    exit 0
fi
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "nemo-reference.sh: $python not found" >&2; exit 2; }
rm -rf "$venv"
mkdir -p "$root"
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --upgrade pip >&2
"$venv/bin/pip" install --quiet --no-deps "nemo-curator==$version" >&2
# What nemo_curator's core import chain needs (nemo_curator/__init__.py imports
# cosmos_xenna, which imports ray; nemo_curator.tasks imports numpy, pandas,
# pyarrow, soundfile, loguru). nemo-curator 1.4.0 pins cosmos-xenna 0.2.0.
"$venv/bin/pip" install --quiet "cosmos-xenna==0.2.0" numpy pandas pyarrow soundfile loguru \
    "orjson>=3.9" >&2
"$venv/bin/python" - <<'PY' >&2
import importlib.util, os, nemo_curator
alm = os.path.join(os.path.dirname(nemo_curator.__file__), "stages", "audio", "alm")
for name in ("alm_data_builder", "alm_data_overlap"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(alm, name + ".py"))
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
print("nemo-reference.sh: NeMo Curator", nemo_curator.__version__, "ALM stages import")
PY
touch "$root/.installed"
echo "$venv/bin/python"
