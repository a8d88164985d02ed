"""Helpers for the runner tests (Prism, the portable deployment, Flink/Spark launchers):
the golden comparison of tests/test_golden.py for an output directory, and
process/port checks for "nothing of ours is left"."""

from __future__ import annotations

import collections
import glob
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import FIXTURES, GOLDEN, REPO, canonical

# The golden cases of tests/test_golden.py: case -> extra alm_beam.run flags.
GOLDEN_CASES = {
    "sample_default": [],
    "sample_overlap0": ["--set", "overlap.overlap_percentage=0"],
    "sample_overlap100": ["--set", "overlap.overlap_percentage=100"],
    "sample_notrunc": ["--set", "builder.truncation=false"],
    "sample_spk2to3": ["--set", "builder.max_speakers=3"],
    "sample_target60_tol015_td60": [
        "--set",
        "builder.target_window_duration=60",
        "--set",
        "builder.tolerance=0.15",
        "--set",
        "overlap.target_duration=60",
    ],
    "nested_default": [],
}


def golden_input(case: str) -> str:
    return str(FIXTURES / ("nested_manifests" if case.startswith("nested") else "sample_input.jsonl"))


def _open_shard(path: str):
    """A JSONL shard as text, whatever output.compression wrote (.jsonl, .jsonl.gz, .jsonl.zst)."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.endswith(".zst"):
        import zstandard  # comes with apache-beam

        raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True)
        return io.TextIOWrapper(raw, encoding="utf-8")
    return open(path, encoding="utf-8")


def read_shards(out_dir, prefix: str) -> list:
    """Every line of the ``prefix`` shards (any output.compression), parsed."""
    lines = []
    for suffix in (".jsonl", ".jsonl.gz", ".jsonl.zst"):
        for path in sorted(glob.glob(os.path.join(str(out_dir), f"{prefix}-*-of-*{suffix}"))):
            with _open_shard(path) as fh:
                lines.extend(json.loads(line) for line in fh if line.strip())
    return lines


def assert_matches_golden(out_dir, case: str) -> None:
    """Exactly the checks of tests/test_golden.py, on a finished run's output."""
    got = read_shards(out_dir, "windows")
    with open(GOLDEN / f"{case}.jsonl", encoding="utf-8") as fh:
        golden = [json.loads(line) for line in fh if line.strip()]
    assert len(got) == len(golden)
    assert collections.Counter(map(canonical, got)) == collections.Counter(map(canonical, golden))
    sources = {e["manifest_filepath"] for e in got}
    assert all(s and s.endswith(".jsonl") for s in sources)
    assert read_shards(out_dir, "errors") == []

    with open(GOLDEN / f"{case}.summary.json", encoding="utf-8") as fh:
        expected = json.load(fh)["summary"]
    with open(os.path.join(str(out_dir), "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["entries_read"] == summary["entries_written"] == expected["entries"]
    assert summary["entries_failed"] == 0
    for key in (
        "windows",
        "filtered_windows",
        "filtered_timestamps",
        "truncation_events",
        "entries_with_windows",
        "entries_with_filtered_windows",
        "entries_below_min_sample_rate",
        "lost_win_full_data_records",
    ):
        assert summary[key] == expected[key], key
    for key in ("filtered_dur", "total_dur_window"):
        assert summary[key] == pytest.approx(expected[key], rel=1e-12), key
    for key, value in expected["stats"].items():
        assert summary["stats"][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def same_result(dir_a, dir_b) -> None:
    """Two runs of the same input: the same entries (as a multiset) and the same totals."""
    a, b = read_shards(dir_a, "windows"), read_shards(dir_b, "windows")
    assert a
    assert collections.Counter(map(canonical, a)) == collections.Counter(map(canonical, b))
    sa = json.loads((dir_a / "summary.json").read_text())
    sb = json.loads((dir_b / "summary.json").read_text())
    for key in (
        "entries_read",
        "entries_written",
        "windows",
        "filtered_windows",
        "filtered_dur",
        "total_dur_window",
        "stats",
        "errors_by_reason",
    ):
        assert sa[key] == sb[key], key  # exact sums: identical whatever the runner


def run_cli(args: list, cwd, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alm_beam.run"] + list(args),
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def script(name: str, *args, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``bash pipelines/<name> args...`` with this venv's python first on PATH."""
    full_env = dict(os.environ if env is None else env)
    full_env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + full_env.get("PATH", "")
    return subprocess.run(
        ["bash", str(REPO / "pipelines" / name)] + list(args),
        cwd=str(REPO),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_ports(count: int) -> list:
    """``count`` distinct ports free right now on every interface."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("0.0.0.0", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def listening(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def wait_closed(port: int, seconds: float = 10.0) -> bool:
    """True once nothing accepts connections on 127.0.0.1:port, waiting up to
    ``seconds``. A killed multi-threaded process (Prism is Go) shows as a
    zombie, so ``wait_gone`` counts it gone, while its other threads are still
    exiting; its sockets close with the last of them, a moment later."""
    deadline = time.monotonic() + seconds
    while listening(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def wait_gone(pids, seconds: float = 20.0) -> list:
    """The pids still alive after waiting up to ``seconds`` (a killed process's
    exit is asynchronous); [] when all are gone."""
    deadline = time.monotonic() + seconds
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def children(pid: int) -> list:
    found = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def processes_running(path: str) -> list:
    """Live processes whose executable is ``path``."""
    found = []
    target = os.path.realpath(path)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.path.realpath(f"/proc/{pid}/exe") == target and pid_alive(int(pid)):
                found.append(int(pid))
        except OSError:
            continue
    return found
