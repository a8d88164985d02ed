"""Beam's Flink and Spark job servers, as alm_beam runs them for ``--runner
FlinkRunner`` and ``--runner SparkRunner``.

Beam's Python FlinkRunner/SparkRunner download a job-server jar when none is
given, start it with ``java -jar`` and stop it in an ``atexit`` handler that
alm_beam's quick exit never reaches (the java process was left running after
the CLI exited). Here, as for Prism (``runners``):

- the jar is the one ``bash pipelines/flink.sh install`` / ``spark.sh install``
  built from Beam's published sources (``job_server_jar_path``), or the local
  file ``--flink_job_server_jar`` / ``--spark_job_server_jar`` names; never a URL;
- the job server is our child process with ``PR_SET_PDEATHSIG``, so the kernel
  kills it when the CLI dies however it dies, and it is stopped explicitly when
  the run ends; its job and artifact ports are picked free (Beam's Java gRPC
  servers listen on every interface: ``--job-host`` only names the address
  clients are given), it starts no expansion service, its temporary and
  artifact files live in the run's temp root, and its log goes to
  ``~/.local/state/alm_beam/<engine>-job-server.log``;
- the run is then an ordinary portable job against that endpoint.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import NamedTuple, Optional

from alm_beam.core.params import ConfigError

# The Java side of Beam that the job servers are built from (pipelines/job-servers/pom.xml).
JOB_SERVER_BEAM_VERSION = "2.70.0"
JOB_SERVER_READY_TIMEOUT_S = 180.0  # a JVM starting on a loaded 2-core machine


class Engine(NamedTuple):
    key: str  # runner_key of the Beam runner
    runner: str  # Beam's runner name
    part: str  # cache directory of the built jar
    jar: str  # its file name
    script: str  # the launcher that builds it
    jar_option: str  # Beam's option naming a jar
    master_flag: str  # the job server's flag for the cluster


ENGINES = {
    "flink": Engine(
        "flink",
        "FlinkRunner",
        "flink-job-server",
        f"beam-runners-flink-1.19-job-server-{JOB_SERVER_BEAM_VERSION}.jar",
        "flink.sh",
        "flink_job_server_jar",
        "--flink-master",
    ),
    "spark": Engine(
        "spark",
        "SparkRunner",
        "spark-job-server",
        f"beam-runners-spark-3-job-server-{JOB_SERVER_BEAM_VERSION}.jar",
        "spark.sh",
        "spark_job_server_jar",
        "--spark-master-url",
    ),
}


def cache_root() -> str:
    """``$ALM_BEAM_CACHE``, else ``~/.cache/alm_beam``: built parts, by version."""
    return os.environ.get("ALM_BEAM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "alm_beam")


def job_server_jar_path(engine: Engine) -> str:
    """Where ``pipelines/<engine>.sh install`` puts the job server it builds."""
    return os.path.join(cache_root(), engine.part, JOB_SERVER_BEAM_VERSION, engine.jar)


def state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "alm_beam")


def java_binary() -> Optional[str]:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def _engine_options(engine: Engine, options):
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, SparkRunnerOptions

    return options.view_as(FlinkRunnerOptions if engine.key == "flink" else SparkRunnerOptions)


def resolve_job_server_jar(engine: Engine, options) -> str:
    """The local job-server jar to run; a ConfigError (one line, exit 2) naming the fix."""
    given = getattr(_engine_options(engine, options), engine.jar_option)
    flag = f"--{engine.jar_option}"
    if given:
        if "://" in given:
            raise ConfigError(
                f"{flag} {given}: alm_beam never downloads a job server; give the path of a "
                f"local jar, or build one with `bash pipelines/{engine.script} install`"
            )
        path = os.path.expanduser(given)
        if not os.path.isfile(path):
            raise ConfigError(f"{flag} {given}: no such file")
        jar = path
    else:
        jar = job_server_jar_path(engine)
        if not os.path.isfile(jar):
            raise ConfigError(
                f"--runner {engine.runner}: no job server at {jar}; build it with "
                f"`bash pipelines/{engine.script} install` (needs Java 17 and Maven), "
                f"or pass {flag} PATH"
            )
    if java_binary() is None:
        raise ConfigError(
            f"--runner {engine.runner}: Java is not installed (no java on PATH, no JAVA_HOME); "
            "Beam's job server needs Java 17"
        )
    return jar


def master_of(engine: Engine, options) -> str:
    """The cluster the job server submits to. Beam's defaults (``[auto]`` for Flink,
    ``local[4]`` for Spark) run an embedded engine inside the job server."""
    opts = _engine_options(engine, options)
    if engine.key == "flink":
        master = (opts.flink_master or "[auto]").strip()
        # The job server takes host:port (Beam's Python side adds http:// for its own use).
        for scheme in ("http://", "https://"):
            if master.startswith(scheme):
                master = master[len(scheme) :]
        return master
    return opts.spark_master_url or "local[4]"


def job_server_argv(engine: Engine, jar: str, master: str, ports: tuple, artifacts_dir: str) -> list:
    job_port, artifact_port = ports
    return [
        java_binary() or "java",
        f"-Djava.io.tmpdir={tempfile.gettempdir()}",
        "-jar",
        jar,
        "--job-host",
        "127.0.0.1",
        "--job-port",
        str(job_port),
        "--artifact-port",
        str(artifact_port),
        # -1: no Java expansion service (alm_beam uses no cross-language transform)
        "--expansion-port",
        "-1",
        "--artifacts-dir",
        artifacts_dir,
        engine.master_flag,
        master,
    ]


def start_job_server(engine: Engine, jar: str, master: str):
    """Start the job server; return ``(ChildProcess, "127.0.0.1:<job port>", log path)``
    once its job service accepts connections."""
    from alm_beam.execution.lifetime import ChildProcess, free_port, port_accepts

    ports = (free_port(), free_port())
    artifacts = tempfile.mkdtemp(prefix=f"{engine.key}-artifacts-")
    os.makedirs(state_dir(), exist_ok=True)
    log_path = os.path.join(state_dir(), f"{engine.key}-job-server.log")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    log_fd = os.open(log_path, flags, 0o600)
    env = dict(os.environ)
    if engine.key == "spark":
        env["SPARK_LOCAL_IP"] = "127.0.0.1"  # else Spark's driver binds the host's address
    try:
        child = ChildProcess(
            job_server_argv(engine, jar, master, ports, artifacts),
            stdout=log_fd,
            stderr=log_fd,
            env=env,
        )
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + JOB_SERVER_READY_TIMEOUT_S
    while not port_accepts("127.0.0.1", ports[0]):
        if not child.alive():
            raise RuntimeError(
                f"{engine.runner}'s job server exited with status {child.process.returncode} "
                f"before serving (its log: {log_path})"
            )
        if time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(
                f"{engine.runner}'s job server did not serve within "
                f"{JOB_SERVER_READY_TIMEOUT_S:.0f} s (its log: {log_path})"
            )
        time.sleep(0.05)
    return child, f"127.0.0.1:{ports[0]}", log_path


def announce(engine: Engine, child, endpoint: str, master: str, log_path: str) -> None:
    print(
        f"alm_beam: {engine.runner}: Beam's job server (pid {child.pid}) at {endpoint}, "
        f"cluster {master}, log {log_path}",
        file=sys.stderr,
    )
