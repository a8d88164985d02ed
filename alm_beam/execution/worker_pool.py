"""A Beam Python SDK worker pool that listens on one address (127.0.0.1 by default).

``python -m alm_beam.execution.worker_pool --port N [--host 127.0.0.1]`` is Beam's
``apache_beam.runners.worker.worker_pool_main`` (the EXTERNAL environment's
worker-pool service, the SDK sidecar of a Flink or Kubernetes deployment) with
three differences, each a reason this module exists:

- it binds ``--host`` only; Beam's binds ``[::]``, every interface;
- each SDK worker it starts is ``sys.executable`` (the pool's own interpreter,
  whose environment has alm_beam installed) rather than whatever ``python`` is
  first on PATH, with its stdout discarded rather than piped and never read, and
  with PDEATHSIG (set by the worker itself) so it never outlives the pool;
- every worker logs one line per bundle it processed (``alm_beam worker pid=...
  ppid=... processed bundle ...``) to the pool's log: the record of where the work ran.

``start_in_process_pool`` is the same service with the SDK harness in threads of
the calling process: Beam's LOOPBACK environment, bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from typing import Optional, Sequence

BUNDLE_LOG_PREFIX = "alm_beam worker"
_HAND_OVER_ATTEMPTS = 3  # workers tried for one StartWorker before it answers an error
_LOG = logging.getLogger("alm_beam.execution.worker_pool")


class _Spawner:
    """Starts every worker process from one thread that lives as long as the pool.

    PDEATHSIG fires when the *thread* that forked a child ends, and the gRPC
    threads that call StartWorker come and go: a worker forked from one of them
    would be killed with it.
    """

    def __init__(self):
        import queue

        self._requests = queue.Queue()
        threading.Thread(target=self._serve, name="alm_beam-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            argv, kwargs, result = self._requests.get()
            try:
                result.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result.set_exception(exc)

    def popen(self, argv: list, **kwargs) -> subprocess.Popen:
        from concurrent.futures import Future

        result = Future()
        self._requests.put((argv, kwargs, result))
        return result.result()


def _pool_class():
    from apache_beam.portability.api import beam_fn_api_pb2
    from apache_beam.runners.worker import worker_pool_main

    class LocalWorkerPool(worker_pool_main.BeamFnExternalWorkerPoolServicer):
        """Beam's pool servicer; in process mode, workers as described above.

        One spare worker process waits, Beam already imported, for the next
        StartWorker: a runner gives a worker a fixed time to connect (Prism: one
        minute), which a fresh interpreter importing Beam on a loaded machine can
        exceed.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._spare_lock = threading.Lock()
            self._spawner = _Spawner() if self._use_process else None
            self._spare = self._start_spare() if self._use_process else None

        def _start_spare(self):
            # No preexec_fn: Python code between fork and exec in this process
            # (gRPC threads) can crash the child; it sets PDEATHSIG itself.
            return self._spawner.popen(
                [
                    sys.executable,
                    "-m",
                    "alm_beam.execution.worker_pool",
                    "--harness",
                    "--parent-pid",
                    str(os.getpid()),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )

        def StartWorker(self, start_worker_request, unused_context):
            if not self._use_process:
                return super().StartWorker(start_worker_request, unused_context)
            request = {
                "control_endpoint": start_worker_request.control_endpoint.url,
                "worker_id": start_worker_request.worker_id,
                "state_cache_size": self._state_cache_size,
                "data_buffer_time_limit_ms": self._data_buffer_time_limit_ms,
            }
            try:
                worker = self._hand_over(json.dumps(request).encode() + b"\n")
                _LOG.info("starting SDK worker %s (pid %d)", start_worker_request.worker_id, worker.pid)
                self._worker_processes[start_worker_request.worker_id] = worker
                return beam_fn_api_pb2.StartWorkerResponse()
            except Exception:  # noqa: BLE001 - reported to the runner, as Beam's pool does
                return beam_fn_api_pb2.StartWorkerResponse(error=traceback.format_exc())

        def _hand_over(self, request: bytes):
            """Give ``request`` to the spare worker and start the next spare.

            A worker that has exited, or exits before it takes the request, is
            logged with its exit status and replaced: an error answer to
            StartWorker fails the job, and Prism (2.77) even exits on one.
            """
            problems = []
            for _ in range(_HAND_OVER_ATTEMPTS):
                with self._spare_lock:
                    worker, self._spare = self._spare, self._start_spare()
                try:
                    if worker.poll() is None:
                        worker.stdin.write(request)
                        worker.stdin.close()
                        return worker
                except OSError as exc:  # its end of the pipe closed: it is exiting
                    problems.append(f"{type(exc).__name__}: {exc}")
                    try:
                        worker.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        worker.kill()
                        worker.wait()
                try:
                    worker.stdin.close()  # our end of its pipe: nobody reads it now
                except OSError:
                    pass
                problem = (
                    f"SDK worker pid {worker.pid} exited with status {worker.returncode} before it took a job"
                )
                problems.append(problem)
                _LOG.warning("%s; handing the job to another", problem)
            raise RuntimeError("no SDK worker took the job: " + "; ".join(problems))

    return LocalWorkerPool


def start_pool(
    host: str = "127.0.0.1",
    port: int = 0,
    use_process: bool = True,
    state_cache_size: int = 0,
    data_buffer_time_limit_ms: int = -1,
):
    """Start the pool service; return ``("host:port", grpc_server)``."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.utils import thread_pool_executor

    server = grpc.server(
        thread_pool_executor.shared_unbounded_instance(),
        options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)],
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    pool = _pool_class()(
        use_process=use_process,
        state_cache_size=state_cache_size,
        data_buffer_time_limit_ms=data_buffer_time_limit_ms,
    )
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    server.alm_beam_pool = pool
    return f"{host}:{bound}", server


def start_in_process_pool(options):
    """Beam's LOOPBACK worker pool (SDK harness threads in this process, the same
    state cache and data buffer settings), listening on 127.0.0.1 only."""
    from apache_beam.options.pipeline_options import DebugOptions
    from apache_beam.runners.worker import sdk_worker_main

    experiments = options.view_as(DebugOptions).experiments or []
    return start_pool(
        "127.0.0.1",
        0,
        use_process=False,
        state_cache_size=sdk_worker_main._get_state_cache_size_bytes(options=options),
        data_buffer_time_limit_ms=sdk_worker_main._get_data_buffer_time_limit_ms(experiments),
    )


def run_harness(parent_pid: Optional[int] = None) -> None:
    """One SDK worker process: import Beam, wait for the pool's request (one JSON line
    on stdin; end of file: not needed, exit), then run Beam's SdkHarness for it,
    logging each bundle it processed. With ``parent_pid`` it dies with that pool."""
    if parent_pid is not None:
        from alm_beam.execution.lifetime import die_with_parent

        die_with_parent(parent_pid)
    from apache_beam.runners.worker import sdk_worker

    import alm_beam.beam.transforms  # noqa: F401 - what the pipeline's DoFns unpickle into

    line = sys.stdin.buffer.readline()
    if not line:
        return
    request = json.loads(line)
    worker_id = request["worker_id"]
    pid, parent = os.getpid(), os.getppid()
    process_bundle = sdk_worker.SdkWorker.process_bundle

    def logged_process_bundle(self, bundle_request, instruction_id):
        response = process_bundle(self, bundle_request, instruction_id)
        print(
            f"{BUNDLE_LOG_PREFIX} pid={pid} ppid={parent} worker_id={worker_id} processed "
            f"bundle {instruction_id} ({bundle_request.process_bundle_descriptor_id})",
            file=sys.stderr,
            flush=True,
        )
        return response

    sdk_worker.SdkWorker.process_bundle = logged_process_bundle
    print(
        f"{BUNDLE_LOG_PREFIX} pid={pid} ppid={parent} worker_id={worker_id} connecting to "
        f"{request['control_endpoint']}",
        file=sys.stderr,
        flush=True,
    )
    sdk_worker.SdkHarness(
        request["control_endpoint"],
        worker_id=worker_id,
        state_cache_size=request["state_cache_size"],
        data_buffer_time_limit_ms=request["data_buffer_time_limit_ms"],
    ).run()


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m alm_beam.execution.worker_pool", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--harness", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.harness:
        run_harness(args.parent_pid)
        return
    try:
        address, _server = start_pool(args.host, args.port, use_process=True)
    except (OSError, RuntimeError) as exc:
        print(
            f"alm_beam.execution.worker_pool: error: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        sys.exit(2)
    _LOG.info("SDK worker pool (pid %d) listening on %s", os.getpid(), address)
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
