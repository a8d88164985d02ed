"""Issue 10, items 6 and 7 through the real entry point (`python -m alm_beam.run`).

A FIFO in an input directory used to hang the run, an output directory inside
the input was read back, a name with ``[`` was "no manifest", a symlinked
duplicate was read twice, and a 128-bit integer came out as a float.
"""

import glob
import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES

pytestmark = pytest.mark.e2e

SAMPLE = FIXTURES / "sample_input.jsonl"


def _run(args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "alm_beam.run", "--num_shards", "1"] + args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _rows(out_dir, prefix="windows"):
    rows = []
    for path in sorted(glob.glob(os.path.join(out_dir, prefix + "-*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            rows += [line for line in fh if line.strip()]
    return rows


def _sample_lines():
    return [line for line in SAMPLE.read_text().splitlines() if line.strip()]


def test_fifo_in_input_directory_is_skipped_and_listed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "m.jsonl").write_text(SAMPLE.read_text())
    os.mkfifo(data / "stream.jsonl")
    # before: the reader opened the FIFO and waited for a writer forever
    proc = _run(["--input", str(data), "--output", str(tmp_path / "out")], tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("alm_beam: warning:")]
    assert warnings == [
        f"alm_beam: warning: 1 input path(s) not read (listed in summary.json "
        f"skipped_inputs), e.g. {data / 'stream.jsonl'}: not a regular file: "
        "a FIFO (named pipe)"
    ]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped_inputs"] == [
        {"path": str(data / "stream.jsonl"), "reason": "not a regular file: a FIFO (named pipe)"}
    ]
    assert summary["inputs"] == [str(data / "m.jsonl")]
    assert summary["entries_read"] == len(_sample_lines()) == 5


def test_fifo_named_as_input_is_exit_2_with_one_line(tmp_path):
    os.mkfifo(tmp_path / "pipe.jsonl")
    proc = _run(
        ["--input", str(tmp_path / "pipe.jsonl"), "--output", str(tmp_path / "out")], tmp_path, timeout=240
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"alm_beam: error: --input {str(tmp_path / 'pipe.jsonl')!r}: not a regular file: "
        "a FIFO (named pipe); alm_beam reads only regular files"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("output", ["data/out", "data"])
def test_output_inside_input_is_refused_before_the_pipeline(tmp_path, output):
    data = tmp_path / "data"
    data.mkdir()
    (data / "m.jsonl").write_text(SAMPLE.read_text())
    proc = _run(["--input", str(data), "--output", str(tmp_path / output)], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"alm_beam: error: --output {str(tmp_path / output)!r} is inside --input directory "
        f"{str(data)!r}: a later run would read the output back as input; choose an output "
        "directory outside it"
    ]
    assert sorted(os.listdir(data)) == ["m.jsonl"]


def test_output_inside_input_with_overwrite_keeps_the_previous_result(tmp_path):
    """Before: the second run read data/out's windows as input, and with
    --overwrite deleted the first result while reading it, producing none."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "m.jsonl").write_text(SAMPLE.read_text())
    out = data / "out"
    out.mkdir()
    first = _run(["--input", str(data / "m.jsonl"), "--output", str(out)], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p: open(p, "rb").read() for p in glob.glob(str(out / "*"))}
    again = _run(["--input", str(data), "--output", str(out), "--overwrite"], tmp_path)
    assert again.returncode == 2 and "is inside --input directory" in again.stderr
    assert {p: open(p, "rb").read() for p in glob.glob(str(out / "*"))} == before


def test_file_name_with_brackets_is_read(tmp_path):
    name = tmp_path / "batch[1].jsonl"
    name.write_text(SAMPLE.read_text())
    (tmp_path / "batch1.jsonl").write_text(_sample_lines()[0] + "\n")
    proc = _run(["--input", str(name), "--output", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in _rows(tmp_path / "out")]
    assert len(rows) == 5
    assert {row["manifest_filepath"] for row in rows} == {str(name)}


def test_symlinked_duplicate_is_read_once(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "m-2024.jsonl").write_text(SAMPLE.read_text())
    os.symlink("m-2024.jsonl", data / "latest.jsonl")
    os.symlink(".", data / "loop")
    proc = _run(
        ["--input", str(data), "--input", str(data / "m-2024.jsonl"), "--output", str(tmp_path / "out")],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["entries_read"] == 5 and summary["entries_written"] == 5
    assert summary["inputs"] == [str(data / "latest.jsonl")]
    assert len(_rows(tmp_path / "out")) == 5


def test_big_integer_passes_through_the_pipeline_exactly(tmp_path):
    big = 2**128 - 1
    entry = json.loads(_sample_lines()[0])
    entry["request_id"] = big
    entry["segments"][0]["token"] = -big
    (tmp_path / "m.jsonl").write_text(json.dumps(entry) + "\n")
    proc = _run(["--input", str(tmp_path / "m.jsonl"), "--output", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = _rows(tmp_path / "out")
    row = json.loads(line)
    assert row["request_id"] == big and type(row["request_id"]) is int
    assert f'"request_id":{big}' in line
    assert "3.402823669209385e" not in line
