"""No input string controls a terminal (issue 19): every printer escapes control characters.

A manifest name, an audio path, a speaker, a transcript, an error line, an
output directory and a lock holder's host can all carry ESC, BEL, CR, C1
characters or an OSC 52 clipboard write. What alm_beam prints (the run's
warning, note and error lines, the summary table, ``python -m alm_beam.inspect``)
shows them as visible escapes instead.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import FIXTURES

# ESC ] 52 ; c ; <base64> BEL: "write 'pwned' to the clipboard"; CSI via C1; a CR
# that would rewrite the line; a bidi override that would reorder it.
OSC52 = "\x1b]52;c;cHduZWQ=\x07"
HOSTILE = OSC52 + "\x9b2J\r\x85\u202e"
HOSTILE_SHOWN = "\\x1b]52;c;cHduZWQ=\\x07\\u009b2J\\r\\u0085\\u202e"
# A character a terminal acts on: C0 except newline (which separates our own
# lines), DEL, C1, bidi controls.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _raw_controls(text: str) -> list:
    return RAW_CONTROL.findall(text)


@pytest.mark.parametrize(
    "text, shown",
    [
        ("plain/path.jsonl", "plain/path.jsonl"),
        ("caf\u00e9 \u8a9e \U0001f600 a\\b", "caf\u00e9 \u8a9e \U0001f600 a\\b"),  # left as it is
        ("\x1b[2J", "\\x1b[2J"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x00\x07\x7f", "\\x00\\x07\\x7f"),
        ("\x9b\x85\x80\x9f", "\\u009b\\u0085\\u0080\\u009f"),
        (OSC52, "\\x1b]52;c;cHduZWQ=\\x07"),
        ("a\u202eb\u2066c\u2028d", "a\\u202eb\\u2066c\\u2028d"),
        ("caf\udce9.jsonl", "caf\\xe9.jsonl"),  # os.fsdecode of a Latin-1 byte
        ("\ud800", "\\ud800"),
        (12, "12"),
    ],
)
def test_terminal_safe_escapes_exactly_the_control_characters(text, shown):
    from alm_beam.core.display import terminal_safe

    assert terminal_safe(text) == shown


def test_terminal_safe_output_is_always_printable_utf8():
    from alm_beam.core.display import terminal_safe

    every = "".join(chr(c) for c in range(0x3000)) + "".join(chr(c) for c in range(0xD800, 0xE000))
    out = terminal_safe(every)
    assert not _raw_controls(out)
    out.encode("utf-8")  # no lone surrogate left: printing cannot raise


def _hostile_manifest() -> bytes:
    """One entry from the sample with hostile strings in every field inspect
    shows, and two rejected lines with hostile raw text."""
    entry = json.loads((FIXTURES / "sample_input.jsonl").read_bytes().splitlines()[0])
    entry["audio_filepath"] = f"/a/{HOSTILE}.wav"
    for seg in entry["segments"]:
        seg["speaker"] = HOSTILE + seg["speaker"]
        seg["text"] = HOSTILE + " " + seg["text"]
    entry[HOSTILE] = "a field named by an attacker"
    return b"\n".join(
        [
            json.dumps(entry).encode("utf-8"),
            ("{" + HOSTILE + "not json").encode("utf-8"),
            json.dumps({"audio_filepath": 5, HOSTILE: 1, "segments": []}).encode("utf-8"),
        ]
    )


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A run whose input directory, manifest name, content, output directory
    and stale lock holder are all hostile; its stdout and stderr."""
    tmp = tmp_path_factory.mktemp("terminal")
    inputs = tmp / ("in" + HOSTILE)
    inputs.mkdir()
    (inputs / f"m{HOSTILE}.jsonl").write_bytes(_hostile_manifest() + b"\n")
    os.mkfifo(inputs / f"fifo{HOSTILE}.jsonl")  # skipped, with a warning naming it
    out = tmp / ("out" + HOSTILE)
    out.mkdir()
    # A lock left by a killed run on a host with a hostile name: taken over, with a note.
    stale = {"pid": 2**22 + 7, "start_ticks": 1, "host": "host" + HOSTILE, "started": "2026-01-01T00:00:00Z"}
    (out / ".alm_beam.lock").write_text(json.dumps({**stale, "run_id": "x"}))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--input",
            str(inputs),
            "--output",
            str(out),
            "--num_shards",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_run_warning_and_note_lines_show_hostile_names_escaped(hostile_run):
    _, proc = hostile_run
    assert not _raw_controls(proc.stderr), proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "alm_beam: warning:" in line]
    assert len(warning) == 1 and f"fifo{HOSTILE_SHOWN}.jsonl" in warning[0], proc.stderr
    note = [line for line in proc.stderr.splitlines() if "alm_beam: note:" in line]
    assert len(note) == 1 and f"host host{HOSTILE_SHOWN}," in note[0], proc.stderr


