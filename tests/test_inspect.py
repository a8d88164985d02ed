"""python -m alm_beam.inspect DIR: a finished run's output, readably."""

import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES

from alm_beam.results.inspect import first_words, render_errors, render_windows

BAD_LINES = [
    b'{"audio_filepath": 1, "audio_sample_rate": 16000, "segments": []}',
    b"[1, 2]",
    b'{"audio_filepath": "/x.wav", "audio_sample_rate": 16000, "segments": []} trailing',
    b"[3]",
]


def _inspect(*args):
    return subprocess.run(
        [sys.executable, "-m", "alm_beam.inspect", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run(out, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--output", str(out), "--num_shards", "1", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _expected_windows(records, total, source):
    """The kept-windows section, written out from the documented format."""
    lines = [f"kept windows: the first {len(records)} of {total:,} ({source})"]
    for k, r in enumerate(records, 1):
        words = r["text"].split()
        more = " ..." if len(words) > 12 else ""
        count = len(r["speakers"])
        lines += [
            f"  {k}. {r['audio_filepath']}  offset {r['offset']:.2f} s  duration {r['duration']:.2f} s",
            f"     {count} speaker{'' if count == 1 else 's'} "
            f"({', '.join(r['speakers'])}), {r['num_segments']} segments",
            f'     "{" ".join(words[:12])}{more}"',
        ]
    return lines


@pytest.fixture(scope="module")
def run_with_errors(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inspect")
    manifest = tmp / "m.jsonl"
    good = (FIXTURES / "sample_input.jsonl").read_bytes().splitlines()
    manifest.write_bytes(b"\n".join(good[:2] + BAD_LINES + good[2:]) + b"\n")
    out = tmp / "out"
    _run(out, "--input", manifest)
    return manifest, out


@pytest.mark.e2e
def test_shows_summary_kept_windows_and_one_error_per_reason(run_with_errors):
    manifest, out = run_with_errors
    proc = _inspect(out, "--n", 3)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    text = proc.stdout
    summary = json.loads((out / "summary.json").read_text())

    # the run's summary, with the loss breakdown from summary.json
    assert text.startswith("alm_beam run summary\n")
    for key in ("lost_bw", "lost_sr", "lost_spk", "lost_win", "lost_no_spkr", "lost_next_seg_bm"):
        assert f"\n    {key:<17}{summary['stats'][key]:>10,}  " in text

    # the first three lines of the training manifest
    train = _jsonl(out / "train-00000-of-00001.jsonl")
    windows = "\n".join(_expected_windows(train[:3], summary["filtered_windows"], "train-*.jsonl"))
    assert "\n\n" + windows + "\n\n" in text

    # each reason once, with the first record of that reason; lines are numbered from 1
    offsets = {}
    position = 0
    for number, raw in enumerate(manifest.read_bytes().split(b"\n"), 1):
        offsets[number] = position
        position += len(raw) + 1
    details = {
        e["reason"]: e["detail"]
        for e in _jsonl(out / "errors-00000-of-00001.jsonl")
        if e["line"] in (3, 4, 5)
    }
    assert summary["errors_by_reason"] == {
        "wrong_type:audio_filepath": 1,
        "not_an_object": 2,
        "invalid_json": 1,
    }
    expected = ["rejected lines: one example per reason"]
    for reason, count in summary["errors_by_reason"].items():
        number = {"wrong_type:audio_filepath": 3, "not_an_object": 4, "invalid_json": 5}[reason]
        raw = BAD_LINES[number - 3].decode()
        expected += [
            f"  {reason}  ({count} line{'s' if count > 1 else ''})",
            f"     {manifest} line {number}, byte {offsets[number]}",
            f"     detail: {details[reason]}",
            f"     raw: {raw[:100]!r}{' (cut)' if len(raw) > 100 else ''}",
        ]
    assert text.endswith("\n\n" + "\n".join(expected) + "\n")


@pytest.mark.e2e
def test_without_training_output_reads_filtered_windows(tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_bytes((FIXTURES / "sample_input.jsonl").read_bytes().splitlines()[0] + b"\n")
    _run(tmp_path / "on", "--input", one)
    _run(tmp_path / "off", "--input", one, "--set", "output.training_manifest=false")
    on, off = _inspect(tmp_path / "on", "--n", 4), _inspect(tmp_path / "off", "--n", 4)
    assert on.returncode == off.returncode == 0
    train = _jsonl(tmp_path / "on" / "train-00000-of-00001.jsonl")
    total = len(train)
    assert "\n".join(_expected_windows(train[:4], total, "train-*.jsonl")) in on.stdout
    assert "\n".join(_expected_windows(train[:4], total, "filtered_windows of windows-*.jsonl")) in off.stdout
    assert on.stdout.endswith("\n\nrejected lines: none\n")
    assert _inspect(tmp_path / "on", "--n", 0).stdout.count("offset") == 0


@pytest.mark.e2e
def test_directories_that_are_no_finished_run_are_one_line_errors(tmp_path, run_with_errors):
    _, out = run_with_errors
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for name in os.listdir(out):
        if name != "summary.json":
            (incomplete / name).write_bytes((out / name).read_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text("{not json")
    cases = {
        tmp_path / "missing": f"{tmp_path / 'missing'}: no such directory; pass the --output "
        "directory of a finished run",
        empty: f"{empty} is not an alm_beam output directory (no summary.json and no "
        "windows-*, errors-* or train-* shards there); pass the --output directory "
        "of a finished run",
        incomplete: f"{incomplete} has no summary.json: that run did not finish (it was "
        "killed or failed), so its output is incomplete; rerun it with --overwrite",
    }
    cases[foreign] = cases[empty].replace(str(empty), str(foreign))
    for directory, message in cases.items():
        proc = _inspect(directory)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"alm_beam: error: {message}\n"), (
            directory
        )
    proc = _inspect(bad)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"alm_beam: error: {bad / 'summary.json'}: not valid JSON")
    assert proc.stderr.count("\n") == 1


def test_render_helpers_without_a_run():
    assert first_words("a b c", 2) == '"a b ..."'
    assert first_words("a b", 2) == '"a b"'
    window = {
        "audio_filepath": "/a.wav",
        "offset": 1.0,
        "duration": 110.256,
        "speakers": ["s"],
        "num_segments": 2,
        "text": "",
    }
    assert render_windows([window], 1, "train-*.jsonl") == [
        "kept windows: the first 1 of 1 (train-*.jsonl)",
        "  1. /a.wav  offset 1.00 s  duration 110.26 s",
        "     1 speaker (s), 2 segments",
        '     ""',
    ]
    assert render_windows([], 0, "") == ["kept windows: none to show (windows kept: 0)"]
    record = {
        "manifest_filepath": "/m.jsonl",
        "line": None,
        "byte_offset": 9,
        "detail": "d",
        "raw": "x" * 150,
        "raw_truncated": False,
    }
    assert render_errors({"too_deep": 2}, {"too_deep": record}) == [
        "rejected lines: one example per reason",
        "  too_deep  (2 lines)",
        "     /m.jsonl line ?, byte 9",
        "     detail: d",
        f"     raw: {'x' * 100!r} (cut)",
    ]
    assert render_errors({}, {}) == ["rejected lines: none"]
