"""summary.json records everything that shaped the output: every input and output
setting (``config``), the curation parameters (``params``), the inputs and the
versions, so a consumer can tell which output it holds."""

import dataclasses
import json
import platform
import subprocess
import sys

import apache_beam
import pytest
from conftest import FIXTURES

import alm_beam
from alm_beam.beam.pipeline import recorded_config
from alm_beam.config import InputConfig, OutputConfig, build_config

# Settings that do not change what is written (docs/output.md says why).
NOT_RECORDED = {"output": {"path", "overwrite"}, "input": set()}


def _timing(key: str) -> bool:
    """When the run happened and how long it took: run.started_at, run.duration_s, ..."""
    return key.startswith("run.") and key.endswith(("_at", "_s"))


def test_every_setting_is_recorded_or_deliberately_not():
    recorded = recorded_config(build_config({}, []))
    for section, cls in (("input", InputConfig), ("output", OutputConfig)):
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(recorded[section]) == fields - NOT_RECORDED[section], section
    assert recorded["output"] == {
        "compact": False,
        "training_manifest": True,
        "num_shards": 0,
        "compression": "none",
        "max_raw_chars": 2000,
    }
    assert recorded["input"] == {
        "paths": [],
        "split_mb": "auto",
        "reshuffle": "auto",
        "max_error_fraction": None,
        "max_line_mb": 64,
    }
    json.dumps(recorded)  # plain JSON values


def _flat(value, path=""):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{path}.{key}" if path else key))
        return out
    return {path: value}


def _run(out, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--output", str(out), "--quiet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "summary.json").read_text())


@pytest.mark.e2e
def test_a_compact_run_says_so_and_every_other_setting_is_recorded(tmp_path):
    manifest = str(FIXTURES / "sample_input.jsonl")
    plain = _run(tmp_path / "plain", "--input", manifest)
    compact = _run(tmp_path / "compact", "--input", manifest, "--compact")
    a, b = _flat(plain), _flat(compact)
    assert set(a) == set(b)
    differ = {k for k in a if a[k] != b[k] and not _timing(k)}
    assert differ == {"config.output.compact"}
    assert (a["config.output.compact"], b["config.output.compact"]) == (False, True)

    # the versions and the inputs
    assert plain["run"]["alm_beam"] == alm_beam.__version__
    assert plain["run"]["apache_beam"] == apache_beam.__version__
    assert plain["run"]["python"] == platform.python_version()
    assert plain["inputs"] == [manifest]
    assert plain["config"]["input"]["paths"] == [manifest]

    # every other setting that shapes the output, as given
    changed = _run(
        tmp_path / "changed",
        "--input",
        manifest,
        "--num_shards",
        "2",
        "--output_compression",
        "gzip",
        "--max_error_fraction",
        "0.5",
        "--set",
        "output.training_manifest=false",
        "--set",
        "output.max_raw_chars=50",
        "--set",
        "input.split_mb=0.5",
        "--set",
        "input.reshuffle=true",
        "--set",
        "input.max_line_mb=1",
    )
    assert changed["config"] == {
        "input": {
            "paths": [manifest],
            "split_mb": 0.5,
            "reshuffle": True,
            "max_error_fraction": 0.5,
            "max_line_mb": 1,
        },
        "output": {
            "compact": False,
            "training_manifest": False,
            "num_shards": 2,
            "compression": "gzip",
            "max_raw_chars": 50,
        },
    }
    assert changed["params"] == plain["params"]
