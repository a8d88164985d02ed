"""Issue 19 items 5 and 6: vanishing, unreadable and oddly named inputs lose
nothing else; one real file is read once, named the same whatever the order.

An unreadable local file is found before the pipeline (exit 2, one line); a
file that vanishes or turns unreadable once the job runs is one
``unreadable_file`` error record and every other file is processed. Names
that are not UTF-8 are read and reported escaped. ``--config`` is a regular
file of bounded size.
"""

import json
import os
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from conftest import FIXTURES

from alm_beam import run
from alm_beam.beam.transforms import _ReadRangeFn
from alm_beam.core.stats import ReadCount
from alm_beam.io import discovery
from alm_beam.io.discovery import ReadRange, find_inputs

SAMPLE = FIXTURES / "sample_input.jsonl"
SAMPLE_LINES = 5
# A regular file (to stat) that nobody may read, root included: /proc/sys
# files of mode 0200 refuse a read open even to uid 0.
UNREADABLE = "/proc/sys/vm/compact_memory"
needs_unreadable = pytest.mark.skipif(
    not os.path.exists(UNREADABLE) or os.access(UNREADABLE, os.R_OK), reason=f"needs {UNREADABLE}"
)
LATIN1_NAME = b"caf\xe9.jsonl"


def _records(out, prefix):
    rows = []
    for name in sorted(os.listdir(out)):
        if name.startswith(prefix + "-"):
            with open(os.path.join(out, name), encoding="utf-8") as fh:
                rows += [json.loads(x) for x in fh if x.strip()]
    return rows


