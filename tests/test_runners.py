"""Runner choice: DaskRunner refused before any pipeline, PrismRunner without a local
binary refused with the command that builds one (never a download)."""

from __future__ import annotations

import os

import pytest
from conftest import FIXTURES
from runner_helpers import run_cli

from alm_beam.execution.runners import prism_binary_path, runner_key


@pytest.mark.parametrize(
    "name, key",
    [
        ("PrismRunner", "prism"),
        ("prism", "prism"),
        ("apache_beam.runners.portability.prism_runner.PrismRunner", "prism"),
        ("DaskRunner", "dask"),
        ("apache_beam.runners.dask.dask_runner.DaskRunner", "dask"),
        ("daskrunner", "dask"),
        ("DirectRunner", "direct"),
        (None, ""),
    ],
)
def test_runner_key_follows_beams_lookup(name, key):
    assert runner_key(name) == key


def _error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("alm_beam: error:")]


@pytest.mark.e2e
@pytest.mark.parametrize("runner", ["DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_dask_is_refused_before_the_pipeline(runner, tmp_path):
    out = tmp_path / "out"
    done = run_cli(
        ["--runner", runner, "--input", str(FIXTURES / "sample_input.jsonl"), "--output", str(out)],
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = _error_lines(done.stderr)
    assert "--runner DaskRunner is refused" in line
    assert "WriteToText with default sharding writes an empty file and exits 0" in line
    assert "docs/runners.md" in line
    assert done.stderr.strip() == line
    assert not out.exists()


@pytest.mark.e2e
def test_prism_without_a_binary_names_the_build_command(tmp_path):
    env = dict(os.environ, ALM_BEAM_CACHE=str(tmp_path / "empty_cache"))
    done = run_cli(
        [
            "--runner",
            "PrismRunner",
            "--input",
            str(FIXTURES / "sample_input.jsonl"),
            "--output",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 2
    [line] = _error_lines(done.stderr)
    assert done.stderr.strip() == line
    assert "bash pipelines/prism.sh build" in line
    assert str(tmp_path / "empty_cache") in line
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_prism_location_url_is_refused_not_downloaded(tmp_path):
    done = run_cli(
        [
            "--runner",
            "PrismRunner",
            "--prism_location",
            "https://github.com/apache/beam/releases/tag/v2.77.0",
            "--input",
            str(FIXTURES / "sample_input.jsonl"),
            "--output",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 2
    [line] = _error_lines(done.stderr)
    assert "never downloads Prism" in line
    assert done.stderr.strip() == line


def test_prism_binary_path_is_keyed_by_the_beam_version(monkeypatch, tmp_path):
    monkeypatch.setenv("ALM_BEAM_CACHE", str(tmp_path))
    assert prism_binary_path("2.77.0") == str(tmp_path / "prism" / "2.77.0" / "prism")


def test_lost_job_service_names_the_endpoint_and_only_for_unavailable():
    import grpc
    from apache_beam.options.pipeline_options import PipelineOptions

    from alm_beam.execution.runners import lost_job_service

    class Failed(grpc.RpcError):
        def __init__(self, code, details):
            self._code, self._details = code, details

        def code(self):
            return self._code

        def details(self):
            return self._details

    options = PipelineOptions(["--job_endpoint", "localhost:18073"])
    gone = Failed(grpc.StatusCode.UNAVAILABLE, "Socket closed\nmore")
    assert lost_job_service(gone, options) == (
        "the job service at localhost:18073 stopped answering during the run (Socket closed); "
        "the job service's own log says why"
    )
    assert lost_job_service(gone, PipelineOptions([])).startswith(
        "the job service stopped answering during the run (Socket closed)"
    )
    assert lost_job_service(Failed(grpc.StatusCode.INTERNAL, "boom"), options) is None
    assert lost_job_service(RuntimeError("UNAVAILABLE"), options) is None


def test_a_cancelled_harness_stream_prints_no_traceback():
    """The in-process SDK harness's threads raise gRPC CANCELLED when the engine
    closes their streams (Spark, between stages): no traceback for that; any other
    exception in a thread still reaches the previous hook (which prints it)."""
    import logging
    import threading

    import grpc

    from alm_beam.execution import runners

    class Cancelled(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.CANCELLED

    reached = []
    previous = threading.excepthook
    threading.excepthook = lambda args: reached.append(type(args.exc_value).__name__)
    try:
        runners.install_quiet_job_stream_threads()

        def raising(exc):
            def run():
                raise exc

            thread = threading.Thread(target=run, name="read_grpc_client_inputs")
            thread.start()
            thread.join()

        raising(Cancelled())
        raising(ValueError("a real problem"))
        assert reached == ["ValueError"]
        logger = logging.getLogger("apache_beam.runners.worker.data_plane")
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "Failed", (), (Cancelled, Cancelled(), None)
        )
        assert not logger.filter(record)
    finally:
        threading.excepthook = previous
