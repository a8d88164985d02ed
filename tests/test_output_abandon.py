"""A failed run's staging area is removed even while a lost job still writes
into it (issue 20's runner tests found the race).

When a job service goes away mid-run, the CLI abandons the staging area at
once, but the job's SDK workers (of a portable deployment, say) may still be
finishing a shard in it: ``rmtree`` then fails with ENOTEMPTY, and the user saw
a traceback instead of the one-line answer. The removal now outlasts such a
writer for a few seconds; if the tree still is not empty, the run record stays,
naming the staging area, so the next ``--overwrite`` removes it.
"""

from __future__ import annotations

import errno
import json
import shutil

from alm_beam.io import output_dir


def _staged_run(tmp_path):
    out = str(tmp_path / "out")
    run = output_dir.OutputRun.start(out, False)
    with open(f"{run.staging}/windows-00000-of-00001.jsonl", "w") as fh:
        fh.write("{}\n")
    return out, run


def _rmtree_not_empty_for(times, monkeypatch):
    """shutil.rmtree failing with ENOTEMPTY ``times`` times first, as when a
    writer adds a file between rmtree's listing and its rmdir."""
    real = shutil.rmtree
    calls = {"n": 0}

    def flaky(path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= times:
            raise OSError(errno.ENOTEMPTY, "Directory not empty", path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", flaky)
    return calls


def test_abandon_outlasts_a_writer_still_finishing_in_the_staging_area(tmp_path, monkeypatch):
    out, run = _staged_run(tmp_path)
    calls = _rmtree_not_empty_for(2, monkeypatch)
    run.abandon()  # raised OSError (ENOTEMPTY) before
    assert calls["n"] == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".alm_beam.lock"]
    run.release()
    assert list((tmp_path / "out").iterdir()) == []


def test_a_staging_area_that_stays_busy_is_left_recorded_and_overwrite_removes_it(tmp_path, monkeypatch):
    out, run = _staged_run(tmp_path)
    monkeypatch.setattr(output_dir, "SETTLE_S", 0.3)
    _rmtree_not_empty_for(10**6, monkeypatch)
    run.abandon()  # no exception: the record keeps the staging area ours
    monkeypatch.undo()
    run.release()
    record = json.loads((tmp_path / "out" / ".alm_beam-run.json").read_text())
    assert record["state"] == "failed" and record["staging"] == run.staging_name
    assert (tmp_path / "out" / run.staging_name).is_dir()

    again = output_dir.OutputRun.start(out, True)  # --overwrite: ours, removed
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert run.staging_name not in names
    assert names == sorted([".alm_beam.lock", ".alm_beam-run.json", again.staging_name])
    again.abandon()
    again.release()
