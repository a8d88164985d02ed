"""Runner handling for the CLI: which runners are refused, where Prism comes from, and
how long the Prism process we start may live.

Beam's own PrismRunner downloads a Prism binary from the internet when it has none,
and starts it as a child process that Beam stops only in an ``atexit`` handler.
alm_beam's CLI ends with ``os._exit`` (no ``atexit``), and this project never
downloads anything at run time, so for ``--runner PrismRunner`` alm_beam does the
job server's part itself:

- the binary is the one ``pipelines/prism.sh build`` built from Beam's Go module at
  the installed apache-beam version (``prism_binary_path``), or ``--prism_location``
  when that names a local file; never a URL;
- Prism is started by ``start_prism`` with ``PR_SET_PDEATHSIG`` (Linux), so the
  kernel kills it when the CLI process dies, however it dies (normal exit,
  exception, Ctrl-C, SIGTERM, SIGKILL); it is also stopped explicitly when the run
  ends, and exits on its own after ``PRISM_IDLE_SHUTDOWN`` without a job (the
  safety net where PDEATHSIG does not exist);
- the SDK harness runs in this process, as with Beam's LOOPBACK environment, but
  behind a worker-pool endpoint bound to 127.0.0.1 (``alm_beam.execution.worker_pool``)
  instead of Beam's ``[::]``.

Prism itself listens on all interfaces: its job service calls
``net.Listen("tcp", ":<job_port>")`` and has no flag for the address (Beam 2.77).
Its web UI, which binds ``localhost`` only, is turned off here.
"""

from __future__ import annotations

import os
import sys
import time
from importlib import metadata
from typing import Optional

from alm_beam.core.params import ConfigError
from alm_beam.execution.job_servers import (
    ENGINES,
    announce,
    cache_root,
    master_of,
    resolve_job_server_jar,
    start_job_server,
)
from alm_beam.execution.lifetime import (  # noqa: F401 - re-exported
    ChildProcess,
    die_with_parent,
    free_port,
    port_accepts,
)

PRISM_MODULE = "github.com/apache/beam/sdks/v2/go/cmd/prism"
PRISM_IDLE_SHUTDOWN = "5m"  # Prism exits on its own after this long without a job
PRISM_READY_TIMEOUT_S = 60.0

# What Beam's DaskRunner (2.77) was measured to do with this pipeline (issue 11).
DASK_REFUSAL = (
    "--runner DaskRunner is refused: Beam's Dask runner (apache-beam {beam}) is a "
    "prototype that loses data silently (ReadFromText fails, the tagged outputs of a "
    "multi-output ParDo are merged, only the last sink runs, WriteToText with default "
    "sharding writes an empty file and exits 0, Reshuffle is a no-op); use "
    "DirectRunner, PrismRunner, FlinkRunner, SparkRunner or DataflowRunner "
    "(see docs/runners.md, section Dask)"
)


def runner_key(runner_name: Optional[str]) -> str:
    """Beam's runner lookup, reduced to a key: ``PrismRunner``, ``prism`` and
    ``apache_beam.runners.portability.prism_runner.PrismRunner`` are all ``prism``."""
    if not runner_name:
        return ""
    key = str(runner_name).rsplit(".", 1)[-1].lower()
    return key[: -len("runner")] if key.endswith("runner") and key != "runner" else key


def beam_version() -> str:
    """The installed apache-beam version, without importing Beam."""
    return metadata.version("apache-beam")


def prism_binary_path(version: Optional[str] = None) -> str:
    """Where ``pipelines/prism.sh build`` puts Prism for apache-beam ``version``."""
    return os.path.join(cache_root(), "prism", version or beam_version(), "prism")


def check_runner_supported(options) -> None:
    """Before any pipeline exists: refuse a runner known to lose this pipeline's data,
    and make sure ``--runner PrismRunner`` has a local Prism binary to run."""
    from apache_beam.options.pipeline_options import PortableOptions, PrismRunnerOptions, StandardOptions

    key = runner_key(options.view_as(StandardOptions).runner)
    if key == "dask":
        raise ConfigError(DASK_REFUSAL.format(beam=beam_version()))
    if key == "prism" and not options.view_as(PortableOptions).job_endpoint:
        resolve_prism_binary(options.view_as(PrismRunnerOptions).prism_location)
    if key in ENGINES and not options.view_as(PortableOptions).job_endpoint:
        resolve_job_server_jar(ENGINES[key], options)


