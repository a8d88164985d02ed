"""The output directory: one run at a time, only our own files removed, the result committed whole.

A run holds ``DIR`` (``--output``) through four names (see docs/output-directory.md):

* ``DIR/.alm_beam.lock``: the lock, held for the whole run. On a local
  filesystem it is an ``flock`` on that file, which the kernel releases when
  the holder dies, so a killed run's lock is stale by construction (pid reuse
  cannot fake a live holder). The file names the holder (pid, host, start
  time) for the message a second run prints. On an object store the lock is
  the file itself, checked and written through Beam's FileSystems: best effort.
* ``DIR/.alm_beam-run.json``: the run record. It names the run, its state
  (``running`` -> ``committing`` -> ``committed``, or ``failed``), its staging
  directory and, from the commit on, every final file. ``--overwrite`` deletes
  exactly what a record names, and refuses a directory that holds anything else
  or has no record; file names alone never make a file ours.
* ``DIR/.alm_beam-staging-<run id>/``: where Beam's sinks write (their own
  ``beam-temp-*`` directories included). Nothing under a final name exists
  before the commit.
* The commit, after the pipeline has succeeded: the record switches to
  ``committing`` with the list of final files, the shards are renamed into
  ``DIR``, ``summary.json`` last, then the record says ``committed`` and the
  staging directory goes.

Nothing is written through a symbolic link: the lock is opened with
``O_NOFOLLOW``, the record and its new versions are created with ``O_EXCL``
and renamed into place, and a link where the run would write (or, with
``--overwrite``, delete) is a one-line refusal naming it. A directory holding
a link is never empty. Object stores have no links.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import time
from typing import Iterable, Optional

from apache_beam.io.filesystems import FileSystems

from alm_beam.io.output_record import (
    COMMITTED,
    COMMITTING,
    FAILED,
    LOCK_NAME,
    RECORD_FORMAT,
    RECORD_NAME,
    RUNNING,
    STAGING_PREFIX,
    first_names,
    not_empty_message,
    parse_record,
)
from alm_beam.io.process_owner import ProcessOwner, owner_is_alive, this_process

SUMMARY_NAME = "summary.json"
_RECORD_TEMP = ".run-record.tmp"  # inside the staging directory, which is ours
# Test hook (never set in normal use): the named stage creates the file named by
# ALM_BEAM_TEST_PAUSE_FILE and waits until it is removed, so a test can kill the
# run at that exact point, or let it go on.
PAUSE_AT_ENV = "ALM_BEAM_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "ALM_BEAM_TEST_PAUSE_FILE"


class OutputDirError(ValueError):
    """The output directory cannot be used as asked (a user-facing, one-line problem)."""


class OutputInUse(OutputDirError):
    """Another live run holds the output directory."""


def test_pause(stage: str) -> None:
    """Pause at ``stage`` when a test asked for it (see PAUSE_AT_ENV); otherwise nothing."""
    if os.environ.get(PAUSE_AT_ENV) != stage:
        return
    marker = os.environ[PAUSE_FILE_ENV]
    with open(marker, "w") as fh:
        fh.write(str(os.getpid()))
    while os.path.exists(marker):
        time.sleep(0.02)


def _is_remote(path: str) -> bool:
    return "://" in path


def _join(directory: str, name: str) -> str:
    return FileSystems.join(directory, name)


def _entries(path: str) -> dict:
    """Names directly inside ``path`` (files and directories) -> is it a directory."""
    if not _is_remote(path):
        if not os.path.isdir(path):
            return {}
        return {
            name: os.path.isdir(os.path.join(path, name)) and not os.path.islink(os.path.join(path, name))
            for name in sorted(os.listdir(path))
        }
    prefix = path.rstrip("/") + "/"
    try:
        found = FileSystems.match([prefix + "**"])[0].metadata_list
    except Exception:  # noqa: BLE001 - an empty or missing prefix: nothing there
        return {}
    names: dict = {}
    for m in found:
        name, sep, _ = m.path[len(prefix) :].partition("/")
        if name:
            names[name] = names.get(name, False) or bool(sep)
    return dict(sorted(names.items()))


def _local_links(path: str) -> dict:
    """Symbolic links directly inside the local directory ``path``: name -> where it points."""
    links = {}
    try:
        with os.scandir(path) as found:
            for entry in found:
                if entry.is_symlink():
                    links[entry.name] = os.readlink(entry.path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return links


def _link_refused(where: str, name: str, target: str, fix: str) -> "OutputDirError":
    return OutputDirError(
        f"{where}: {name} is a symbolic link (to {target}); alm_beam never writes or deletes "
        f"through a link: remove it, or {fix}"
    )


def _create_new_local(path: str, data: bytes) -> None:
    """Write ``data`` to a new file at ``path``: never through a link, never
    into a file that is already there (O_EXCL, O_NOFOLLOW)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def replace_local_file(path: str, data: bytes, fix: str) -> None:
    """Put ``data`` at ``path`` (local) as a new file: written under a
    temporary name of its own, then renamed over ``path``. A symbolic link or a
    non-file at ``path`` is refused (OutputDirError, naming it and ``fix``)."""
    directory, name = os.path.split(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise _link_refused(directory or ".", name, os.readlink(path), fix)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputDirError(f"{path}: exists and is not a regular file; {fix}")
    temp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        _create_new_local(temp, data)
        os.rename(temp, path)  # replaces the name (even a link raced in), never writes through it
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _read_text(path: str) -> Optional[str]:
    try:
        with FileSystems.open(path) as fh:
            return fh.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - missing or unreadable: no content
        return None


def _write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as fh:
        fh.write(text.encode("utf-8"))


SETTLE_S = 5.0  # how long a removal outlasts a writer still adding files to the tree


def _delete(path: str, is_dir: bool) -> None:
    if not _is_remote(path):
        if is_dir:
            _remove_tree(path)
        else:
            os.unlink(path)
        return
    FileSystems.delete([path.rstrip("/") + "/" if is_dir else path])


def _remove_tree(path: str) -> None:
    """``shutil.rmtree`` that outlasts a writer finishing in the tree: after a
    lost job service, the job's SDK workers may still be writing their shards
    into the staging area (rmtree then fails with ENOTEMPTY). Tries again for
    up to ``SETTLE_S``; raises the last error after that."""
    import shutil

    deadline = time.monotonic() + SETTLE_S
    while True:
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            if not os.path.lexists(path):
                return
            error = None  # an entry vanished under rmtree: go again
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            error = exc
        if time.monotonic() >= deadline:
            if error is None:
                raise OSError(errno.ENOTEMPTY, "entries kept appearing", path)
            raise error
        time.sleep(0.1)


# --------------------------------------------------------------------------
# The lock


def _holder_text(owner: ProcessOwner, run_id: str) -> str:
    return json.dumps({**owner.as_dict(), "run_id": run_id}) + "\n"


def _parse_holder(text: Optional[str]) -> Optional[ProcessOwner]:
    try:
        return ProcessOwner.from_dict(json.loads(text or ""))
    except (ValueError, KeyError, TypeError):
        return None


def _holder_run_id(text: Optional[str]) -> Optional[str]:
    try:
        return json.loads(text or "").get("run_id")
    except (ValueError, AttributeError):
        return None


def _in_use(out_dir: str, holder: Optional[ProcessOwner], hint: str = "") -> OutputInUse:
    who = holder.describe() if holder else "holder not recorded yet"
    return OutputInUse(
        f"--output {out_dir}: in use by another alm_beam run ({who}); "
        f"wait for it to end or choose another --output{hint}"
    )


class OutputLock:
    """Exclusive hold on an output directory for one run (see the module docstring)."""

    def __init__(self, out_dir: str, run_id: str, fd: Optional[int], taken_over: Optional[ProcessOwner]):
        self.out_dir = out_dir
        self.path = _join(out_dir, LOCK_NAME)
        self.run_id = run_id
        self._fd = fd
        self.taken_over = taken_over  # the dead run whose lock this one replaced

    @classmethod
    def acquire(cls, out_dir: str, run_id: str) -> "OutputLock":
        if _is_remote(out_dir):
            return cls._acquire_remote(out_dir, run_id)
        return cls._acquire_local(out_dir, run_id)

    @classmethod
    def _acquire_local(cls, out_dir: str, run_id: str) -> "OutputLock":
        import fcntl

        try:
            os.makedirs(out_dir, exist_ok=True)
        except FileExistsError:
            raise OutputDirError(f"--output {out_dir}: exists and is not a directory") from None
        path = os.path.join(out_dir, LOCK_NAME)
        while True:
            # O_NOFOLLOW: a link planted at the lock's name is refused, never
            # followed (it would truncate and rewrite its target, or create it).
            try:
                fd = os.open(
                    path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644
                )
            except OSError as exc:
                if exc.errno == errno.ELOOP and os.path.islink(path):
                    raise _link_refused(
                        f"--output {out_dir}", LOCK_NAME, os.readlink(path), "choose another --output"
                    ) from None
                raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OutputDirError(
                    f"--output {out_dir}: {LOCK_NAME} exists and is not a regular file; "
                    "remove it, or choose another --output"
                )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _parse_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                os.close(fd)
                raise _in_use(out_dir, holder) from None
            # A run that releases unlinks the file while still holding it; if
            # that happened between our open and flock, ours is a dead inode.
            try:
                here, held = os.lstat(path), os.fstat(fd)
                same = (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        # Content left in a lock nobody holds is a killed run's: stale, taken over.
        taken_over = _parse_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_text(this_process(), run_id).encode("utf-8"), 0)
        return cls(out_dir, run_id, fd, taken_over)

    @classmethod
    def _acquire_remote(cls, out_dir: str, run_id: str) -> "OutputLock":
        # No create-if-absent in Beam's FileSystems: check, write, read back.
        # Two runs starting within the same moment can both pass (see the docs).
        path = _join(out_dir, LOCK_NAME)
        taken_over = None
        text = _read_text(path)
        if text is not None:
            holder = _parse_holder(text)
            alive = owner_is_alive(holder) if holder else None
            if alive is not False:
                raise _in_use(out_dir, holder, f"; if that run is gone, delete {path}")
            taken_over = holder
        _write_text(path, _holder_text(this_process(), run_id))
        written = _read_text(path)
        if _holder_run_id(written) != run_id:  # another run wrote in between: it wins
            raise _in_use(out_dir, _parse_holder(written))
        return cls(out_dir, run_id, None, taken_over)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)  # while still held: see _acquire_local
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None
            return
        if self.run_id:  # the FileSystems lock: delete it if it is still ours
            holder = _read_text(self.path)
            if holder is not None and _holder_run_id(holder) == self.run_id:
                FileSystems.delete([self.path])
            self.run_id = ""


