"""The reference the logic is measured against: the spec transcribed literally
(c, ``tests/literal_spec.py``) or NeMo Curator's own ALM stages (n, in the venv
that ``pipelines/nemo-reference.sh`` installs)."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Optional

import orjson


def phase_reference(src: str, out: str, source: str) -> dict:
    from alm_beam.core.params import make_params
    from alm_beam.io.reader import iter_lines
    from tests.literal_spec import literal_build, literal_filter

    params = make_params()
    entries = errors = out_bytes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with open(src, "rb") as fin, open(out, "wb", buffering=1 << 20) as fout:
        for raw in iter_lines(fin):
            if not raw.data.strip():
                continue
            try:
                entry = orjson.loads(raw.data)
                line = orjson.dumps(
                    literal_filter(literal_build(entry, params.builder), params.overlap, source)
                )
            except Exception:  # the reference has no error path; count, go on
                errors += 1
                continue
            fout.write(line)
            fout.write(b"\n")
            entries += 1
            out_bytes += len(line) + 1
    return {
        "wall": time.perf_counter() - wall0,
        "cpu": time.process_time() - cpu0,
        "entries": entries,
        "errors": errors,
        "out_bytes": out_bytes,
    }


NEMO_STAGE_FILES = ("alm_data_builder", "alm_data_overlap")


def nemo_stage_modules():
    """NeMo Curator's two ALM stage modules, loaded from the installed wheel's files.

    The package ``nemo_curator.stages.audio.alm`` also imports the pretraining
    stages (torch, ...); loading the two files by path needs only the core
    import chain that ``pipelines/nemo-reference.sh`` installs. Returns
    ``(builder_module, overlap_module, {file: sha256})``.
    """
    import importlib.util

    import nemo_curator

    alm = os.path.join(os.path.dirname(nemo_curator.__file__), "stages", "audio", "alm")
    modules, digests = [], {}
    for name in NEMO_STAGE_FILES:
        path = os.path.join(alm, name + ".py")
        with open(path, "rb") as fh:
            digests[name + ".py"] = hashlib.sha256(fh.read()).hexdigest()
        spec = importlib.util.spec_from_file_location(f"nemo_alm_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1], digests


def phase_nemo(src: str, out: str) -> dict:
    """NeMo Curator's own ALMDataBuilderStage + ALMDataOverlapStage, one entry at a
    time (as its Ray pipeline calls them), with orjson I/O. Runs in the reference
    venv; parameters are alm_beam's defaults (the tutorial's), passed the way the
    stages take them."""
    import nemo_curator
    from nemo_curator.tasks import AudioTask

    from alm_beam.core.params import make_params

    builder_mod, overlap_mod, digests = nemo_stage_modules()
    p = make_params()
    b, o = p.builder, p.overlap
    builder = builder_mod.ALMDataBuilderStage(
        target_window_duration=b.target_window_duration,
        tolerance=b.tolerance,
        min_bandwidth=b.min_bandwidth,
        min_sample_rate=b.min_sample_rate,
        min_speakers=b.min_speakers,
        max_speakers=b.max_speakers,
        truncation=b.truncation,
        drop_fields=",".join(b.drop_fields),
        drop_fields_top_level=",".join(b.drop_fields_top_level),
    )
    overlap = overlap_mod.ALMDataOverlapStage(
        overlap_percentage=o.overlap_percentage, target_duration=o.target_duration
    )
    entries = out_bytes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with open(src, "rb") as fin, open(out, "wb", buffering=1 << 20) as fout:
        for line in fin:
            if not line.strip():
                continue
            task = overlap.process(builder.process(AudioTask(data=orjson.loads(line))))
            data = orjson.dumps(dict(task.data))
            fout.write(data)
            fout.write(b"\n")
            entries += 1
            out_bytes += len(data) + 1
    return {
        "wall": time.perf_counter() - wall0,
        "cpu": time.process_time() - cpu0,
        "entries": entries,
        "errors": 0,
        "out_bytes": out_bytes,
        "nemo_curator": nemo_curator.__version__,
        "stage_sha256": digests,
    }


NEMO_CURATOR_VERSION = "1.4.0"


def default_nemo_python() -> str:
    """Where pipelines/nemo-reference.sh installs the reference venv's python."""
    cache = os.environ.get("ALM_BEAM_CACHE", os.path.expanduser("~/.cache/alm_beam"))
    return os.path.join(cache, "nemo-curator", NEMO_CURATOR_VERSION, "venv", "bin", "python")


def resolve_nemo_python(reference: str, given: Optional[str]) -> Optional[str]:
    """The reference python to run n with, or None (``--reference literal``, or
    ``auto`` without an installed reference)."""
    if reference == "literal":
        return None
    path = given or default_nemo_python()
    return path if os.path.exists(path) else None
