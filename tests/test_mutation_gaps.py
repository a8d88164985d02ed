"""Issue 19 item 11: lines a mutation pass could break without any test noticing.

Each test here fails when its guarded line is broken (checked by breaking it):

* the replay of a damaged compressed stream from a raw offset beyond the first
  read chunk (``codecs.DecodedStream._replay``: seek to the stream's start,
  re-decode up to the failing chunk);
* the lock's re-check after ``flock`` (``OutputLock._acquire_local``);
* the segment-span rule with durations of both signs (``validate_entry``);
* a grandchild of a worker on SIGTERM (``interrupts.stop_descendants``);
* the run record's atomic rewrite (``OutputRun._write_record``).
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import random
import signal
import subprocess
import sys
import textwrap
import zlib

import pytest

from alm_beam.core.validate import MAX_SECONDS, validate_entry
from alm_beam.io import output_dir
from alm_beam.io.codecs import RAW_CHUNK, DecodedStream, codec_for_name
from alm_beam.io.reader import iter_lines

# --- damage beyond the first raw chunk ---------------------------------------

COMPRESS = {"gzip": gzip.compress, "deflate": zlib.compress, "xz": lzma.compress}
SUFFIX = {"gzip": ".gz", "deflate": ".deflate", "xz": ".xz"}
DECODER = {
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "deflate": zlib.decompressobj,
    "xz": lzma.LZMADecompressor,
}


def _noise_lines(count: int, seed: int) -> bytes:
    """Lines that barely compress, so the compressed file spans many raw chunks."""
    rnd = random.Random(seed)
    return b"".join(b'{"n": %d, "x": "%s"}\n' % (i, rnd.randbytes(40).hex().encode()) for i in range(count))


def _decoded_before_damage(stream: bytes, codec: str) -> bytes:
    """Python's own decoder fed one byte at a time, up to the error."""
    dec, out = DECODER[codec](), bytearray()
    try:
        for i in range(len(stream)):
            out += dec.decompress(stream[i : i + 1])
    except (zlib.error, lzma.LZMAError):
        return bytes(out)
    raise AssertionError("the damage was not detected")


@pytest.mark.parametrize("codec", ["gzip", "deflate", "xz"])
@pytest.mark.parametrize("streams", [1, 2])
def test_damage_several_raw_chunks_in_is_exact_to_the_byte(codec, streams):
    first = COMPRESS[codec](_noise_lines(2500, 1)) if streams == 2 else b""
    second = bytearray(COMPRESS[codec](_noise_lines(8000, 2)))
    assert len(second) > 4 * RAW_CHUNK and (streams == 1 or len(first) > RAW_CHUNK)
    # inside the second stream, past several chunks, not on a chunk boundary
    at = 3 * RAW_CHUNK + 1234 - len(first) % RAW_CHUNK
    second[at] ^= 0x5A
    blob = first + bytes(second)
    assert len(first) + at > 3 * RAW_CHUNK
    before = (
        (
            gzip.decompress(first)
            if codec == "gzip"
            else zlib.decompress(first)
            if codec == "deflate"
            else lzma.decompress(first)
        )
        if first
        else b""
    )
    out = before + _decoded_before_damage(bytes(second), codec)
    complete = out.count(b"\n")
    got = list(iter_lines(DecodedStream(io.BytesIO(blob), codec_for_name("m.jsonl" + SUFFIX[codec]))))
    assert [r.data for r in got[:-1]] == out.split(b"\n")[:complete]
    assert (got[-1].line, got[-1].offset) == (complete + 1, out.rfind(b"\n") + 1)
    assert got[-1].problem.code == "unreadable_file"
    assert got[-1].problem.size == len(out) - got[-1].offset


# --- the lock's re-check after flock ------------------------------------------


def test_a_lock_released_between_open_and_flock_is_not_held(tmp_path, monkeypatch):
    import fcntl

    out = str(tmp_path / "out")
    first = output_dir.OutputLock.acquire(out, "first")
    real_flock = fcntl.flock
    released = []

    def flock_after_the_holder_left(fd, how):
        if not released:  # the first run releases right between our open and our flock
            released.append(True)
            first.release()
        return real_flock(fd, how)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_left)
    second = output_dir.OutputLock.acquire(out, "second")
    monkeypatch.setattr(fcntl, "flock", real_flock)
    try:
        assert released
        path = os.path.join(out, output_dir.LOCK_NAME)
        here, held = os.lstat(path), os.fstat(second._fd)
        assert (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)  # not the unlinked inode
        assert "second" in open(path, encoding="utf-8").read()
        with pytest.raises(output_dir.OutputInUse):  # so a third run sees it held
            output_dir.OutputLock.acquire(out, "third")
    finally:
        second.release()


