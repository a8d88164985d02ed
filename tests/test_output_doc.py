"""docs/output.md names every key a real run writes, so the doc cannot drift."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import FIXTURES, REPO

DOC = REPO / "docs" / "output.md"


def _documented() -> set:
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", DOC.read_text(encoding="utf-8")))


def _first(out, prefix):
    (path,) = glob.glob(os.path.join(str(out), f"{prefix}-*-of-*.jsonl"))
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.mark.e2e
def test_every_key_of_a_real_run_is_documented(tmp_path):
    manifest = tmp_path / "m.jsonl"
    lines = (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()
    manifest.write_bytes(b"\n".join(lines + [b'{"audio_filepath": 3}']) + b"\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--input",
            str(manifest),
            "--output",
            str(out),
            "--num_shards",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr

    inputs = [json.loads(line) for line in lines]
    input_keys = set().union(*inputs)
    entries = _first(out, "windows")
    keys = {}
    keys["windows line"] = set().union(*entries) - input_keys
    keys["stats"] = set().union(*(e["stats"] for e in entries))
    keys["window"] = set().union(*(w for e in entries for w in e["windows"] + e["filtered_windows"]))
    lost = [r for e in entries for r in e["stats"]["lost_win_full_data"]]
    assert lost, "the fixture must have lost windows"
    keys["lost_win_full_data record"] = set().union(*lost)
    train = _first(out, "train")
    keys["train line"] = set().union(*train)
    keys["train segment"] = set().union(*(s for r in train for s in r["segments"]))
    errors = _first(out, "errors")
    assert errors, "the fixture must have an error record"
    keys["error record"] = set().union(*errors)
    with open(out / "summary.json", encoding="utf-8") as fh:
        summary = json.load(fh)
    keys["summary.json"] = set(summary)
    for section in ("stats", "outputs", "run", "params", "config"):
        keys[f"summary.json {section}"] = set(summary[section])
    for section in ("params", "config"):
        for name in summary[section]:
            keys[f"summary.json {section}.{name}"] = set(summary[section][name])

    documented = _documented()
    missing = {where: sorted(k - documented) for where, k in keys.items() if k - documented}
    assert missing == {}, f"keys a run writes that docs/output.md does not name: {missing}"
    # and the check can fail: these are not documented keys
    assert not {"segments_count", "kept"} & documented