def resolve_prism_binary(prism_location: Optional[str]) -> str:
    """The local Prism binary to run; a ConfigError (one line, exit 2) naming the fix."""
    if prism_location:
        if "://" in prism_location:
            raise ConfigError(
                f"--prism_location {prism_location}: alm_beam never downloads Prism; give "
                "the path of a local binary, or build one with `bash pipelines/prism.sh build`"
            )
        path = os.path.expanduser(prism_location)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ConfigError(f"--prism_location {prism_location}: not an executable file")
        return path
    path = prism_binary_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ConfigError(
            f"--runner PrismRunner: no Prism binary at {path}; build it with "
            "`bash pipelines/prism.sh build` (needs Go), or pass --prism_location PATH"
        )
    return path


def start_prism(
    binary: str,
    job_port: Optional[int] = None,
    web_port: Optional[int] = None,
    log_level: str = "warn",
    idle_shutdown: str = PRISM_IDLE_SHUTDOWN,
    **popen_kwargs,
) -> tuple:
    """Start Prism's job service; return ``(ChildProcess, "localhost:<port>")`` once it
    accepts connections. ``web_port=None`` turns the web UI off."""
    job_port = job_port or free_port()
    argv = [
        binary,
        f"--job_port={job_port}",
        f"--log_level={log_level}",
        "--log_kind=text",
        f"--idle_shutdown_timeout={idle_shutdown}",
    ]
    argv += [f"--web_port={web_port}"] if web_port else ["--serve_http=false"]
    child = ChildProcess(argv, **popen_kwargs)
    deadline = time.monotonic() + PRISM_READY_TIMEOUT_S
    while not port_accepts("127.0.0.1", job_port):
        if not child.alive():
            raise RuntimeError(
                f"Prism ({binary}) exited with status {child.process.returncode} "
                f"before serving on port {job_port}"
            )
        if time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(
                f"Prism ({binary}) did not serve on port {job_port} within {PRISM_READY_TIMEOUT_S:.0f} s"
            )
        time.sleep(0.02)
    return child, f"localhost:{job_port}"


# Servers started for this run; ``stop_started`` ends them (run.main's finally).
_STARTED: list = []


def prepare_runner(options) -> None:
    """For ``--runner PrismRunner``, ``FlinkRunner`` or ``SparkRunner`` without
    ``--job_endpoint``: start our Prism or Beam's job server for the engine
    (``job_servers``), and, unless an environment is given, an in-process worker
    pool on 127.0.0.1; point ``options`` at them.

    Every other runner is left to Beam unchanged. Call from the main thread, after
    every user error has been reported; ``stop_started`` undoes it.
    """
    from apache_beam.options.pipeline_options import PortableOptions, PrismRunnerOptions, StandardOptions

    key = runner_key(options.view_as(StandardOptions).runner)
    if key != "prism" and key not in ENGINES:
        return
    portable = options.view_as(PortableOptions)
    if portable.job_endpoint:  # the user's own job service (Prism, a job server)
        return
    if key == "prism":
        binary = resolve_prism_binary(options.view_as(PrismRunnerOptions).prism_location)
        child, endpoint = start_prism(binary)
        _STARTED.append(child.stop)
        print(
            f"alm_beam: PrismRunner: Prism {binary} (pid {child.pid}) serving jobs at {endpoint}",
            file=sys.stderr,
        )
    else:
        engine = ENGINES[key]
        jar = resolve_job_server_jar(engine, options)
        master = master_of(engine, options)
        child, endpoint, log_path = start_job_server(engine, jar, master)
        _STARTED.append(child.stop)
        announce(engine, child, endpoint, master, log_path)
    portable.job_endpoint = endpoint
    if not portable.environment_type:
        # Beam's LOOPBACK, but listening on 127.0.0.1 rather than on every interface.
        from alm_beam.execution.worker_pool import start_in_process_pool

        address, server = start_in_process_pool(options)
        _STARTED.append(lambda: server.stop(0))
        portable.environment_type = "EXTERNAL"
        portable.environment_config = address


