"""Generator of the bad-input corpus, and readers for what a run wrote.

The corpus is a directory of manifests that mixes the public fixture entries
(``tests/data/fixtures/sample_input.jsonl``) with every kind of broken line
alm_beam must survive, plus files that must be read correctly although they
look odd (UTF-8 BOM, CRLF line endings, gzip, bz2, Unicode line separators
inside strings, no final newline, empty and blank-only files) and files
discovery must ignore (``notes.txt``, ``data.csv``). It is generated at test
time, so no binary file is committed; for a manual run::

    python tests/bad_inputs/corpus.py /tmp/bad_corpus
    python -m alm_beam.run --input /tmp/bad_corpus --output /tmp/bad_out

``build_corpus`` returns what a correct run must produce: every valid line
with its manifest, and for every bad line its manifest, line number, byte
offset (in the decompressed stream), raw bytes, reason code and a pattern the
detail must match (the offending field, for structural errors).
"""

from __future__ import annotations

import bz2
import contextlib
import copy
import dataclasses
import gzip
import io
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Callable, Optional, Sequence

import orjson

BOM = b"\xef\xbb\xbf"
_MISSING = object()  # a field removed rather than set
NOT_JSON = r"line is not valid JSON"
NOT_UTF8 = r"line is not valid UTF-8"


@dataclasses.dataclass(frozen=True)
class BadLine:
    name: str
    raw: bytes  # the line without its line ending
    reason: str  # expected error record "reason"
    detail: str  # regex the error record "detail" must match (re.match)


@dataclasses.dataclass(frozen=True)
class ExpectedError:
    path: str
    line: int
    offset: int
    bad: BadLine


@dataclasses.dataclass
class Corpus:
    root: pathlib.Path
    manifests: list  # paths alm_beam must read
    ignored: list  # files in the input directory that are not manifests
    valid: list  # (manifest path, raw line) for every valid line
    errors: list  # ExpectedError for every bad line
    blank_lines: int

    @property
    def non_blank_lines(self) -> int:
        return len(self.valid) + len(self.errors)


def _entry_variant(base: dict, change: Callable[[dict], None]) -> bytes:
    entry = copy.deepcopy(base)
    change(entry)
    return orjson.dumps(entry)


