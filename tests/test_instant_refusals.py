"""Refusals that need no Beam answer without importing it (issue 20, item 3).

Importing apache_beam takes seconds; a misspelled flag of alm_beam's own, a bad
config value, a missing local input, an unwritable output or a non-empty one
without --overwrite is refused before that. Each case runs
``alm_beam.run.main`` in a fresh interpreter and reports whether apache_beam
was imported; no timing is asserted (docs/performance.md
has the measured times).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alm_beam.execution.beam_flags import beam_option_parser, near_miss_of
from alm_beam.run import build_arg_parser, own_option_strings

# main() in a fresh interpreter: its exit status, its stderr, and whether Beam got imported.
PROBE = """
import contextlib, io, json, sys
WATCHED = WATCHED_NAMES
from alm_beam import run
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = run.main(sys.argv[1:])
loaded = [m for m in WATCHED if m in sys.modules]
beam = "apache_beam" in sys.modules
print(json.dumps({"code": code, "stderr": err.getvalue(), "beam": beam, "loaded": loaded}))
"""
# What only a run (or a config) needs; a refusal answers without importing it.
WATCHED = ("yaml", "alm_beam.execution.direct_workers", "alm_beam.execution.runners", "alm_beam.io.run_temp")

UNRECOGNIZED = (
    "alm_beam: error: unrecognized option(s): {} (neither an alm_beam option nor a "
    "Beam pipeline option; see --help)"
)


def probe(args, cwd):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.replace("WATCHED_NAMES", repr(WATCHED)), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args,line",
    [
        (["--inptu", "m.jsonl"], UNRECOGNIZED.format("--inptu")),
        (["--outptu", "x"], UNRECOGNIZED.format("--outptu")),
        (["--overwite"], UNRECOGNIZED.format("--overwite")),
        (["--compcat", "--quite"], UNRECOGNIZED.format("--compcat, --quite")),
        (
            ["--set", "builder.tolerance=5"],
            "alm_beam: error: builder.tolerance=5: out of range; allowed: 0 <= tolerance < 1",
        ),
        (
            ["--input", "missing.jsonl"],
            "alm_beam: error: --input 'missing.jsonl': no such file or directory",
        ),
        (
            ["--input", "m.jsonl", "--output", "/proc/alm_beam_out"],
            "alm_beam: error: --output /proc/alm_beam_out: cannot write there (in /proc, where it "
            "would be created): No such file or directory; choose a writable --output",
        ),
        (
            ["--input", "m.jsonl", "--output", "out", "b.jsonl"],
            "alm_beam: error: unexpected argument(s): 'b.jsonl'; give several inputs after one "
            "--input (--input a.jsonl b.jsonl) and quote a glob (--input 'dir/*.jsonl')",
        ),
    ],
    ids=["own-flag", "own-flag-2", "own-switch", "two-own-flags", "config", "input", "output", "stray"],
)
def test_refusals_that_need_no_beam_do_not_import_it(tmp_path, args, line):
    (tmp_path / "m.jsonl").write_bytes(b"{}\n")
    result = probe(args, tmp_path)
    assert (result["code"], result["stderr"].splitlines()) == (2, [line])
    assert result["beam"] is False
    # PyYAML for a --set value only; the worker pool, the runners, the run's temp root never
    assert result["loaded"] == (["yaml"] if "--set" in args else [])
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("previous_run", [False, True], ids=["foreign-files", "previous-run"])
def test_a_non_empty_output_directory_is_refused_without_beam(tmp_path, previous_run):
    """The refusal, word for word the one given under the directory's lock
    (``output_dir.prepare_output_dir``), before Beam is imported."""
    (tmp_path / "m.jsonl").write_bytes(b"{}\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    state = ""
    if previous_run:
        record = {"tool": "alm_beam", "format": 1, "state": "committed", "staging": None}
        record["files"] = ["notes.txt"]
        (out / ".alm_beam-run.json").write_text(json.dumps(record))
        state = "; it holds a previous alm_beam run's output"
    names = ".alm_beam-run.json, notes.txt" if previous_run else "notes.txt"
    count = 2 if previous_run else 1
    result = probe(["--input", "m.jsonl", "--output", "out"], tmp_path)
    line = (
        f"alm_beam: error: --output out: directory is not empty ({count} entries: {names}){state}; "
        "pass --overwrite to replace a previous alm_beam run's output there, or choose another --output"
    )
    assert (result["code"], result["stderr"].splitlines()) == (2, [line])
    assert result["beam"] is False and result["loaded"] == []
    assert sorted(p.name for p in out.iterdir()) == sorted(names.split(", "))


def test_the_early_and_the_locked_refusal_say_the_same(tmp_path):
    from alm_beam.io.output_dir import OutputDirError, prepare_output_dir
    from alm_beam.io.preflight import PreflightError, preflight_not_empty

    (tmp_path / "a.txt").write_text("x")
    (tmp_path / ".alm_beam-run.json").write_text("")  # a run killed before writing its record
    with pytest.raises(PreflightError) as early:
        preflight_not_empty(str(tmp_path), overwrite=False)
    with pytest.raises(OutputDirError) as locked:
        prepare_output_dir(str(tmp_path), overwrite=False)
    assert str(early.value) == str(locked.value)
    assert "did not finish" in str(early.value)
    preflight_not_empty(str(tmp_path), overwrite=True)  # --overwrite: left to the locked check
    (tmp_path / ".alm_beam.lock").write_text("")
    preflight_not_empty(str(tmp_path), overwrite=False)  # a lock: left to the locked check


@pytest.mark.e2e
def test_a_beam_flag_is_still_checked_by_beam(tmp_path):
    """The probe does see Beam's import: a misspelled Beam flag needs Beam's parser."""
    result = probe(["--runer=FlinkRunner", "--output", "out"], tmp_path)
    assert (result["code"], result["stderr"].splitlines()) == (2, [UNRECOGNIZED.format("--runer")])
    assert result["beam"] is True


def test_no_beam_option_is_taken_for_a_misspelling_of_ours():
    """Every option Beam's parser knows passes the instant check (Beam does not
    accept abbreviations, so whole names are all there is to check)."""
    ours = own_option_strings(build_arg_parser())
    beam = [name for name in beam_option_parser()._option_string_actions if name not in ours]
    assert len(beam) > 100
    assert [name for name in beam if near_miss_of(name, ours)] == []


def test_near_misses_of_our_own_flags():
    ours = own_option_strings(build_arg_parser())
    assert near_miss_of("--inptu", ours) == "--input"
    assert near_miss_of("--ouptut", ours) == "--output"
    assert near_miss_of("--max_eror_fraction", ours) == "--max_error_fraction"
    assert near_miss_of("--runer", ours) is None  # Beam's --runner, misspelled: Beam's to judge
    assert near_miss_of("--direct_num_workers", ours) is None
