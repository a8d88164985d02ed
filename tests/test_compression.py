"""Compressed outputs (--output_compression / output.compression): every JSONL
output written gzip or zstd through Beam's sinks, and read back by inspect, report
and the golden comparison."""

import gzip
import json
import os
import subprocess
import sys

import pytest
import zstandard
from conftest import FIXTURES, REPO
from runner_helpers import assert_matches_golden, golden_input, read_shards

from alm_beam.config import ConfigError, build_config, load_yaml

pytestmark = pytest.mark.e2e

SUFFIX = {"none": ".jsonl", "gzip": ".jsonl.gz", "zstd": ".jsonl.zst"}
MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
BAD_LINE = b'{"audio_filepath": 1, "audio_sample_rate": 16000, "segments": []}'


def _cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def _decompress(path) -> bytes:
    data = open(path, "rb").read()
    if str(path).endswith(".gz"):
        return gzip.decompress(data)
    if str(path).endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
    return data


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """The golden sample with one rejected line (so errors-* has a record)."""
    path = tmp_path_factory.mktemp("compression_in") / "m.jsonl"
    path.write_bytes((FIXTURES / "sample_input.jsonl").read_bytes().rstrip(b"\n") + b"\n" + BAD_LINE + b"\n")
    return path


@pytest.fixture(scope="module")
def plain(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("compression_plain") / "out"
    proc = _cli("alm_beam.run", "--input", manifest, "--output", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_every_jsonl_output_is_compressed_and_reads_back(codec, manifest, plain, tmp_path):
    out = tmp_path / "out"
    proc = _cli(
        "alm_beam.run", "--input", manifest, "--output", out, "--output_compression", codec, "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    names = f"(windows-*{SUFFIX[codec]}, errors-*{SUFFIX[codec]}, train-*{SUFFIX[codec]}, summary.json"
    assert names in proc.stdout  # the files as they are named
    summary = json.loads((out / "summary.json").read_text())  # summary.json itself stays plain
    names = sorted(os.listdir(out))
    for prefix in ("windows", "errors", "train"):
        shards = [n for n in names if n.startswith(prefix + "-")]
        assert shards and all(n.endswith(SUFFIX[codec]) for n in shards), names
        assert summary["outputs"][prefix] == shards
        for name in shards:
            assert (out / name).read_bytes()[:4].startswith(MAGIC[codec]), name
    assert not [n for n in names if n.endswith(".jsonl")]
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")

    # the same lines as the uncompressed run's
    for prefix in ("windows", "errors", "train"):
        got = sorted(line for n in summary["outputs"][prefix] for line in _decompress(out / n).splitlines())
        want = sorted(
            line
            for n in sorted(os.listdir(plain))
            if n.startswith(prefix + "-")
            for line in (plain / n).read_bytes().splitlines()
        )
        assert got == want and got, prefix
    # the golden comparison helper reads them
    assert len(read_shards(out, "windows")) == len(read_shards(plain, "windows")) > 0
    assert len(read_shards(out, "errors")) == 1

    # inspect shows kept windows from the compressed training manifest and the error example
    shown = _cli("alm_beam.inspect", out, "--n", "2", timeout=120)
    assert shown.returncode == 0, shown.stderr
    plain_shown = _cli("alm_beam.inspect", plain, "--n", "2", timeout=120)
    assert (
        f"kept windows: the first 2 of {summary['filtered_windows']:,} (train-*{SUFFIX[codec]})"
        in shown.stdout
    )
    tail = plain_shown.stdout[plain_shown.stdout.index("  1. ") :]
    assert tail in shown.stdout  # the same windows and error example as the plain run's
    assert "wrong_type:audio_filepath  (1 line)" in shown.stdout

    # the report is rebuilt from summary.json
    (out / "report.html").unlink()
    rebuilt = _cli("alm_beam.report", out, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (out / "report.html").exists()


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_golden_case_matches(codec, tmp_path):
    out = tmp_path / "out"
    proc = _cli(
        "alm_beam.run",
        "--input",
        golden_input("nested_default"),
        "--output",
        out,
        "--set",
        f"output.compression={codec}",
        "--num_shards",
        "2",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert all(n.endswith(SUFFIX[codec]) for n in os.listdir(out) if n.startswith("windows-"))
    assert len([n for n in os.listdir(out) if n.startswith("windows-")]) == 2
    assert_matches_golden(out, "nested_default")


def test_config_key_and_its_errors(tmp_path):
    assert build_config({}, []).output.compression == "none"
    for value in ("none", "gzip", "zstd"):
        assert build_config({}, [("output.compression", value)]).output.compression == value
    config = tmp_path / "c.yaml"
    config.write_text("output:\n  compression: zstd\n")
    assert build_config(load_yaml(str(config))).output.compression == "zstd"
    default = REPO / "configs" / "default.yaml"
    assert "  compression: none " in default.read_text()
    assert build_config(load_yaml(str(default))).output.compression == "none"
    for bad in ("bz2", "GZIP", True, None, ["gzip"]):
        with pytest.raises(ConfigError, match=r"^output\.compression=.*: allowed: none, gzip, zstd$"):
            build_config({}, [("output.compression", bad)])


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--output_compression", "bz2"],
            "alm_beam: error: argument --output_compression: invalid choice: 'bz2' "
            "(choose from 'none', 'gzip', 'zstd') (see --help)",
        ),
        (
            ["--set", "output.compression=lz4"],
            "alm_beam: error: output.compression='lz4': allowed: none, gzip, zstd",
        ),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(args, message, tmp_path):
    proc = _cli("alm_beam.run", "--output", tmp_path / "out", *args, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [message]
    assert not (tmp_path / "out").exists()


def test_help_names_the_flag_and_the_key():
    text = _cli("alm_beam.run", "--help", timeout=60).stdout
    assert "--output_compression {none,gzip,zstd}" in text
    assert "output.compression" in text