def test_summary_table_shows_the_output_directory_escaped(hostile_run):
    out, proc = hostile_run
    assert not _raw_controls(proc.stdout), proc.stdout
    assert f"  output: {str(out)[: -len(HOSTILE)]}{HOSTILE_SHOWN}  (" in proc.stdout


def test_summary_table_escapes_reasons_of_a_hand_made_summary(hostile_run):
    from alm_beam.results.summary import render_report

    out, _ = hostile_run
    doc = json.loads((out / "summary.json").read_text())
    doc["errors_by_reason"] = {f"reason{HOSTILE}": 3}
    table = render_report(doc, f"dir{HOSTILE}")
    assert not _raw_controls(table), table
    assert f"reason{HOSTILE_SHOWN}" in table and f"output: dir{HOSTILE_SHOWN}" in table


def test_inspect_shows_every_hostile_field_escaped(hostile_run):
    out, _ = hostile_run
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.inspect", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not _raw_controls(proc.stdout), proc.stdout
    shown = proc.stdout
    assert f"/a/{HOSTILE_SHOWN}.wav  offset" in shown  # audio_filepath
    assert f"3 speakers ({HOSTILE_SHOWN}speaker_" in shown  # speakers
    # text (its first words: CR and U+0085 are whitespace to str.split, so they part words)
    assert '     "\\x1b]52;c;cHduZWQ=\\x07\\u009b2J \\u202e ' in shown
    assert f"m{HOSTILE_SHOWN}.jsonl line 2" in shown  # the manifest's file name
    assert f"output: {str(out)[: -len(HOSTILE)]}{HOSTILE_SHOWN}" in shown


def test_inspect_error_line_for_a_hostile_directory_is_escaped(tmp_path):
    missing = tmp_path / f"gone{HOSTILE}"
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.inspect", str(missing)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert not _raw_controls(proc.stderr), proc.stderr
    assert proc.stderr.count("\n") == 1 and f"gone{HOSTILE_SHOWN}" in proc.stderr


def test_cli_error_line_for_an_input_path_with_an_escape_sequence(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--input",
            str(tmp_path / f"missing{HOSTILE}.jsonl"),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert not _raw_controls(proc.stderr), proc.stderr
    [line] = proc.stderr.splitlines()
    # discovery quotes the path as Python's repr does; escaped either way
    assert line.startswith("alm_beam: error: ") and "missing\\x1b]52;c;cHduZWQ=\\x07" in line


def test_cli_error_line_for_an_output_path_with_an_escape_sequence(tmp_path):
    """The output checks quote the path as given (discovery's --input
    messages use Python's repr, which escaped already)."""
    parent = tmp_path / f"file{HOSTILE}"
    parent.write_text("a file, not a directory\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alm_beam.run",
            "--input",
            str(FIXTURES / "sample_input.jsonl"),
            "--output",
            str(parent / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert not _raw_controls(proc.stderr), proc.stderr
    [line] = proc.stderr.splitlines()
    # (the message clips the path, folding its whitespace, CR and U+0085 included)
    assert line.startswith("alm_beam: error: --output ") and "file\\x1b]52;c;cHduZWQ=\\x07\\u009b2J" in line


def test_cli_usage_error_line_escapes_the_argument(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", f"--bogus{HOSTILE}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert not _raw_controls(proc.stderr), proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("alm_beam: error: ")
