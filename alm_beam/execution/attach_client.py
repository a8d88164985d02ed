"""The SDK worker command of a DirectRunner ``multi_processing`` run: hand the
worker's environment to a warm worker (``direct_workers.WarmWorkerPool``).

Beam's FnApiRunner starts each SDK worker as a shell command and waits for it
to exit. With a warm pool, that command only has to pass on its environment
(the runner's control and logging endpoints, the pipeline options) over the
worker's Unix socket and wait for its exit status, so it imports nothing but
the standard library and runs as ``python -I -S`` (no site-packages, no
``alm_beam`` package import): about 10 ms instead of about 90 ms, paid once
per worker before the job's first stage can start.

With no warm worker free (the pool is full or gone) it becomes a whole worker
itself: ``exec`` of ``python -m alm_beam.execution.direct_workers``, with the
same environment.
"""

from __future__ import annotations

import os
import socket
import sys
import time

SOCKET_NAME = "worker-{}.sock"
FREE_NAME = "worker-{}.free"  # exists while worker {} is unclaimed; holds its pid
TAKEN_NAME = "worker-{}.taken"
ATTACH_TIMEOUT_S = 120.0  # a warm worker still importing after this is given up
POLL_S = 0.005
WORKER_MODULE = "alm_beam.execution.direct_workers"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")
    except (OSError, ValueError):
        pass
    try:  # no /proc: existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(pool_dir: str):
    """Take an unclaimed warm worker: (socket path, pid), or None."""
    try:
        names = sorted(os.listdir(pool_dir))
    except OSError:
        return None
    for name in names:
        if not name.endswith(".free"):
            continue
        index = name[len("worker-") : -len(".free")]
        free = os.path.join(pool_dir, name)
        taken = os.path.join(pool_dir, TAKEN_NAME.format(index))
        try:
            with open(free, "rb") as fh:
                pid = int(fh.read() or 0)
            os.rename(free, taken)  # atomic: exactly one client wins
        except (OSError, ValueError):
            continue
        return os.path.join(pool_dir, SOCKET_NAME.format(index)), pid
    return None


def connect(sock_path: str, pid: int):
    """Connect once the worker listens; None if it died or never got there."""
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while time.monotonic() < deadline and pid_alive(pid):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(sock_path)
            return client
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()
            time.sleep(POLL_S)
    return None


def encode_environ(environ) -> bytes:
    """``NAME=value`` records, each ended by NUL (neither a name nor a value can hold one)."""
    return b"".join(name + b"=" + value + b"\0" for name, value in environ.items())


def decode_environ(data: bytes) -> dict:
    """The inverse of ``encode_environ``, as ``str`` (the filesystem encoding, as ``os.environ``)."""
    environ = {}
    for record in data.split(b"\0")[:-1]:
        name, _, value = record.partition(b"=")
        environ[os.fsdecode(name)] = os.fsdecode(value)
    return environ


def _receive_all(conn) -> bytes:
    chunks = []
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def hand_over(client) -> int:
    """Send this process's environment, then wait for the worker's exit status."""
    with client:
        client.sendall(encode_environ(os.environb))
        client.shutdown(socket.SHUT_WR)
        reply = _receive_all(client).strip()
    return int(reply) if reply.isdigit() else 1


def receive_environ(conn) -> dict:
    """The warm worker's side of ``hand_over``: the client's environment."""
    return decode_environ(_receive_all(conn))


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -I -S attach_client.py POOL_DIR\n")
        sys.exit(2)
    claimed = claim(args[0])
    client = connect(*claimed) if claimed else None
    if client is None:  # no warm worker: be the worker
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", WORKER_MODULE])  # does not return
        return
    sys.exit(hand_over(client))


if __name__ == "__main__":
    main()
