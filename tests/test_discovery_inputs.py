"""Inputs that are not what they seem (issue 10, item 7), at the discovery level.

Literal names with glob characters, FIFOs and other non-regular files, files
reached twice through symbolic links, and an output directory inside the
input tree. Everything is built in tmp_path; nothing here opens a FIFO.
"""

import os
import socket

import pytest

from alm_beam.io.discovery import (
    DiscoveryError,
    SkippedInput,
    check_output_outside_inputs,
    discover,
    find_inputs,
)


def _write(path, text='{"a": 1}\n'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _rel(files, root):
    return [os.path.relpath(f.path, root) for f in files]


# --- (a) an existing path is taken literally ---------------------------------


@pytest.mark.parametrize("name", ["a[1].jsonl", "take*2.jsonl", "what?.jsonl", "[x].jsonl"])
def test_existing_file_with_glob_characters_is_read_literally(tmp_path, name):
    target = _write(tmp_path / name)
    _write(tmp_path / "a1.jsonl")  # what "a[1].jsonl" matches as a glob
    _write(tmp_path / "take-and-2.jsonl")
    files = discover([str(target)])
    assert _rel(files, tmp_path) == [name]
    assert files[0].size == len('{"a": 1}\n')


def test_existing_directory_with_glob_characters_is_searched(tmp_path):
    _write(tmp_path / "run[1]" / "m.jsonl")
    _write(tmp_path / "run1" / "other.jsonl")
    assert _rel(discover([str(tmp_path / "run[1]")]), tmp_path) == ["run[1]/m.jsonl"]


def test_a_path_that_does_not_exist_is_still_a_glob(tmp_path):
    _write(tmp_path / "a1.jsonl")
    _write(tmp_path / "a2.jsonl")
    _write(tmp_path / "b1.jsonl")
    assert _rel(discover([str(tmp_path / "a[12].jsonl")]), tmp_path) == ["a1.jsonl", "a2.jsonl"]
    assert _rel(discover([str(tmp_path / "**.jsonl")]), tmp_path) == ["a1.jsonl", "a2.jsonl", "b1.jsonl"]


def test_relative_glob_is_resolved_from_the_working_directory(tmp_path, monkeypatch):
    _write(tmp_path / "d" / "m1.jsonl")
    monkeypatch.chdir(tmp_path)
    assert _rel(discover(["d/m*.jsonl"]), tmp_path) == ["d/m1.jsonl"]


# --- (b) FIFOs and other non-regular files -----------------------------------


def test_fifo_in_a_directory_is_skipped_with_a_reason(tmp_path):
    _write(tmp_path / "good.jsonl")
    os.mkfifo(tmp_path / "pipe.jsonl")
    os.mkfifo(tmp_path / "pipe.txt")  # not a manifest name: ignored like notes.txt
    found = find_inputs([str(tmp_path)])
    assert _rel(found.files, tmp_path) == ["good.jsonl"]
    assert found.skipped == [
        SkippedInput(str(tmp_path / "pipe.jsonl"), "not a regular file: a FIFO (named pipe)")
    ]
    assert _rel(discover([str(tmp_path)]), tmp_path) == ["good.jsonl"]


def test_socket_and_broken_link_in_a_directory_are_skipped(tmp_path):
    _write(tmp_path / "good.jsonl")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.jsonl"))
        os.symlink(tmp_path / "gone.jsonl", tmp_path / "dangling.jsonl")
        found = find_inputs([str(tmp_path)])
    finally:
        sock.close()
    assert _rel(found.files, tmp_path) == ["good.jsonl"]
    assert found.skipped == [
        SkippedInput(str(tmp_path / "dangling.jsonl"), "broken symbolic link (its target does not exist)"),
        SkippedInput(str(tmp_path / "s.jsonl"), "not a regular file: a socket"),
    ]


def test_fifo_matched_by_a_glob_is_skipped(tmp_path):
    _write(tmp_path / "m1.jsonl")
    os.mkfifo(tmp_path / "m2.jsonl")
    found = find_inputs([str(tmp_path / "m*.jsonl")])
    assert _rel(found.files, tmp_path) == ["m1.jsonl"]
    assert [s.path for s in found.skipped] == [str(tmp_path / "m2.jsonl")]


def test_fifo_named_explicitly_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.jsonl")
    with pytest.raises(DiscoveryError) as info:
        discover([str(tmp_path / "pipe.jsonl")])
    assert str(info.value) == (
        f"--input {str(tmp_path / 'pipe.jsonl')!r}: not a regular file: "
        "a FIFO (named pipe); alm_beam reads only regular files"
    )


def test_directory_holding_only_a_fifo_is_an_error_naming_it(tmp_path):
    os.mkfifo(tmp_path / "pipe.jsonl")
    with pytest.raises(
        DiscoveryError,
        match=r"holds no \.jsonl/\.json manifest .*; skipped "
        r".*pipe\.jsonl \(not a regular file: a FIFO",
    ):
        discover([str(tmp_path)])


def test_broken_link_named_explicitly_is_refused(tmp_path):
    os.symlink(tmp_path / "gone.jsonl", tmp_path / "m.jsonl")
    with pytest.raises(DiscoveryError, match="broken symbolic link"):
        discover([str(tmp_path / "m.jsonl")])


# --- (c) each real file once --------------------------------------------------


def test_symlink_to_a_file_in_the_same_directory_is_read_once(tmp_path):
    _write(tmp_path / "m-2024.jsonl")
    os.symlink("m-2024.jsonl", tmp_path / "latest.jsonl")
    # first in sorted order wins: latest.jsonl < m-2024.jsonl
    assert _rel(discover([str(tmp_path)]), tmp_path) == ["latest.jsonl"]


def test_symlinked_directory_is_followed_once(tmp_path):
    data = tmp_path / "data"
    _write(data / "real" / "m.jsonl")
    os.symlink(data / "real", data / "alias")
    assert _rel(discover([str(data)]), data) == ["alias/m.jsonl"]
    outside = tmp_path / "elsewhere"
    _write(outside / "x.jsonl")
    os.symlink(outside, data / "linked")
    assert _rel(discover([str(data)]), data) == ["alias/m.jsonl", "linked/x.jsonl"]


def test_symlink_loop_ends(tmp_path):
    _write(tmp_path / "d" / "m.jsonl")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    os.symlink(tmp_path, tmp_path / "d" / "up")
    os.symlink("self.jsonl", tmp_path / "self.jsonl")  # a link to itself
    found = find_inputs([str(tmp_path)])
    assert _rel(found.files, tmp_path) == ["d/m.jsonl"]
    assert found.skipped == [SkippedInput(str(tmp_path / "self.jsonl"), "symbolic link loop")]
    assert _rel(discover([str(tmp_path / "**")]), tmp_path) == ["d/m.jsonl"]


def test_same_file_through_several_inputs_is_named_by_its_smallest_path(tmp_path):
    real = _write(tmp_path / "a" / "m.jsonl")
    os.symlink(tmp_path / "a", tmp_path / "b")
    inputs = [
        str(tmp_path / "b" / "m.jsonl"),
        str(tmp_path / "a"),
        str(real),
        str(tmp_path / "*" / "m.jsonl"),
    ]
    # issue 19 item 6: the name does not depend on the order of the inputs
    assert _rel(discover(inputs), tmp_path) == ["a/m.jsonl"]
    assert _rel(discover(inputs[::-1]), tmp_path) == ["a/m.jsonl"]
    assert _rel(discover(inputs[:1]), tmp_path) == ["b/m.jsonl"]


def test_hard_links_are_one_file_too(tmp_path):
    _write(tmp_path / "m.jsonl")
    os.link(tmp_path / "m.jsonl", tmp_path / "n.jsonl")
    # one file (same device and inode), read once (issue 19 item 6)
    assert _rel(discover([str(tmp_path)]), tmp_path) == ["m.jsonl"]
    assert _rel(discover([str(tmp_path / "n.jsonl"), str(tmp_path / "m.jsonl")]), tmp_path) == ["m.jsonl"]


# --- (d) the output directory and the input tree -----------------------------


@pytest.mark.parametrize("output", ["in", "in/out", "in/deep/er/out"])
def test_output_inside_or_equal_to_an_input_directory_is_refused(tmp_path, output):
    _write(tmp_path / "in" / "m.jsonl")
    with pytest.raises(DiscoveryError, match="is inside --input directory"):
        check_output_outside_inputs([str(tmp_path / "in")], str(tmp_path / output))
    with pytest.raises(DiscoveryError, match="is inside --input directory"):
        find_inputs([str(tmp_path / "in")], str(tmp_path / output))


def test_output_reaching_into_the_input_through_a_symlink_is_refused(tmp_path):
    _write(tmp_path / "in" / "m.jsonl")
    (tmp_path / "in" / "out").mkdir()
    os.symlink(tmp_path / "in" / "out", tmp_path / "out_link")
    with pytest.raises(DiscoveryError, match="is inside --input directory"):
        check_output_outside_inputs([str(tmp_path / "in")], str(tmp_path / "out_link"))


def test_input_inside_the_output_is_refused(tmp_path):
    _write(tmp_path / "out" / "windows-00000-of-00001.jsonl")
    with pytest.raises(DiscoveryError, match="is inside --output"):
        check_output_outside_inputs(
            [str(tmp_path / "out" / "windows-00000-of-00001.jsonl")], str(tmp_path / "out")
        )


def test_output_beside_the_input_is_fine(tmp_path):
    _write(tmp_path / "in" / "m.jsonl")
    check_output_outside_inputs([str(tmp_path / "in")], str(tmp_path / "in-out"))
    check_output_outside_inputs([str(tmp_path / "in" / "m.jsonl")], str(tmp_path / "out"))
    assert _rel(find_inputs([str(tmp_path / "in")], str(tmp_path / "in-out")).files, tmp_path) == [
        "in/m.jsonl"
    ]


def test_glob_never_discovers_the_output_directory(tmp_path):
    _write(tmp_path / "2024-01" / "m.jsonl")
    _write(tmp_path / "2024-out" / "windows-00000-of-00001.jsonl")
    found = find_inputs([str(tmp_path / "2024-*")], str(tmp_path / "2024-out"))
    assert _rel(found.files, tmp_path) == ["2024-01/m.jsonl"]
    assert found.skipped == [
        SkippedInput(str(tmp_path / "2024-out"), "inside the --output directory (never read as input)")
    ]
    found = find_inputs([str(tmp_path / "**.jsonl")], str(tmp_path / "2024-out"))
    assert _rel(found.files, tmp_path) == ["2024-01/m.jsonl"]
    assert found.skipped == [
        SkippedInput(str(tmp_path / "2024-out"), "inside the --output directory (never read as input)")
    ]
    found = find_inputs([str(tmp_path / "*" / "*.jsonl")], str(tmp_path / "2024-out"))
    assert _rel(found.files, tmp_path) == ["2024-01/m.jsonl"]
    assert found.skipped == [
        SkippedInput(str(tmp_path / "2024-out"), "inside the --output directory (never read as input)")
    ]