def stop_started() -> None:
    """Stop what ``prepare_runner`` started, newest first; safe to call twice."""
    while _STARTED:
        stop = _STARTED.pop()
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - clean-up must reach every server
            print(f"alm_beam: warning: stopping a runner service failed: {exc}", file=sys.stderr)


def lost_job_service(exc: BaseException, options) -> Optional[str]:
    """The one-line reason when ``exc`` says the job service went away mid-run
    (gRPC UNAVAILABLE: the service exited or the network dropped), else None.

    Beam raises gRPC's own error object, whose text is a multi-line dump; a
    user needs the endpoint and the cause, and where to look next.
    """
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpc comes with apache-beam
        return None
    if not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return None
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    from apache_beam.options.pipeline_options import PortableOptions

    endpoint = options.view_as(PortableOptions).job_endpoint
    where = f" at {endpoint}" if endpoint else ""
    details = (exc.details() or "").strip().splitlines()
    return (
        f"the job service{where} stopped answering during the run "
        f"({details[0] if details else 'unavailable'}); the job service's own log says why"
    )


def _cancelled_rpc(exc) -> bool:
    """A gRPC stream the other side closed (CANCELLED): how an engine ends an SDK
    harness's data and control streams when it is done with them."""
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpc comes with apache-beam
        return False
    if not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return False
    try:
        return exc.code() == grpc.StatusCode.CANCELLED
    except Exception:  # noqa: BLE001 - a half-built error object: not ours to judge
        return False


def _not_a_cancelled_stream(record) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not _cancelled_rpc(exc)


def install_quiet_job_stream_threads() -> None:
    """Beam's PortableRunner reads the job's message stream in a thread that dumps
    a traceback when the job service goes away; the main thread reports that
    loss in one line (``lost_job_service``), so the thread's copy is dropped.

    The SDK harness that runs in this process (our in-process worker pool) has
    threads that dump tracebacks, and a data-plane logger that logs one, when the
    engine closes their streams (CANCELLED: Spark does so between stages); the
    job's outcome is what the CLI reports, so those are dropped too."""
    import logging
    import threading

    logging.getLogger("apache_beam.runners.worker.data_plane").addFilter(_not_a_cancelled_stream)
    previous = threading.excepthook

    def hook(args) -> None:
        thread = getattr(args, "thread", None)
        if thread is not None and thread.name == "wait_until_finish_read":
            try:
                import grpc

                if isinstance(args.exc_value, grpc.RpcError):
                    return
            except ImportError:  # pragma: no cover
                pass
        if _cancelled_rpc(args.exc_value):
            return
        previous(args)

    threading.excepthook = hook


def job_states(endpoint: str, timeout: float = 10.0) -> list:
    """``[(job_id, job_name, state name)]`` from a job service's JobService.GetJobs
    (Prism keeps finished jobs): how a job's end state is read from outside."""
    import grpc
    from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_job_api_pb2_grpc.JobServiceStub(channel)
        response = stub.GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=timeout)
    return [
        (info.job_id, info.job_name, beam_job_api_pb2.JobState.Enum.Name(info.state))
        for info in response.job_info
    ]


def main(argv: Optional[list] = None) -> int:
    """``python -m alm_beam.execution.runners prism-path|beam-version|jobs ENDPOINT``."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["prism-path"]:
        print(prism_binary_path())
        return 0
    if args == ["beam-version"]:
        print(beam_version())
        return 0
    if len(args) == 2 and args[0] == "jobs":
        for job_id, name, state in job_states(args[1]):
            print(f"{job_id}\t{name}\t{state}")
        return 0
    print(
        "usage: python -m alm_beam.execution.runners prism-path|beam-version|jobs HOST:PORT", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
