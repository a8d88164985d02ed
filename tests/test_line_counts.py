"""Counted, not derived: the reader's line count must balance what curation
wrote, rejected and skipped as blank, or the run fails without summary.json."""

from __future__ import annotations

import pathlib

import orjson
import pytest
from bad_inputs.corpus import read_output, run_in_process
from conftest import FIXTURES

from alm_beam.core.curate import Failed, curate_line
from alm_beam.core.params import make_params
from alm_beam.core.stats import FLOAT_FIELDS, INT_FIELDS, ErrorItem, ReadCount, RunStats
from alm_beam.results.summary import LinesUnaccounted, build_summary, check_line_balance

WRITTEN = ((1,) + (0,) * (len(INT_FIELDS) - 1), (0.0,) * len(FLOAT_FIELDS), "m.jsonl", (), ())


def stats(lines, blank, written, failed) -> RunStats:
    acc = RunStats()
    acc.add(ReadCount(lines, blank))
    for _ in range(written):
        acc.add(WRITTEN)
    for _ in range(failed):
        acc.add(ErrorItem("invalid_json", "m.jsonl", 0, 1, b'{"reason":"invalid_json"}'))
    return acc


def summarize(acc: RunStats) -> dict:
    return build_summary(
        acc, params={}, inputs=[], window_files=[], error_files=[], max_error_fraction=None, run_info={}
    )


@pytest.mark.parametrize("raw", [b"\x0c", b"\x0b\x0b", b" \x0c\t", b"\x1c", b"\xc2\xa0"])
def test_form_feeds_and_other_whitespace_are_invalid_json_not_blank(raw):
    outcome = curate_line(raw, "m.jsonl", make_params(), line=3, offset=9)
    assert isinstance(outcome, Failed) and outcome.reason == "invalid_json"


@pytest.mark.parametrize("raw", [b"", b" ", b"\t \r", b"\r\n \n"])
def test_json_whitespace_is_blank(raw):
    assert curate_line(raw, "m.jsonl", make_params()) is None


def test_balanced_counts_give_a_summary():
    doc = summarize(stats(10, 3, 5, 2))
    assert (
        doc["lines_read"],
        doc["blank_lines"],
        doc["entries_written"],
        doc["entries_failed"],
        doc["entries_read"],
    ) == (10, 3, 5, 2, 7)


@pytest.mark.parametrize(
    "lines, blank, written, failed, word",
    [
        (10, 3, 4, 2, "1 lines were lost"),  # a line vanished after the reader
        (10, 3, 5, 3, "1 lines were duplicated"),  # a line came out twice
        (10, 0, 5, 2, "3 lines were lost"),  # blank lines not counted as blank
    ],
)
def test_unbalanced_counts_fail_the_summary(lines, blank, written, failed, word):
    with pytest.raises(LinesUnaccounted, match=rf"^ALM_BEAM_LINE_BALANCE: .*{word}"):
        summarize(stats(lines, blank, written, failed))
    check_line_balance({"lines_read": 0, "blank_lines": 0, "entries_written": 0, "entries_failed": 0})


@pytest.mark.e2e
def test_a_line_lost_inside_the_pipeline_fails_the_run(tmp_path, monkeypatch):
    """A curation step that silently drops one line (a bug, simulated by
    patching the DoFn's curate_line in this in-process run): exit 1, one
    line naming the imbalance, no summary.json."""
    import alm_beam.beam.transforms as transforms

    valid = [line for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if line.strip()]
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"\n".join(valid) + b"\n\n")
    real = transforms.curate_line
    victim = valid[2]

    def dropping(raw, *args, **kwargs):
        return None if raw == victim else real(raw, *args, **kwargs)

    monkeypatch.setattr(transforms, "curate_line", dropping)
    result = run_in_process(["--input", str(manifest), "--output", str(tmp_path / "out")])
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [
        "alm_beam: error: job failed: the reader read 6 lines but 5 are accounted for "
        "(4 written + 0 rejected + 1 blank); 1 lines were lost inside the pipeline, so no "
        "summary.json was written (please report this as a bug)"
    ]
    assert read_output(tmp_path / "out").summary is None

    monkeypatch.setattr(transforms, "curate_line", real)
    result = run_in_process(["--input", str(manifest), "--output", str(tmp_path / "ok")])
    assert result.code == 0, result.stderr
    summary = read_output(tmp_path / "ok").summary
    assert (summary["lines_read"], summary["blank_lines"], summary["entries_written"]) == (6, 1, 5)
    assert orjson.loads(orjson.dumps(summary))["entries_read"] == 5


@pytest.mark.e2e
def test_an_unexpected_job_failure_is_one_line_and_commits_nothing(tmp_path, monkeypatch):
    """Any other failure of the job (a bug, an engine's error): one line naming the
    exception, exit 1, nothing committed; ALM_BEAM_DEBUG=1 keeps the traceback."""
    import alm_beam.beam.transforms as transforms

    def broken(raw, *args, **kwargs):
        raise ValueError("simulated fault\nsecond line")

    monkeypatch.setattr(transforms, "curate_line", broken)
    monkeypatch.delenv("ALM_BEAM_DEBUG", raising=False)
    out = tmp_path / "out"
    result = run_in_process(
        ["--input", str(FIXTURES / "sample_input.jsonl"), "--output", str(out), "--quiet"]
    )
    assert result.code == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"alm_beam: error: job failed: ValueError: simulated fault; nothing was committed to {out} "
        "(ALM_BEAM_DEBUG=1 shows the traceback)"
    ], result.stderr
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


@pytest.mark.e2e
def test_the_error_budget_is_checked_once_the_job_has_ended(tmp_path, monkeypatch):
    """The budget and the line balance are checked by the CLI on the staged summary,
    not inside the job (an engine would retry a failing step): the job itself
    finishes, the staged summary.json is removed, and no report.html is made."""
    import alm_beam.run as run_module

    seen = []
    real = run_module._finish_staged_result

    def spying(output, cfg):
        seen.append(sorted(p.name for p in pathlib.Path(output.staging).iterdir()))
        return real(output, cfg)

    monkeypatch.setattr(run_module, "_finish_staged_result", spying)
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes((FIXTURES / "sample_input.jsonl").read_bytes() + b"{not json\n")
    out = tmp_path / "out"
    result = run_in_process(
        ["--input", str(manifest), "--output", str(out), "--max_error_fraction", "0", "--quiet"]
    )
    assert result.code == 1
    assert result.stderr.strip().startswith("alm_beam: error: job failed: 1 of 6 lines were rejected")
    assert "summary.json" in seen[0]  # the job itself finished
    assert "report.html" not in seen[0]  # the commit step renders it, once the checks pass
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "errors-00000-of-00001.jsonl",
        "train-00000-of-00001.jsonl",
        "windows-00000-of-00001.jsonl",
    ]
