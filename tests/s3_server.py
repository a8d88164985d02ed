"""A real S3-compatible server for tests: pipelines/s3-local.sh (versitygw) on a free port.

The fixture runs the script exactly as a user would (up / flags / down) with
its own state directory, so nothing outside tmp is touched and the server is
stopped by pid even when a test fails.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
from typing import NamedTuple

import pytest
from conftest import REPO, require_or_skip

SCRIPT = REPO / "pipelines" / "s3-local.sh"
VERSION = os.environ.get("VERSITYGW_VERSION", "v1.8.0")
BINARY = (
    pathlib.Path(os.environ.get("ALM_BEAM_CACHE", pathlib.Path.home() / ".cache" / "alm_beam"))
    / "versitygw"
    / VERSION
    / "bin"
    / "versitygw"
)
BUCKET = "alm-beam"


class S3Server(NamedTuple):
    flags: list  # the Beam options from `s3-local.sh flags`
    data: pathlib.Path  # the POSIX directory behind it: one directory per bucket
    env: dict  # environment that addresses this server's state dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    require_or_skip(
        BINARY.exists() and shutil.which("bash") is not None,
        f"versitygw {VERSION} not built; run: pipelines/s3-local.sh build",
    )
    state = tmp_path_factory.mktemp("s3-local")
    env = dict(
        os.environ,
        ALM_BEAM_S3_STATE=str(state),
        ALM_BEAM_S3_PORT=str(_free_port()),
        ALM_BEAM_S3_BUCKETS=BUCKET,
        ALM_BEAM_S3_WATCH_PID=str(os.getpid()),
    )
    subprocess.run([str(SCRIPT), "up"], env=env, check=True, capture_output=True, timeout=60)
    try:
        flags = subprocess.run(
            [str(SCRIPT), "flags"], env=env, check=True, capture_output=True, text=True, timeout=30
        ).stdout.split()
        yield S3Server(flags, state / "data", env)
    finally:
        subprocess.run([str(SCRIPT), "down"], env=env, check=True, capture_output=True, timeout=60)


def filesystems_for(server: S3Server):
    """Beam's FileSystems addressed at ``server`` in this process (for setup and checks)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions(server.flags))
    return FileSystems


def put(server: S3Server, url: str, data: bytes) -> None:
    fs = filesystems_for(server)
    with fs.create(url, compression_type="uncompressed") as fh:
        fh.write(data)


def get(server: S3Server, url: str) -> bytes:
    fs = filesystems_for(server)
    with fs.open(url, compression_type="uncompressed") as fh:
        return fh.read()


def names_under(server: S3Server, prefix: str) -> list:
    fs = filesystems_for(server)
    try:
        found = fs.match([prefix.rstrip("/") + "/**"])[0].metadata_list
    except Exception:  # noqa: BLE001 - nothing there
        return []
    return sorted(m.path[len(prefix.rstrip("/")) + 1 :] for m in found)
