"""A full disk mid-run: one line naming the cause and where, exit 1, no
summary.json, and the partial result removed so the space is free again.

The output directory is on a 2 MiB tmpfs mounted for the test (root only);
the bundled sample's output is about 9 MB, so its windows sink runs out of
space mid-run.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from bad_inputs.corpus import run_subprocess

SAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "alm_beam", "data", "sample_manifest.jsonl.gz")


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        # A machine capability, not a part CI can install: skipped (with the reason)
        # even under ALM_BEAM_REQUIRE_ALL=1.
        pytest.skip(
            "cannot mount a 2 MiB tmpfs here (needs root and a kernel that allows "
            "it): " + (mounted.stderr.strip() or f"exit {mounted.returncode}")
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.e2e
@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_is_one_line_exit_1_and_frees_the_space(small_disk, workers):
    out = small_disk / "out"
    extra = [] if workers == 1 else ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    result = run_subprocess(["--input", SAMPLE, "--output", str(out), "--quiet", *extra])
    assert result.code == 1, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("alm_beam:")]
    assert ours == [
        f"alm_beam: error: job failed: no space left on device ({out}: 0 bytes "
        f"free); the partial result was removed from {out}"
    ], result.stderr[-3000:]
    if workers == 1:  # (with two workers each worker logs its own traceback first)
        assert result.stderr.strip() == ours[0], result.stderr[-3000:]
    assert "alm_beam run summary" not in result.stdout
    assert os.listdir(out) == []  # no summary.json, no staging area, no lock
    st = os.statvfs(small_disk)
    assert st.f_bfree == st.f_blocks  # every block free again
