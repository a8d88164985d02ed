"""pipelines/alm.yaml (Beam YAML) gives the CLI's windows, errors and summary."""

import collections
import json
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES, GOLDEN, REPO, canonical

from alm_beam import run

pytestmark = pytest.mark.e2e

FN_API_RUNNER = "--runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def _records(out_dir, prefix):
    return [
        json.loads(x)
        for f in sorted(out_dir.glob(f"{prefix}-*-of-*.jsonl"))
        for x in f.read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]


def test_yaml_job_equals_cli_and_golden(tmp_path, capsys):
    manifests = tmp_path / "manifests"
    shutil.copytree(FIXTURES / "nested_manifests", manifests)
    sample = (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()
    (manifests / "broken.jsonl").write_bytes(sample[0] + b"\n{broken\n\n")

    cli_out, yaml_out = tmp_path / "cli", tmp_path / "yaml"
    assert run.main(["--input", str(manifests), "--output", str(cli_out)]) == 0
    capsys.readouterr()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "apache_beam.yaml.main",
            "--yaml_pipeline_file",
            str(REPO / "pipelines" / "alm.yaml"),
            "--jinja_variables",
            json.dumps({"input": str(manifests), "output": str(yaml_out)}),
            FN_API_RUNNER,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    cli_windows, yaml_windows = _records(cli_out, "windows"), _records(yaml_out, "windows")
    assert collections.Counter(map(canonical, yaml_windows)) == collections.Counter(
        map(canonical, cli_windows)
    )
    # and both are the golden case plus the one good line of broken.jsonl
    with open(GOLDEN / "nested_default.jsonl", encoding="utf-8") as fh:
        golden = [canonical(json.loads(x)) for x in fh if x.strip()]
    assert len(yaml_windows) == len(golden) + 1
    assert (
        collections.Counter(golden) - collections.Counter(map(canonical, yaml_windows))
        == collections.Counter()
    )
    assert _records(yaml_out, "errors") == _records(cli_out, "errors")
    [error] = _records(yaml_out, "errors")
    assert (error["manifest_filepath"], error["line"], error["reason"]) == (
        str(manifests / "broken.jsonl"),
        2,
        "invalid_json",
    )

    cli_summary = json.loads((cli_out / "summary.json").read_text())
    yaml_summary = json.loads((yaml_out / "summary.json").read_text())
    for key in (
        "entries_read",
        "entries_written",
        "entries_failed",
        "windows",
        "filtered_windows",
        "filtered_dur",
        "total_dur_window",
        "truncation_events",
        "stats",
        "errors_by_reason",
        "params",
        "outputs",
    ):
        assert yaml_summary[key] == cli_summary[key], key
    assert (yaml_summary["entries_read"], yaml_summary["entries_failed"]) == (len(golden) + 2, 1)
