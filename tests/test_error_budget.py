"""The optional error budget (--max_error_fraction) through the real entry point.

Over budget the job fails (exit 1) with one line naming the fraction and the
flag, and no summary.json exists (it is the success marker). At or under the
budget the run succeeds. Without a budget a run with rejected lines succeeds
and its printed summary carries a WARNING line.
"""

from __future__ import annotations

import json

import pytest
from bad_inputs.corpus import bad_lines, read_output, run_in_process, run_subprocess
from conftest import FIXTURES

from alm_beam.io.output_dir import RECORD_NAME
from alm_beam.results.summary import ErrorBudgetExceeded, check_error_budget

WARNING = "WARNING: 2 input lines were rejected"


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """6 valid fixture lines and 2 bad ones (25% rejected), and a clean manifest."""
    valid = [line for line in (FIXTURES / "sample_input.jsonl").read_bytes().splitlines() if line.strip()]
    bad = {b.name: b.raw for b in bad_lines(valid)}
    root = tmp_path_factory.mktemp("budget")
    mixed = root / "mixed.jsonl"
    mixed.write_bytes(b"\n".join(valid + [bad["segment_end_null"], valid[0], bad["cut_mid_object"]]) + b"\n")
    clean = root / "clean.jsonl"
    clean.write_bytes(b"\n".join(valid) + b"\n")
    return {"mixed": str(mixed), "clean": str(clean)}


@pytest.mark.e2e
def test_over_budget_fails_with_one_line_and_no_summary(manifests, tmp_path):
    out = tmp_path / "out"
    result = run_subprocess(
        # --quiet: on a loaded machine the run can last long enough for a progress line
        ["--input", manifests["mixed"], "--output", str(out), "--max_error_fraction", "0.1", "--quiet"]
    )
    assert result.code == 1, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("alm_beam:")]
    assert len(ours) == 1, result.stderr
    message = ours[0]
    assert message.startswith("alm_beam: error: job failed: 2 of 8 lines were rejected (25.00%)")
    assert "--max_error_fraction=0.1" in message
    assert "alm_beam run summary" not in result.stdout
    written = read_output(out)
    assert written.summary is None and "summary.json" not in written.names
    # The shards are there to read the rejected lines, and the run record marks the run
    # as failed (and makes them alm_beam's own, so --overwrite can clean them).
    assert written.names == [
        "errors-00000-of-00001.jsonl",
        "train-00000-of-00001.jsonl",
        "windows-00000-of-00001.jsonl",
    ]
    assert len(written.errors) == 2 and len(written.windows) == 6
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["state"] == "failed" and sorted(record["files"]) == written.names
    assert sorted(p.name for p in out.iterdir()) == [RECORD_NAME] + written.names


@pytest.mark.e2e
def test_over_budget_stderr_is_only_the_one_line(manifests, tmp_path):
    result = run_subprocess(
        ["--input", manifests["mixed"], "--output", str(tmp_path / "o"), "--max_error_fraction", "0.1"]
    )
    assert result.code == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("for each line and its reason")


@pytest.mark.e2e
def test_over_budget_in_process_returns_1(manifests, tmp_path):
    result = run_in_process(
        ["--input", manifests["mixed"], "--output", str(tmp_path / "o"), "--max_error_fraction", "0.2499"]
    )
    assert result.code == 1
    assert "more than --max_error_fraction=0.2499" in result.stderr
    assert not (tmp_path / "o" / "summary.json").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("budget", ["0.25", "0.3", "1"])
def test_at_or_under_budget_succeeds_without_warning(manifests, tmp_path, budget):
    result = run_in_process(
        ["--input", manifests["mixed"], "--output", str(tmp_path / "o"), "--max_error_fraction", budget]
    )
    assert result.code == 0, result.stderr
    summary = read_output(tmp_path / "o").summary
    assert summary["max_error_fraction"] == float(budget)
    assert (summary["entries_read"], summary["entries_failed"]) == (8, 2)
    assert "rejected lines by reason:" in result.stdout
    assert "WARNING" not in result.stdout


@pytest.mark.e2e
def test_no_budget_warns_in_printed_summary(manifests, tmp_path):
    result = run_in_process(["--input", manifests["mixed"], "--output", str(tmp_path / "o")])
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and WARNING in warnings[0], result.stdout
    assert "--max_error_fraction" in warnings[0]
    summary = read_output(tmp_path / "o").summary
    assert summary["max_error_fraction"] is None
    assert summary["errors_by_reason"] == {"invalid_json": 1, "wrong_type:segments[].end": 1}


@pytest.mark.e2e
@pytest.mark.parametrize("budget", [None, "0"])
def test_clean_input_no_warning_and_zero_budget_passes(manifests, tmp_path, budget):
    args = ["--input", manifests["clean"], "--output", str(tmp_path / "o")]
    if budget is not None:
        args += ["--max_error_fraction", budget]
    result = run_in_process(args)
    assert result.code == 0, result.stderr
    assert "WARNING" not in result.stdout
    assert "rejected lines by reason" not in result.stdout
    assert read_output(tmp_path / "o").summary["entries_failed"] == 0


@pytest.mark.e2e
@pytest.mark.parametrize("budget", ["1.5", "-0.1", "nan"])
def test_invalid_budget_is_a_usage_error(manifests, tmp_path, budget):
    result = run_in_process(
        ["--input", manifests["clean"], "--output", str(tmp_path / "o"), f"--max_error_fraction={budget}"]
    )
    assert result.code == 2
    assert "max_error_fraction" in result.stderr
    assert not (tmp_path / "o").exists()


def test_check_error_budget_boundaries():
    check_error_budget({"entries_read": 0, "entries_failed": 0}, 0.0)
    check_error_budget({"entries_read": 4, "entries_failed": 1}, 0.25)
    check_error_budget({"entries_read": 4, "entries_failed": 4}, None)
    with pytest.raises(ErrorBudgetExceeded, match=r"1 of 4 lines .*25\.00%.*--max_error_fraction=0\.2"):
        check_error_budget({"entries_read": 4, "entries_failed": 1}, 0.2)
    with pytest.raises(ErrorBudgetExceeded):
        check_error_budget({"entries_read": 10**6, "entries_failed": 1}, 0.0)
