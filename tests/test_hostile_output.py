"""Never write through a link (issue 19): a symbolic link where alm_beam would
create or replace a file in an output directory is refused in one line (exit 2),
and nothing outside the directory changes.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import FIXTURES
from run_control import start_run

from alm_beam.io.output_dir import LOCK_NAME, RECORD_NAME, STAGING_PREFIX

pytestmark = pytest.mark.e2e

VICTIM_TEXT = "a file outside the output directory; no run may touch it\n"


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--num_shards", "1", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("alm_beam: error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.fixture
def victim(tmp_path):
    """A file outside every output directory, and where a dangling link points."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def _assert_outside_untouched(victim):
    assert victim.read_text() == VICTIM_TEXT
    assert sorted(os.listdir(victim.parent)) == ["victim.txt"]  # a dangling link created nothing


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path, victim, dangling, overwrite):
    out = tmp_path / "out"
    out.mkdir()
    target = victim.parent / "would-be-created.txt" if dangling else victim
    (out / LOCK_NAME).symlink_to(target)
    proc = _run("--input", FIXTURES / "sample_input.jsonl", "--output", out, *(["--overwrite"] * overwrite))
    line = _one_error_line(proc)
    assert f"{LOCK_NAME} is a symbolic link" in line, line
    _assert_outside_untouched(victim)
    assert os.listdir(out) == [LOCK_NAME] and os.path.islink(out / LOCK_NAME)


def test_a_symlinked_run_record_is_not_ours(tmp_path, victim):
    """A link named like our record, to a record naming summary.json: with
    --overwrite nothing is deleted (a record is ours only as a file we made)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}\n")
    record = {
        "tool": "alm_beam",
        "format": 1,
        "state": "committed",
        "staging": None,
        "files": ["summary.json"],
    }
    victim.write_text(json.dumps(record))
    (out / RECORD_NAME).symlink_to(victim)
    line = _one_error_line(_run("--input", FIXTURES / "sample_input.jsonl", "--output", out, "--overwrite"))
    assert RECORD_NAME in line, line
    assert sorted(os.listdir(out)) == [RECORD_NAME, "summary.json"]
    assert json.loads(victim.read_text()) == record


def test_links_planted_in_the_staging_area_during_a_run_are_not_followed(tmp_path, victim):
    """Another process plants links in the staging area while the run works
    (where the run record's new version and summary.json are written): the
    run finishes, and the links' targets are untouched."""
    out = tmp_path / "out"
    args = ["--input", FIXTURES / "sample_input.jsonl", "--output", out, "--num_shards", "1"]
    with start_run(args, pause_at="started", marker_dir=tmp_path) as run:
        run.wait_paused()
        [staging] = [n for n in os.listdir(out) if n.startswith(STAGING_PREFIX)]
        (out / staging / ".run-record.tmp").symlink_to(victim)
        (out / staging / "summary.json").symlink_to(victim)
        run.resume()
        code, _, err = run.finish()
    assert code == 0, err[-3000:]
    _assert_outside_untouched(victim)
    assert not any(os.path.islink(out / n) for n in os.listdir(out))
    assert json.loads((out / "summary.json").read_text())["entries_read"] == 5


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "out"
    proc = _run("--input", FIXTURES / "sample_input.jsonl", "--output", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_overwrite_refuses_a_shard_replaced_by_a_link(tmp_path, finished_run, victim):
    """A previous run's shard, recorded as ours, is now a link: --overwrite
    names it and deletes nothing (a run would write that name again)."""
    out = tmp_path / "out"
    shutil.copytree(finished_run, out, symlinks=True)
    [shard] = sorted(out.glob("windows-*.jsonl"))
    shard.unlink()
    shard.symlink_to(victim)
    before = sorted(os.listdir(out))
    line = _one_error_line(_run("--input", FIXTURES / "sample_input.jsonl", "--output", out, "--overwrite"))
    assert f"{shard.name} is a symbolic link" in line, line
    assert sorted(os.listdir(out)) == before
    _assert_outside_untouched(victim)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_report_cli_refuses_a_symlinked_report(tmp_path, finished_run, victim, dangling):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out, symlinks=True)
    (out / "report.html").unlink()
    (out / "report.html").symlink_to(victim.parent / "would-be-created.html" if dangling else victim)
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.report", str(out)], capture_output=True, text=True, timeout=300
    )
    line = _one_error_line(proc)
    assert "report.html is a symbolic link" in line, line
    _assert_outside_untouched(victim)
    assert os.path.islink(out / "report.html")


def test_report_cli_replaces_a_report_file_whole(tmp_path, finished_run):
    """The CLI writes a new file and renames it over the old report: a hard
    link to the old report (another name for the same file) keeps the old page."""
    out = tmp_path / "out"
    shutil.copytree(finished_run, out, symlinks=True)
    old = (out / "report.html").read_bytes()
    os.link(out / "report.html", tmp_path / "old-report.html")
    (tmp_path / "old-report.html").write_bytes(b"old page")
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.report", str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "old-report.html").read_bytes() == b"old page"
    new = (out / "report.html").read_bytes()
    assert new.startswith(b"<!DOCTYPE html>") and len(new) > 1000 and new != b"old page"
    assert not os.path.samefile(out / "report.html", tmp_path / "old-report.html")
    assert len(old) > 1000
    assert sorted(n for n in os.listdir(out) if n.startswith(".")) == [RECORD_NAME]  # no temp file left