# --------------------------------------------------------------------------
# The run record and ownership


def read_record(out_dir: str) -> Optional[dict]:
    """The run record an alm_beam run left in ``out_dir``, or None (missing or
    not ours; ``output_record.parse_record``)."""
    return parse_record(_read_text(_join(out_dir, RECORD_NAME)))


def _owned(record: dict) -> dict:
    """What a record makes ours: name -> is it a directory."""
    owned = {name: False for name in record["files"]}
    if record.get("staging"):
        owned[record["staging"]] = True
    owned[RECORD_NAME] = False
    return owned


def prepare_output_dir(path: str, overwrite: bool) -> list:
    """Refuse or clean a non-empty output directory; returns what was removed.

    Call with the directory's lock held. Only what the previous run's record
    names is removed (``summary.json`` first, the record last, so a crash here
    leaves a record that still describes what is left); anything else makes
    the whole directory refused, and nothing is deleted.
    """
    if not _is_remote(path) and os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirError(f"--output {path}: exists and is not a directory")
    entries = {n: d for n, d in _entries(path).items() if n != LOCK_NAME}
    if not entries:
        return []
    links = {} if _is_remote(path) else _local_links(path)
    if links and overwrite:
        name = sorted(links)[0]
        raise _link_refused(
            f"--output {path}", name, links[name], "choose another --output; nothing was deleted"
        )
    # a file, not a directory (nor a link: a record is ours only as a file a run made)
    has_record_file = entries.get(RECORD_NAME) is False and RECORD_NAME not in links
    record = read_record(path) if has_record_file else None
    names = list(entries)
    if not overwrite:
        raise OutputDirError(not_empty_message(path, names, record))
    if record is None:
        raise OutputDirError(
            f"--output {path}: --overwrite only removes files an alm_beam run recorded as its "
            f"own (in {RECORD_NAME}), and this directory has no such record but holds "
            f"{first_names(names)}; nothing was deleted: move those away or choose another --output"
        )
    owned = _owned(record)
    foreign = [n for n in names if owned.get(n) is None or owned[n] != entries[n]]
    if foreign:
        raise OutputDirError(
            f"--output {path}: --overwrite only removes files an alm_beam run recorded as its "
            f"own, and the directory also holds {first_names(foreign)}; nothing was deleted: "
            "move those away or choose another --output"
        )
    # The success marker first, the record last.
    ordered = sorted(names, key=lambda n: (n != SUMMARY_NAME, n == RECORD_NAME))
    for name in ordered:
        _delete(_join(path, name), entries[name])
    return ordered