# --- the segment-span rule with durations of both signs ----------------------


def _entry(*spans):
    return {
        "audio_filepath": "/a.wav",
        "audio_sample_rate": 16000,
        "segments": [{"start": s, "end": e, "speaker": "a"} for s, e in spans],
    }


@pytest.mark.parametrize(
    "spans",
    [
        [(-(2**53), 2**53)],  # one duration of 2**54
        [(0, 2**53), (2**53, 0)],  # +2**53 and -2**53: they cancel, their sizes do not
        [(2**52, -(2**52)), (0, 2**52 + 1)],  # -2**53 and +(2**52 + 1)
        [(2.0**52, -(2.0**52)), (0.0, 2.0**53)],  # floats: -2**53 and +2**53
    ],
)
def test_segment_span_counts_every_duration_by_its_size(spans):
    rejection = validate_entry(_entry(*spans))
    assert rejection is not None and rejection.code == "out_of_range:segments"


def test_segment_span_at_the_limit_is_accepted():
    assert validate_entry(_entry((MAX_SECONDS, 0))) is None  # |-2**53| == 2**53
    assert validate_entry(_entry((0, 2**52), (2**52, 0))) is None  # 2**52 + 2**52


# --- a grandchild of a worker on SIGTERM ---------------------------------------

_TREE = textwrap.dedent(
    """
    import subprocess, sys, time
    from alm_beam.execution import interrupts
    interrupts.install()
    code = "import subprocess, time; g = subprocess.Popen(['sleep', '600']); print(g.pid, flush=True); "
    worker = subprocess.Popen([sys.executable, "-c", code + "time.sleep(600)"], stdout=subprocess.PIPE)
    grandchild = int(worker.stdout.readline())
    print(worker.pid, grandchild, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_sigterm_stops_a_workers_grandchild_too(tmp_path):
    err = open(tmp_path / "stderr", "w+b")  # a file: a surviving grandchild would hold a pipe open
    proc = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, stderr=err)
    pids = []
    try:
        pids = list(map(int, proc.stdout.readline().split()))
        worker, grandchild = pids
        assert _alive(worker) and _alive(grandchild)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        # stopped before the run's process exits (it waits for its tree to go)
        assert not _alive(worker)
        assert not _alive(grandchild)
        err.seek(0)
        assert err.read().decode().startswith("alm_beam: interrupted by SIGTERM")
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()


# --- the run record's atomic rewrite ------------------------------------------


def _record(out) -> dict:
    with open(os.path.join(out, output_dir.RECORD_NAME), encoding="utf-8") as fh:
        return json.load(fh)  # always whole JSON


def test_the_run_record_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    run = output_dir.OutputRun.start(out, False)
    try:
        assert _record(out)["state"] == output_dir.RUNNING
        # killed halfway through writing the new record: the old one is intact
        real_create = output_dir._create_new_local

        def half_then_killed(path, data):
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 2])
            raise OSError("killed")

        monkeypatch.setattr(output_dir, "_create_new_local", half_then_killed)
        with pytest.raises(OSError):
            run._write_record(output_dir.COMMITTING, ["windows-00000-of-00001.jsonl"])
        assert _record(out)["state"] == output_dir.RUNNING
        monkeypatch.setattr(output_dir, "_create_new_local", real_create)

        # killed just before the rename: still the old record, and the new one whole beside it
        real_rename = os.rename
        seen = []

        def killed_before_rename(src, dst):
            seen.append((src, dst))
            raise OSError("killed")

        monkeypatch.setattr(os, "rename", killed_before_rename)
        with pytest.raises(OSError):
            run._write_record(output_dir.COMMITTING, ["windows-00000-of-00001.jsonl"])
        monkeypatch.setattr(os, "rename", real_rename)
        assert _record(out)["state"] == output_dir.RUNNING
        ((src, dst),) = seen
        assert dst == os.path.join(out, output_dir.RECORD_NAME) and src.startswith(run.staging)
        assert json.loads(open(src, encoding="utf-8").read())["state"] == output_dir.COMMITTING

        run._write_record(output_dir.COMMITTING, ["windows-00000-of-00001.jsonl"])
        assert _record(out)["state"] == output_dir.COMMITTING
        assert not os.path.exists(src)  # renamed, not copied
    finally:
        run.abandon()
        run.release()