def _set(path: tuple, value) -> Callable[[dict], None]:
    def change(entry):
        target = entry
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: tuple) -> Callable[[dict], None]:
    def change(entry):
        target = entry
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def bad_lines(valid: list) -> list:
    """Every broken line, derived from the fixture entries."""
    base = orjson.loads(valid[1])
    seg = 2  # the segment the structural errors are put into
    assert "words" not in base["segments"][seg]  # the fixture has no word timings
    out = []

    def add(name, raw, reason, detail):
        out.append(BadLine(name, raw, reason, detail))

    def field(name, path, value, reason, where):
        change = _delete(path) if value is _MISSING else _set(path, value)
        add(name, _entry_variant(base, change), reason, rf"{_re(where)}: ")

    # Not JSON at all.
    add("cut_mid_object", valid[0][: len(valid[0]) // 2], "invalid_json", NOT_JSON)
    # Blank means JSON whitespace (space, tab, CR, LF) only: other whitespace
    # is content, so these lines are errors, not silently skipped.
    add("form_feeds_only", b"\x0c\x0c", "invalid_json", NOT_JSON)
    add("vertical_tab_and_space", b" \x0b ", "invalid_json", NOT_JSON)
    add("cut_after_key", b'{"audio_filepath": ', "invalid_json", NOT_JSON)
    add("trailing_garbage", valid[1] + b" garbage", "invalid_json", NOT_JSON)
    add("two_objects_one_line", valid[2] + valid[2], "invalid_json", NOT_JSON)
    add(
        "trailing_comma",
        b'{"audio_filepath": "a", "audio_sample_rate": 16000, "segments": [],}',
        "invalid_json",
        NOT_JSON,
    )
    add("single_quotes", b"{'audio_filepath': 'a'}", "invalid_json", NOT_JSON)
    add(
        "nan",
        _replace(valid[1], b'"audio_sample_rate": 22050', b'"audio_sample_rate": NaN'),
        "invalid_json",
        NOT_JSON + r".*NaN and Infinity are not JSON numbers",
    )
    add(
        "infinity",
        _replace(valid[1], b'"end": 4.', b'"end": Infinity, "x": 4.'),
        "invalid_json",
        NOT_JSON + r".*NaN and Infinity",
    )
    add(
        "minus_infinity",
        _replace(valid[1], b'"start": 0.0', b'"start": -Infinity'),
        "invalid_json",
        NOT_JSON + r".*NaN and Infinity",
    )
    add(
        "number_overflow_1e400",
        _replace(valid[1], b'"start": 0.0', b'"start": 1e400'),
        "invalid_json",
        NOT_JSON,
    )
    # Not UTF-8.
    add("invalid_utf8_ff", _replace(valid[3], b"/data/audio/", b"/data/au\xffdio/"), "invalid_utf8", NOT_UTF8)
    add(
        "invalid_utf8_latin1_nel",
        _replace(valid[3], b"/data/audio/", b"/data/au\x85dio/"),
        "invalid_utf8",
        NOT_UTF8,
    )
    add(
        "invalid_utf8_surrogate",
        _replace(valid[3], b"/data/audio/", b"/data/au\xed\xa0\x80dio/"),
        "invalid_utf8",
        NOT_UTF8,
    )
    add("invalid_utf8_truncated_sequence", b'{"audio_filepath": "\xe2\x80"}', "invalid_utf8", NOT_UTF8)
    add("latin1_file_line", '{"audio_filepath": "café"}'.encode("latin-1"), "invalid_utf8", NOT_UTF8)
    add("bom_mid_file", BOM + valid[0], "invalid_json", NOT_JSON)
    # JSON, but not an object.
    for name, raw, kind in (
        ("array", b"[1, 2, 3]", "array"),
        ("empty_array", b"[]", "array"),
        ("number", b"42", "number"),
        ("float", b"-0.5e3", "number"),
        ("string", b'"hello"', "string"),
        ("null", b"null", "null"),
        ("true", b"true", "bool"),
        ("array_of_entries", b"[" + valid[0] + b"]", "array"),
    ):
        add(f"not_object_{name}", raw, "not_an_object", rf"line is JSON {kind}, expected an object")

    # Required fields: missing, null, wrong type (bool is not a number).
    for name, value, reason in (
        ("missing", _MISSING, "missing_field"),
        ("null", None, "wrong_type"),
        ("number", 7, "wrong_type"),
        ("list", ["a.wav"], "wrong_type"),
        ("bool", True, "wrong_type"),
    ):
        field(
            f"audio_filepath_{name}", ("audio_filepath",), value, f"{reason}:audio_filepath", "audio_filepath"
        )
    for name, value, reason in (
        ("missing", _MISSING, "missing_field"),
        ("null", None, "wrong_type"),
        ("string", "16000", "wrong_type"),
        ("true", True, "wrong_type"),
        ("false", False, "wrong_type"),
        ("object", {"hz": 1}, "wrong_type"),
    ):
        field(
            f"audio_sample_rate_{name}",
            ("audio_sample_rate",),
            value,
            f"{reason}:audio_sample_rate",
            "audio_sample_rate",
        )
    for name, value, reason in (
        ("missing", _MISSING, "missing_field"),
        ("null", None, "wrong_type"),
        ("object", {"0": {}}, "wrong_type"),
        ("string", "[]", "wrong_type"),
        ("number", 3, "wrong_type"),
        ("bool", False, "wrong_type"),
    ):
        field(f"segments_{name}", ("segments",), value, f"{reason}:segments", "segments")
    for key in ("start", "end"):
        for name, value, reason in (
            ("missing", _MISSING, "missing_field"),
            ("null", None, "wrong_type"),
            ("string", "1.5", "wrong_type"),
            ("true", True, "wrong_type"),
            ("false", False, "wrong_type"),
            ("list", [1.5], "wrong_type"),
        ):
            field(
                f"segment_{key}_{name}",
                ("segments", seg, key),
                value,
                f"{reason}:segments[].{key}",
                f"segments[{seg}].{key}",
            )
    for name, value in (
        ("number", 5),
        ("string", "segment"),
        ("null", None),
        ("list", [0.0, 1.0]),
        ("bool", True),
    ):
        field(
            f"segment_not_object_{name}",
            ("segments", seg),
            value,
            "wrong_type:segments[]",
            f"segments[{seg}]",
        )

    # Optional fields with the wrong type.
    for name, value in (("null", None), ("list", [8000]), ("number", 8000), ("string", "8k")):
        field(
            f"metrics_{name}",
            ("segments", seg, "metrics"),
            value,
            "wrong_type:segments[].metrics",
            f"segments[{seg}].metrics",
        )
    for name, value in (("null", None), ("string", "8000"), ("bool", True), ("list", [8000])):
        field(
            f"bandwidth_{name}",
            ("segments", seg, "metrics", "bandwidth"),
            value,
            "wrong_type:segments[].metrics.bandwidth",
            f"segments[{seg}].metrics.bandwidth",
        )
    for name, value in (("number", 3), ("list", ["speaker_0"]), ("bool", True), ("object", {"id": 1})):
        field(
            f"speaker_{name}",
            ("segments", seg, "speaker"),
            value,
            "wrong_type:segments[].speaker",
            f"segments[{seg}].speaker",
        )
    for name, value, reason, where in (
        ("words_string", "hello world", "wrong_type:segments[].words", "words"),
        ("words_object", {"word": "x", "end": 1.0}, "wrong_type:segments[].words", "words"),
        ("words_null", None, "wrong_type:segments[].words", "words"),
        ("word_not_object", [{"word": "a", "end": 9.0}, 5], "wrong_type:segments[].words[]", "words[1]"),
        ("word_list", [["a", 1.0, 2.0]], "wrong_type:segments[].words[]", "words[0]"),
        (
            "word_without_end",
            [{"word": "a", "start": 8.0}],
            "missing_field:segments[].words[].end",
            "words[0].end",
        ),
        (
            "word_end_string",
            [{"word": "a", "start": 8.0, "end": "9.0"}],
            "wrong_type:segments[].words[].end",
            "words[0].end",
        ),
        (
            "word_end_null",
            [{"word": "a", "start": 8.0, "end": None}],
            "wrong_type:segments[].words[].end",
            "words[0].end",
        ),
        ("word_end_bool", [{"word": "a", "end": True}], "wrong_type:segments[].words[].end", "words[0].end"),
        (
            "word_number",
            [{"word": 5, "start": 8.0, "end": 9.0}],
            "wrong_type:segments[].words[].word",
            "words[0].word",
        ),
        ("word_bool", [{"word": False, "end": 9.0}], "wrong_type:segments[].words[].word", "words[0].word"),
    ):
        field(name, ("segments", seg, "words"), value, reason, f"segments[{seg}].{where}")

    # Limits beyond the spec's types (validate.py): values the writer or the
    # statistics cannot represent.
    field(
        "start_beyond_2p53",
        ("segments", seg, "start"),
        2**64 - 1,
        "out_of_range:segments[].start",
        f"segments[{seg}].start",
    )
    field(
        "end_overflows_duration",
        ("segments", seg, "end"),
        1.7e308,
        "out_of_range:segments[].end",
        f"segments[{seg}].end",
    )
    no_windows = {
        "audio_filepath": "/data/audio/none.wav",
        "audio_sample_rate": 16000,
        "segments": [{"start": 0.0, "end": 1.0, "speaker": "a", "metrics": {"bandwidth": 9000}}],
    }
    add(
        "filtered_dur_string",
        orjson.dumps({**no_windows, "filtered_dur": "lots"}),
        "wrong_type:filtered_dur",
        r"filtered_dur: ",
    )
    add(
        "filtered_windows_number",
        orjson.dumps({**no_windows, "filtered_windows": 3}),
        "wrong_type:filtered_windows",
        r"filtered_windows: ",
    )
    deep = b"[" * 300 + b"]" * 300
    add(
        "nested_too_deep",
        valid[0][:-1] + b', "extra": ' + deep + b"}",
        "too_deep",
        r"extra: arrays/objects nested",
    )
    return out


def _re(text: str) -> str:
    return re.escape(text)


def _replace(line: bytes, old: bytes, new: bytes) -> bytes:
    assert old in line, old
    return line.replace(old, new, 1)


def separator_variants(valid: list) -> list:
    """Valid entries with U+2028, U+2029 and U+0085 inside JSON strings (content)."""
    line = valid[1]
    text = _replace(line, b'"text": "', b'"text": "\xe2\x80\xa8 \xc2\x85 ')
    path = _replace(line, b'"audio_filepath": "/data', b'"audio_filepath": "/da\xe2\x80\xa9ta\xc2\x85')
    return [text, path]


def _write(
    path: pathlib.Path, lines: list, *, newline=b"\n", bom=False, final_newline=True, compress=None
) -> list:
    """Write a manifest; returns (line number, byte offset, raw line) for each line."""
    data = bytearray(BOM if bom else b"")
    placed = []
    for number, raw in enumerate(lines, 1):
        offset = 0 if number == 1 else len(data)
        data += raw
        if number < len(lines) or final_newline:
            data += newline
        placed.append((number, offset, raw))
    blob = bytes(data)
    if compress == "gz":
        blob = gzip.compress(blob)
    elif compress == "bz2":
        blob = bz2.compress(blob)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return placed


def build_corpus(root: pathlib.Path, valid: list) -> Corpus:
    """Write the corpus under ``root``; ``valid`` are the fixture's lines (at least 5)."""
    valid = list(valid)
    bad = bad_lines(valid)
    by_name = {b.name: b for b in bad}
    assert len(by_name) == len(bad), "bad line names must be unique"
    seps = separator_variants(valid)
    corpus = Corpus(root=root, manifests=[], ignored=[], valid=[], errors=[], blank_lines=0)

    def manifest(relpath, items, **layout):
        """items: bytes (valid line), BadLine, or '' (a blank line)."""
        path = root / relpath
        lines = [item.raw if isinstance(item, BadLine) else (b"" if item == "" else item) for item in items]
        placed = _write(path, lines, **layout)
        for item, (number, offset, raw) in zip(items, placed):
            if isinstance(item, BadLine):
                corpus.errors.append(ExpectedError(str(path), number, offset, item))
            elif item == "" or not raw.strip(b" \t\r\n"):
                corpus.blank_lines += 1
            else:
                corpus.valid.append((str(path), raw))
        corpus.manifests.append(str(path))

    in_gz = ["not_object_array", "segments_null", "invalid_utf8_ff", "word_end_string"]
    in_bz2 = ["not_object_null", "segment_start_true"]
    in_tail = ["cut_mid_object"]
    rest = [b for b in bad if b.name not in in_gz + in_bz2 + in_tail]
    main = [
        valid[0],
        *rest[:20],
        valid[1],
        "",
        *rest[20:45],
        seps[0],
        b"   ",
        valid[2],
        *rest[45:],
        seps[1],
        valid[4],
        "",
    ]
    # BOM at the start, CRLF line endings (blank lines included).
    manifest("main.jsonl", main, newline=b"\r\n", bom=True)
    manifest("sub/more.jsonl.gz", [valid[2], *(by_name[n] for n in in_gz), valid[3]], compress="gz")
    manifest(
        "sub/deeper/other.json.bz2",
        [valid[4], *(by_name[n] for n in in_bz2), valid[0]],
        compress="bz2",
        final_newline=False,
    )
    # A file cut short while being written: its last line stops mid-object.
    manifest("truncated.jsonl", [valid[3], by_name["cut_mid_object"]], final_newline=False)
    manifest("UPPER.JSONL", [valid[1]])
    manifest("empty.jsonl", [])
    manifest("blank.jsonl", ["", "", b"  ", b"\t", b"\r"], newline=b"\n")
    # Not manifests: discovery must skip them (each holds a valid entry, so
    # reading one would change the output).
    for name, text in (
        ("notes.txt", valid[0] + b"\nsome notes\n"),
        ("sub/data.csv", b"a,b\n1,2\n" + valid[1] + b"\n"),
        ("sub/manifest.jsonl.bak", valid[2] + b"\n"),
    ):
        (root / name).write_bytes(text)
        corpus.ignored.append(str(root / name))
    return corpus


def clean_manifest(path: pathlib.Path, corpus: Corpus) -> list:
    """Just the corpus's valid lines, in one plain file (the baseline run)."""
    return _write(path, [raw for _, raw in corpus.valid])


# --- reading a run's output ------------------------------------------------------


@dataclasses.dataclass
class RunOutput:
    names: list  # every entry in the output directory but alm_beam's hidden
    # bookkeeping (.alm_beam-run.json, ...): what a consumer lists
    windows: list  # output lines (bytes) of all windows-* shards
    errors: list  # error lines (bytes) of all errors-* shards
    summary: Optional[dict]


def read_output(out_dir: pathlib.Path) -> RunOutput:
    names = (
        sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")) if out_dir.is_dir() else []
    )

    def lines(prefix):
        return [
            line for p in sorted(out_dir.glob(prefix + "-*.jsonl")) for line in p.read_bytes().splitlines()
        ]

    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return RunOutput(names, lines("windows"), lines("errors"), summary)


# --- running the product like a user -------------------------------------------

REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_in_process(args: Sequence[str]) -> CliResult:
    """``alm_beam.run.main(args)`` in this process, with its printed output."""
    from alm_beam.run import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse errors
            code = exc.code
    return CliResult(code, out.getvalue(), err.getvalue())


def run_subprocess(args: Sequence[str], timeout: float = 300) -> CliResult:
    """``python -m alm_beam.run ARGS`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "alm_beam.run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/bad_inputs/corpus.py OUTPUT_DIR")
    fixture = REPO / "tests" / "data" / "fixtures" / "sample_input.jsonl"
    made = build_corpus(
        pathlib.Path(sys.argv[1]), [ln for ln in fixture.read_bytes().splitlines() if ln.strip()]
    )
    print(
        f"{len(made.manifests)} manifests, {len(made.valid)} valid lines, "
        f"{len(made.errors)} bad lines, {made.blank_lines} blank lines -> {made.root}"
    )