# --------------------------------------------------------------------------
# One run's use of the directory


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC anywhere in the exception's chain or text (Beam re-raises a
    worker's error as text)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if os.strerror(errno.ENOSPC) in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_FULL_BELOW = 1 << 20  # free bytes under which a filesystem counts as the full one


def disk_full_where(paths: list) -> str:
    """Which of ``paths`` (local ones) sit on a full filesystem, for the error
    message; read before the partial result is removed."""
    full, checked = [], []
    for path in paths:
        if _is_remote(path):
            continue
        probe = path
        while probe and not os.path.exists(probe):
            probe = os.path.dirname(probe.rstrip("/"))
        try:
            st = os.statvfs(probe or ".")
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        checked.append(path)
        if free < _FULL_BELOW:
            full.append(f"{path}: {free:,} bytes free")
    if full:
        return "; ".join(full)
    return "while writing to " + " or ".join(checked or paths)


def _cannot_write(out_dir: str, exc: OSError) -> OutputDirError:
    return OutputDirError(
        f"--output {out_dir}: cannot write there ({exc.strerror or exc}); choose another --output"
    )


class OutputRun:
    """A run's hold on its output directory: lock, record, staging area, commit.

    ``start`` (before the pipeline) -> the sinks write into ``staging`` ->
    ``commit`` (after the pipeline succeeded) or ``abandon`` (it failed) ->
    ``release`` (always).
    """

    def __init__(self, out_dir: str, lock: OutputLock, removed: list):
        self.out_dir = out_dir
        self.lock = lock
        self.run_id = lock.run_id
        self.removed = removed
        self.staging_name = STAGING_PREFIX + self.run_id
        self.staging = _join(out_dir, self.staging_name)
        self.state = RUNNING

    @classmethod
    def start(cls, out_dir: str, overwrite: bool) -> "OutputRun":
        """Lock the directory, clean it (``--overwrite``) and record this run."""
        run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
        try:
            lock = OutputLock.acquire(out_dir, run_id)
        except OSError as exc:
            raise _cannot_write(out_dir, exc) from None
        try:
            test_pause("locked")
            removed = prepare_output_dir(out_dir, overwrite)
            run = cls(out_dir, lock, removed)
            run._write_record_first()
            if not _is_remote(out_dir):
                os.mkdir(run.staging)
            test_pause("started")
            return run
        except OSError as exc:
            lock.release()
            raise _cannot_write(out_dir, exc) from None
        except BaseException:
            lock.release()
            raise

    # -- the record --------------------------------------------------------
    def _record(self, files: Iterable[str], state: str) -> str:
        return (
            json.dumps(
                {
                    "tool": "alm_beam",
                    "format": RECORD_FORMAT,
                    "run_id": self.run_id,
                    "state": state,
                    "staging": self.staging_name,
                    "files": list(files),
                    "owner": this_process().as_dict(),
                },
                indent=2,
            )
            + "\n"
        )

    def _write_record_first(self) -> None:
        path = _join(self.out_dir, RECORD_NAME)
        if _is_remote(self.out_dir):
            _write_text(path, self._record([], RUNNING))
            return
        _create_new_local(path, self._record([], RUNNING).encode("utf-8"))

    def _write_record(self, state: str, files: list) -> None:
        """Replace the record at once: written in the staging area, renamed over it."""
        temp = _join(self.staging, _RECORD_TEMP)
        if _is_remote(self.out_dir):
            _write_text(temp, self._record(files, state))
            FileSystems.rename([temp], [_join(self.out_dir, RECORD_NAME)])
        else:
            try:
                os.unlink(temp)  # whatever is there (a link someone planted) is not followed
            except FileNotFoundError:
                pass
            _create_new_local(temp, self._record(files, state).encode("utf-8"))
            os.rename(temp, _join(self.out_dir, RECORD_NAME))
        self.state = state

    # -- commit / abandon --------------------------------------------------
    def stage(self, name: str, data: bytes) -> None:
        """Add a file of the commit step's own (report.html) to the staging area:
        a new file, never written through a link (O_EXCL, O_NOFOLLOW)."""
        path = _join(self.staging, name)
        if _is_remote(path):
            with FileSystems.create(path) as fh:
                fh.write(data)
        else:
            _create_new_local(path, data)

    def _staged_results(self) -> list:
        """The result files the sinks left in the staging area: shards in name
        order, ``summary.json`` (if written) last."""
        entries = _entries(self.staging)
        links = {} if _is_remote(self.staging) else _local_links(self.staging)  # no sink writes links
        files = sorted(
            n for n, is_dir in entries.items() if not is_dir and n != _RECORD_TEMP and n not in links
        )
        return sorted(files, key=lambda n: n == SUMMARY_NAME)

    def commit(self) -> list:
        """Move the staged result to its final names; returns them.

        Without ``summary.json`` in the staging area (the job failed its error
        budget after the shards were written) the shards are committed and the
        record says ``failed``: the rejected lines stay readable, and the
        missing ``summary.json`` still says the run did not succeed.
        """
        files = self._staged_results()
        clash = [n for n in files if n in _entries(self.out_dir)]
        if clash:  # cannot happen while the lock is held; never overwrite a file
            raise OutputDirError(
                f"--output {self.out_dir}: {first_names(clash)} appeared "
                "during the run; the result stays in " + self.staging
            )
        self._write_record(COMMITTING, files)
        for index, name in enumerate(files):
            test_pause(f"commit:{index}")
            FileSystems.rename([_join(self.staging, name)], [_join(self.out_dir, name)])
        test_pause(f"commit:{len(files)}")
        self._write_record(COMMITTED if SUMMARY_NAME in files else FAILED, files)
        _delete(self.staging, True)
        return files

    def abandon(self) -> None:
        """The pipeline failed: remove the staging area and the record (frees the disk)."""
        if self.state != RUNNING:
            return
        if _entries(self.out_dir).get(self.staging_name):
            try:
                _delete(self.staging, True)
            except OSError:
                # Still written to (a lost job's workers): the record stays,
                # naming the staging area, so the next run reports it and
                # --overwrite removes it as this tool's.
                try:
                    self._write_record(FAILED, [])
                except OSError:
                    pass  # the RUNNING record names it too
                self.state = FAILED
                return
        _delete(_join(self.out_dir, RECORD_NAME), False)
        self.state = FAILED

    def release(self) -> None:
        self.lock.release()