def _main(args, capsys):
    code = run.main(["--num_shards", "1", "--quiet"] + [str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- item 6: one real file, read once --------------------------------------


def test_hard_link_is_one_file_named_by_its_smallest_path(tmp_path):
    (tmp_path / "b.jsonl").write_bytes(SAMPLE.read_bytes())
    os.link(tmp_path / "b.jsonl", tmp_path / "a.jsonl")
    forward = find_inputs([str(tmp_path / "b.jsonl"), str(tmp_path / "a.jsonl")]).files
    backward = find_inputs([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]).files
    in_dir = find_inputs([str(tmp_path)]).files
    assert [f.path for f in forward] == [str(tmp_path / "a.jsonl")]
    assert forward == backward == in_dir


def test_symbolic_link_names_do_not_depend_on_the_input_order(tmp_path):
    (tmp_path / "real.jsonl").write_bytes(SAMPLE.read_bytes())
    os.symlink(tmp_path / "real.jsonl", tmp_path / "link.jsonl")
    one = find_inputs([str(tmp_path / "real.jsonl"), str(tmp_path / "link.jsonl")]).files
    two = find_inputs([str(tmp_path / "link.jsonl"), str(tmp_path / "real.jsonl")]).files
    assert [f.path for f in one] == [f.path for f in two] == [str(tmp_path / "link.jsonl")]


# --- item 5: unreadable before the pipeline --------------------------------


@needs_unreadable
def test_unreadable_input_file_is_one_line_before_the_pipeline(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_bytes(SAMPLE.read_bytes())
    os.symlink(UNREADABLE, data / "locked.jsonl")
    for given in (data / "locked.jsonl", data):
        code, _, err = _main(["--input", given, "--output", tmp_path / "out"], capsys)
        assert code == 2
        assert err.splitlines() == [
            f"alm_beam: error: --input {str(given)!r}: {data / 'locked.jsonl'} cannot be read: "
            "Permission denied"
        ]
        assert not (tmp_path / "out").exists()


# --- item 5: vanishing and turning unreadable while the job runs -----------


def test_read_step_turns_a_vanished_file_into_one_record(tmp_path):
    gone = str(tmp_path / "gone.jsonl")
    with beam.Pipeline() as p:
        read = (
            p
            | beam.Create([ReadRange(gone, 0, -1, False), ReadRange(gone + ".gz", 0, -1, True)])
            | beam.ParDo(_ReadRangeFn()).with_outputs("read_counts", main="lines")
        )
        assert_that(
            read.lines | beam.Map(lambda m: (m.source, m.line, m.offset, m.problem.code, m.problem.size)),
            equal_to([(gone, None, 0, "unreadable_file", 0), (gone + ".gz", None, 0, "unreadable_file", 0)]),
            label="lines",
        )
        assert_that(read.read_counts, equal_to([ReadCount(1, 0), ReadCount(1, 0)]), label="counts")


class _FailingAfter:
    """A file whose reads fail with EIO once ``good`` bytes were handed out."""

    def __init__(self, data: bytes, good: int):
        self._data, self._good, self._at = data, good, 0

    def read(self, n=-1):
        if self._at >= self._good:
            raise OSError(5, "Input/output error")
        out = self._data[self._at : min(self._good, self._at + n)]
        self._at += len(out)
        return out

    def tell(self):
        return self._at

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_read_step_turns_an_io_error_mid_file_into_one_record_after_the_good_lines(monkeypatch):
    from alm_beam.beam import transforms

    data = SAMPLE.read_bytes()
    two = len(b"".join(data.splitlines(keepends=True)[:2]))
    monkeypatch.setattr(
        transforms, "_open_manifest", lambda path, compressed: (_FailingAfter(data, two + 10),) * 2
    )
    out = list(_ReadRangeFn().process(ReadRange("/m.jsonl", 0, -1, False)))
    lines = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
    counts = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput)]
    assert [(m.line, m.offset, m.problem) for m in lines[:2]] == [
        (1, 0, None),
        (2, data.index(b"\n") + 1, None),
    ]
    assert (lines[2].line, lines[2].offset, lines[2].problem.code) == (3, two, "unreadable_file")
    assert "Input/output error" in lines[2].problem.detail
    assert len(lines) == 3 and counts == [ReadCount(3, 0)]


@pytest.mark.e2e
def test_files_vanishing_after_planning_lose_nothing_else(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        (data / name).write_bytes(SAMPLE.read_bytes())
    real_find = discovery.find_inputs

    def find_then_lose(*args, **kwargs):
        found = real_find(*args, **kwargs)
        os.unlink(data / "a.jsonl")  # deleted after planning
        if os.path.exists(UNREADABLE) and not os.access(UNREADABLE, os.R_OK):
            os.unlink(data / "c.jsonl")
            os.symlink(UNREADABLE, data / "c.jsonl")  # unreadable once the job runs
        return found

    monkeypatch.setattr(discovery, "find_inputs", find_then_lose)
    out = tmp_path / "out"
    code, printed, err = _main(["--input", data, "--output", out], capsys)
    assert code == 0, err
    errors = _records(out, "errors")
    lost = [str(data / "a.jsonl")] + ([str(data / "c.jsonl")] if os.path.islink(data / "c.jsonl") else [])
    assert sorted(e["manifest_filepath"] for e in errors) == lost
    assert {e["reason"] for e in errors} == {"unreadable_file"}
    assert "could not be opened" in errors[0]["detail"] and "No such file" in errors[0]["detail"]
    summary = json.loads((out / "summary.json").read_text())  # the line balance held
    good = 3 - len(lost)
    assert summary["entries_written"] == good * SAMPLE_LINES
    assert summary["entries_failed"] == len(lost)
    assert summary["lines_read"] == good * SAMPLE_LINES + len(lost)
    assert "alm_beam run summary" in printed


# --- item 5: names that are not UTF-8 ---------------------------------------


@pytest.mark.e2e
def test_non_utf8_file_name_among_good_files_is_read_and_shown_escaped(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_bytes(SAMPLE.read_bytes())
    odd = os.path.join(os.fsencode(data), LATIN1_NAME)
    with open(odd, "wb") as fh:
        fh.write(SAMPLE.read_bytes())
    os.link(odd, data / "zz-link.jsonl")  # the same file: read once
    out = tmp_path / "out"
    code, _, err = _main(["--input", data, "--output", out], capsys)
    assert code == 0, err
    entries = _records(out, "windows")
    shown = str(data) + "/caf\\xe9.jsonl"
    assert sorted({e["manifest_filepath"] for e in entries}) == sorted([str(data / "good.jsonl"), shown])
    assert len(entries) == 2 * SAMPLE_LINES
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["inputs"]) == sorted([str(data / "good.jsonl"), shown])


def test_non_utf8_output_is_one_line(tmp_path, capsys):
    out = os.path.join(os.fsencode(tmp_path), b"out\xe9").decode("utf-8", "surrogateescape")
    code, _, err = _main(["--input", SAMPLE, "--output", out], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("alm_beam: error: output.path=") and "not UTF-8" in err
    assert os.listdir(tmp_path) == []


# --- item 5: --config is a regular file of bounded size ---------------------


def _cli(args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "alm_beam.run"] + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_config_dev_zero_is_one_line(tmp_path):
    proc = _cli(["--config", "/dev/zero", "--input", SAMPLE, "--output", tmp_path / "o"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "alm_beam: error: --config /dev/zero: not a regular file: a character device"
    ]


def test_config_fifo_is_one_line_and_does_not_wait(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")
    proc = _cli(["--config", tmp_path / "c.yaml", "--input", SAMPLE, "--output", tmp_path / "o"], timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"alm_beam: error: --config {tmp_path / 'c.yaml'}: not a regular file: a FIFO (named pipe)"
    ]


def test_config_too_big_is_one_line(tmp_path):
    from alm_beam.config import MAX_CONFIG_BYTES, ConfigError, load_yaml

    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError) as err:
        load_yaml(str(big))
    assert str(err.value) == (
        f"--config {big}: {MAX_CONFIG_BYTES + 1:,} bytes, more than a config may hold "
        f"({MAX_CONFIG_BYTES:,} bytes)"
    )
    (tmp_path / "ok.yaml").write_bytes(b"#" * MAX_CONFIG_BYTES)
    assert load_yaml(str(tmp_path / "ok.yaml")) == {}
