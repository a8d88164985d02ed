"""Regenerate tests/data/golden/ with NVIDIA NeMo Curator's own ALM stages.

The golden outputs are the reference implementation's, never alm_beam's: this
script imports nothing from alm_beam and runs in the virtual environment that
``pipelines/nemo-reference.sh`` installs (NeMo Curator, no alm_beam)::

    bash pipelines/regen-golden.sh            # installs that venv once, then runs this
    bash pipelines/regen-golden.sh --check    # regenerate in memory, compare with the files

For every case in ``CASES`` it runs ``ALMDataBuilderStage`` then
``ALMDataOverlapStage`` on each non-blank line of the case's fixture (a
directory: its ``*.jsonl`` files in sorted path order), one entry at a time as
NeMo Curator's pipeline calls them, and writes:

- ``golden/<case>.jsonl``: the entries as the stages return them, one JSON line
  each, in input order (``manifest_filepath`` is null: the reference leaves it so);
- ``golden/<case>.summary.json``: the stage parameters, the inputs (with
  sha256), the aggregates the tests compare with (summed in file order), the
  output's sha256 and the NeMo Curator version with its two stage files' sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys

DATA = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(DATA, "fixtures")
GOLDEN = os.path.join(DATA, "golden")

# NeMo Curator's tutorial configuration (configs/default.yaml): the stages'
# parameters, by their own names.
DEFAULTS = {
    "target_window_duration": 120.0,
    "tolerance": 0.1,
    "min_sample_rate": 16000,
    "min_bandwidth": 8000,
    "min_speakers": 2,
    "max_speakers": 5,
    "truncation": True,
    "drop_fields": "words",
    "drop_fields_top_level": "words,segments",
    "overlap_percentage": 50,
    "target_duration": 120.0,
}
OVERLAP_PARAMS = ("overlap_percentage", "target_duration")

# case -> (fixture, the parameters that differ from DEFAULTS); tests/test_golden.py
# runs alm_beam with the same parameters (checked against each summary's params).
CASES = {
    "sample_default": ("sample_input.jsonl", {}),
    "sample_overlap0": ("sample_input.jsonl", {"overlap_percentage": 0}),
    "sample_overlap100": ("sample_input.jsonl", {"overlap_percentage": 100}),
    "sample_notrunc": ("sample_input.jsonl", {"truncation": False}),
    "sample_spk2to3": ("sample_input.jsonl", {"max_speakers": 3}),
    "sample_target60_tol015_td60": (
        "sample_input.jsonl",
        {"target_window_duration": 60.0, "tolerance": 0.15, "target_duration": 60.0},
    ),
    "nested_default": ("nested_manifests", {}),
}

STATS_KEYS = (
    "total_segments",
    "total_dur",
    "lost_bw",
    "dur_lost_bw",
    "lost_sr",
    "dur_lost_sr",
    "lost_spk",
    "dur_lost_spk",
    "lost_win",
    "dur_lost_win",
    "lost_no_spkr",
    "dur_lost_no_spkr",
    "lost_next_seg_bm",
    "dur_lost_next_seg_bm",
)
STAGE_FILES = ("alm_data_builder", "alm_data_overlap")


def load_stages():
    """NeMo Curator's two ALM stage modules, loaded from the installed wheel's
    files (the package ``nemo_curator.stages.audio.alm`` would also import its
    torch-based stages), with each file's sha256."""
    import nemo_curator

    alm = os.path.join(os.path.dirname(nemo_curator.__file__), "stages", "audio", "alm")
    modules, digests = [], {}
    for name in STAGE_FILES:
        path = os.path.join(alm, name + ".py")
        with open(path, "rb") as fh:
            digests[name + ".py"] = hashlib.sha256(fh.read()).hexdigest()
        spec = importlib.util.spec_from_file_location(f"nemo_alm_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1], digests


def input_files(fixture: str) -> list:
    path = os.path.join(FIXTURES, fixture)
    if os.path.isfile(path):
        return [path]
    found = []
    for folder, _, names in os.walk(path):
        found.extend(os.path.join(folder, n) for n in names if n.endswith(".jsonl"))
    return sorted(found)


def sha256_of(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def run_case(builder_mod, overlap_mod, fixture: str, params: dict):
    """(output lines, summary aggregates, inputs) of one case."""
    from nemo_curator.tasks import AudioTask

    builder = builder_mod.ALMDataBuilderStage(**{k: v for k, v in params.items() if k not in OVERLAP_PARAMS})
    overlap = overlap_mod.ALMDataOverlapStage(**{k: params[k] for k in OVERLAP_PARAMS})
    lines, outputs, per_file, inputs = [], [], {}, []
    for path in input_files(fixture):
        rel = os.path.relpath(path, DATA)
        inputs.append({"path": rel, "sha256": sha256_of(path)})
        per_file[rel] = 0
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                entry = dict(overlap.process(builder.process(AudioTask(data=json.loads(raw)))).data)
                outputs.append(entry)
                lines.append(json.dumps(entry))
                per_file[rel] += 1
    return lines, aggregates(outputs, params, per_file), inputs


def aggregates(outputs: list, params: dict, per_file: dict) -> dict:
    """The summary the tests compare alm_beam's with; sums in file order."""
    total = dict.fromkeys(
        (
            "entries_with_windows",
            "entries_with_filtered_windows",
            "entries_below_min_sample_rate",
            "windows",
            "filtered_windows",
            "filtered_timestamps",
        ),
        0,
    )
    filtered_dur = total_dur_window = 0.0
    truncation_events = lost_records = 0
    stats = {key: (0 if key.startswith("lost_") or key == "total_segments" else 0.0) for key in STATS_KEYS}
    for entry in outputs:
        windows = entry.get("windows") or []
        kept = entry.get("filtered_windows") or []
        total["entries_with_windows"] += bool(windows)
        total["entries_with_filtered_windows"] += bool(kept)
        total["entries_below_min_sample_rate"] += (
            entry["stats"]["audio_sample_rate"] < params["min_sample_rate"]
        )
        total["windows"] += len(windows)
        total["filtered_windows"] += len(kept)
        total["filtered_timestamps"] += len(entry.get("filtered") or [])
        filtered_dur += entry.get("filtered_dur", 0.0)
        total_dur_window += entry.get("total_dur_window", 0.0)
        truncation_events += entry.get("truncation_events", 0)
        lost_records += len(entry["stats"].get("lost_win_full_data") or [])
        for key in STATS_KEYS:
            stats[key] += entry["stats"][key]
    return {
        "entries": len(outputs),
        **total,
        "filtered_dur": filtered_dur,
        "total_dur_window": total_dur_window,
        "truncation_events": truncation_events,
        "lost_win_full_data_records": lost_records,
        "stats": stats,
        "errors": [],
        "per_file_entries": per_file,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a golden file differs from what the stages give",
    )
    args = parser.parse_args(argv)
    try:
        import nemo_curator
    except ImportError:
        print(
            "regenerate.py: NeMo Curator is not importable; run it with the python that "
            "`bash pipelines/nemo-reference.sh` prints (or `bash pipelines/regen-golden.sh`)",
            file=sys.stderr,
        )
        return 2
    builder_mod, overlap_mod, digests = load_stages()
    producer = f"NeMo Curator {nemo_curator.__version__} ALMDataBuilderStage + ALMDataOverlapStage"
    os.makedirs(GOLDEN, exist_ok=True)
    differ = []
    for case, (fixture, changed) in CASES.items():
        params = {**DEFAULTS, **changed}
        lines, summary, inputs = run_case(builder_mod, overlap_mod, fixture, params)
        output = ("\n".join(lines) + "\n").encode("utf-8")
        doc = {
            "params": params,
            "inputs": inputs,
            "summary": summary,
            "output_sha256": hashlib.sha256(output).hexdigest(),
            "producer": producer,
            "nemo_curator": nemo_curator.__version__,
            "stage_sha256": digests,
        }
        files = {
            f"{case}.jsonl": output,
            f"{case}.summary.json": (json.dumps(doc, indent=2) + "\n").encode("utf-8"),
        }
        for name, content in files.items():
            path = os.path.join(GOLDEN, name)
            if args.check:
                if not os.path.exists(path) or sha256_of(path) != hashlib.sha256(content).hexdigest():
                    differ.append(name)
                continue
            with open(path, "wb") as fh:
                fh.write(content)
        print(f"{case}: {summary['entries']} entries, {summary['filtered_windows']} filtered windows")
    if differ:
        print(f"regenerate.py: differs from {producer}: {', '.join(differ)}", file=sys.stderr)
        return 1
    print(f"{'checked' if args.check else 'wrote'} {GOLDEN} with {producer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
