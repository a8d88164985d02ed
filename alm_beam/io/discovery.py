"""Find manifest files and plan how to read them, before the pipeline is built.

Uses Beam's FileSystems, so local paths, gs://, s3://, hdfs:// ... all work
where the matching Beam extra is installed. Runs in ``run.py`` as part of the
pre-flight checks: "no manifest matched" is reported before any pipeline
exists, and the plan (file byte ranges) is what the pipeline reads.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Iterable, NamedTuple, Optional

# Beam's filesystems are imported where they are used: importing Beam takes
# seconds, and a missing local --input is refused without it.

# .jsonl / .json, optionally compressed with any codec Beam detects by suffix.
MANIFEST_NAME = re.compile(r"\.(jsonl|json)(\.(gz|bz2|deflate|zst|zstd|xz|lzma))?$", re.I)
_GLOB_CHARS = re.compile(r"[*?\[]")

DEFAULT_SPLIT_BYTES = 64 << 20


class DiscoveryError(ValueError):
    """No usable manifest for an --input; raised before the pipeline starts."""


class ManifestFile(NamedTuple):
    path: str
    size: int
    compressed: bool


class SkippedInput(NamedTuple):
    """A path discovery found but does not read, and why (goes to summary.json)."""

    path: str
    reason: str


class Discovery(NamedTuple):
    files: list  # ManifestFile, each real file once, in discovery order
    skipped: list  # SkippedInput


class ReadRange(NamedTuple):
    """Bytes [start, end) of a manifest; lines are owned by the range they start in."""

    path: str
    start: int
    end: int  # -1: to the end of the file (compressed files are read whole)
    compressed: bool


def shown_path(path: str) -> str:
    """``path`` as outputs, records and messages show it: itself when it is
    valid UTF-8; else each byte that is not (an ``os.fsdecode`` surrogate) as
    ``\\xNN``, e.g. ``caf\\xe9.jsonl``. The file is still opened by its real
    name; only what is written about it is escaped."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_manifest_name(path: str) -> bool:
    return bool(MANIFEST_NAME.search(path))


def _is_compressed(path: str) -> bool:
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED


def _match(pattern: str) -> list:
    from apache_beam.io.filesystems import FileSystems

    try:
        result = FileSystems.match([pattern])[0]
    except Exception:  # Beam raises BeamIOError for "nothing matched" on some filesystems
        return []
    return list(result.metadata_list)


def _under_directory(path: str) -> list:
    from apache_beam.io.filesystems import FileSystems

    pattern = FileSystems.join(path.rstrip("/"), "**")
    return [m for m in _match(pattern) if is_manifest_name(m.path)]


def _is_remote(path: str) -> bool:
    return "://" in path


def _is_local_dir(path: str) -> bool:
    return not _is_remote(path) and os.path.isdir(path)


# --- local files: classified with os.stat, so a FIFO is never opened --------


def _not_regular(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return f"not a regular file: {name}"
    return "not a regular file"


def _stat_problem(path: str, exc: OSError) -> str:
    if os.path.islink(path):
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return "broken symbolic link (its target does not exist)"
    return f"cannot be read: {exc.strerror or exc}"


def _inside(real: str, directory_real: Optional[str]) -> bool:
    """``real`` is ``directory_real`` or below it (both real paths)."""
    if directory_real is None:
        return False
    return real == directory_real or real.startswith(directory_real.rstrip(os.sep) + os.sep)


_OUTPUT_REASON = "inside the --output directory (never read as input)"


class _LocalWalk:
    """One input's local files: symbolic links followed, each real directory
    entered once (so a link loop ends), the output directory never entered.

    ``files`` holds (path, (device, inode), size) of regular manifest files;
    ``skipped`` what has a manifest name but cannot be read as one.
    """

    def __init__(self, output_real: Optional[str]):
        self.output_real = output_real
        self.visited: set = set()
        self.files: list = []
        self.skipped: list = []

    def entries(self, root: str, max_depth: Optional[int] = None):
        """(path, os.stat result or OSError) of everything below ``root``,
        depth first, names sorted; ``max_depth`` levels at most (None: all)."""
        self.visited.add(os.path.realpath(root))
        stack = [(root, 1)]
        while stack:
            directory, depth = stack.pop()
            try:
                with os.scandir(directory) as it:
                    names = sorted(entry.name for entry in it)
            except OSError as exc:
                self.skipped.append(SkippedInput(directory, _stat_problem(directory, exc)))
                continue
            below = []
            for name in names:
                path = os.path.join(directory, name)
                try:
                    st = os.stat(path)
                except OSError as exc:
                    yield path, exc
                    continue
                yield path, st
                if stat.S_ISDIR(st.st_mode) and (max_depth is None or depth < max_depth):
                    real = os.path.realpath(path)
                    if real in self.visited:  # a link loop, or a directory seen already
                        continue
                    if _inside(real, self.output_real):
                        self.skipped.append(SkippedInput(path, _OUTPUT_REASON))
                        continue
                    self.visited.add(real)
                    below.append((path, depth + 1))
            stack.extend(reversed(below))

    def add(self, path: str, st) -> None:
        """Record ``path`` (a manifest name) as a file to read, or as skipped."""
        if isinstance(st, OSError):
            self.skipped.append(SkippedInput(path, _stat_problem(path, st)))
        elif _inside(os.path.realpath(path), self.output_real):
            self.skipped.append(SkippedInput(path, _OUTPUT_REASON))
        elif stat.S_ISREG(st.st_mode):
            self.files.append((path, (st.st_dev, st.st_ino), st.st_size))
        elif not stat.S_ISDIR(st.st_mode):
            self.skipped.append(SkippedInput(path, _not_regular(st.st_mode)))

    def directory(self, root: str) -> None:
        if os.path.realpath(root) in self.visited:
            return
        for path, st in self.entries(root):
            if is_manifest_name(path) and not (not isinstance(st, OSError) and stat.S_ISDIR(st.st_mode)):
                self.add(path, st)

    def glob(self, pattern: str) -> None:
        """Beam's pattern syntax (``*`` within a name, ``**`` across
        directories); a matched directory is searched like a directory input."""
        from apache_beam.io.filesystem import FileSystem

        matches = re.compile(FileSystem.translate_pattern(pattern)).match
        base = os.path.dirname(_GLOB_PREFIX.match(pattern).group(0)) or os.sep
        if not os.path.isdir(base):
            return
        depth = None
        if "**" not in pattern:  # no deeper than the pattern's own levels
            depth = pattern.count(os.sep) - base.rstrip(os.sep).count(os.sep)
        listing = _LocalWalk(self.output_real)  # its own visited set
        dirs = []
        for path, st in listing.entries(base, depth):
            if not matches(path):
                continue
            if not isinstance(st, OSError) and stat.S_ISDIR(st.st_mode):
                dirs.append(path)
            elif is_manifest_name(path):
                self.add(path, st)
        self._skip(listing.skipped)
        for path in dirs:
            if _inside(os.path.realpath(path), self.output_real):
                self._skip([SkippedInput(path, _OUTPUT_REASON)])
            else:
                self.directory(path)

    def _skip(self, items) -> None:
        self.skipped += [item for item in items if item not in self.skipped]


_GLOB_PREFIX = re.compile(r"^[^[*?]*")


def _nothing_found(raw: str, what: str, walk: "_LocalWalk") -> DiscoveryError:
    text = f"--input {raw!r}: {what}"
    if walk.skipped:
        first = walk.skipped[0]
        more = f" and {len(walk.skipped) - 1} more" if len(walk.skipped) > 1 else ""
        text += f"; skipped {first.path} ({first.reason}){more}"
    return DiscoveryError(text)


def _local_input(raw: str, path: str, output_real: Optional[str]) -> _LocalWalk:
    """The files of one local --input: an existing path is taken literally (a
    name may contain ``[``, ``*`` or ``?``); only a path that does not exist
    is a glob."""
    walk = _LocalWalk(output_real)
    if os.path.lexists(path):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise DiscoveryError(f"--input {raw!r}: {_stat_problem(path, exc)}") from None
        if stat.S_ISDIR(st.st_mode):
            walk.directory(path)
            if not walk.files:
                raise _nothing_found(
                    raw, "directory holds no .jsonl/.json manifest (searched recursively)", walk
                )
        elif stat.S_ISREG(st.st_mode):
            walk.files.append((path, (st.st_dev, st.st_ino), st.st_size))
        else:
            raise DiscoveryError(
                f"--input {raw!r}: {_not_regular(st.st_mode)}; alm_beam reads only regular files"
            )
        return walk
    if _GLOB_CHARS.search(path):
        walk.glob(path)
        if not walk.files:
            raise _nothing_found(raw, "the pattern matched no .jsonl/.json manifest", walk)
        return walk
    raise DiscoveryError(f"--input {raw!r}: no such file or directory")


def _remote_input(raw: str, path: str) -> list:
    """Beam FileSystems metadata of one remote --input (gs://, s3://, ...)."""
    from apache_beam.io.filesystems import FileSystems

    literal = not _GLOB_CHARS.search(path)
    if not literal:
        try:
            literal = FileSystems.exists(path)
        except Exception:  # an unusable pattern for this filesystem: try it as a glob
            literal = False
    if not literal:
        files = [m for m in _match(path) if is_manifest_name(m.path)]
        if not files:
            raise DiscoveryError(f"--input {raw!r}: the pattern matched no .jsonl/.json manifest")
        return files
    if not _GLOB_CHARS.search(path):
        exact = [m for m in _match(path) if m.path.rstrip("/") == path.rstrip("/")]
    else:
        exact = [FileSystems.get_filesystem(path).metadata(path)]
    if exact:
        return exact
    under = _under_directory(path)
    if under:  # an object-store "directory" prefix
        return under
    raise DiscoveryError(f"--input {raw!r}: no such file or directory")


def _local_real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def check_output_outside_inputs(inputs: Iterable[str], output_dir: str) -> None:
    """Refuse an --output inside (or equal to) an --input directory, or an
    --input inside --output: the next run would read the output back as
    input, and ``--overwrite`` would delete the input being read.

    Local paths are compared as real paths (symbolic links resolved); remote
    ones by prefix. A glob input is not refused: discovery skips whatever it
    matches inside the output directory.
    """
    out = output_dir.rstrip("/") or "/"
    out_real = None if _is_remote(out) else _local_real(out)
    for raw in inputs:
        path = os.path.expanduser(raw)
        if _is_remote(path) != _is_remote(out):
            continue
        if _is_remote(path):
            from apache_beam.io.filesystems import FileSystems

            if not _GLOB_CHARS.search(path) or FileSystems.exists(path):
                inp = path.rstrip("/")
                if out == inp or out.startswith(inp + "/") or inp.startswith(out + "/"):
                    raise DiscoveryError(
                        f"--output {output_dir!r} overlaps --input {raw!r}: choose an output "
                        "location outside the input (and no input inside the output)"
                    )
            continue
        if not os.path.lexists(path):
            continue  # a glob: its matches inside the output are skipped
        real = os.path.realpath(path)
        if os.path.isdir(real) and _inside(out_real, real):
            raise DiscoveryError(
                f"--output {output_dir!r} is inside --input directory {raw!r}: a later run "
                "would read the output back as input; choose an output directory outside it"
            )
        if _inside(real, out_real):
            raise DiscoveryError(
                f"--input {raw!r} is inside --output {output_dir!r}: --overwrite would delete "
                "it; move the input or choose another output directory"
            )


def _check_opens(raw: str, path: str) -> None:
    """A local manifest can be opened for reading now (``O_NONBLOCK``: never
    waits), or DiscoveryError naming it: found before the pipeline, not as a
    failed job."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DiscoveryError(
            f"--input {raw!r}: {shown_path(path)} cannot be read: {exc.strerror or exc}"
        ) from None
    os.close(fd)


def find_inputs(inputs: Iterable[str], output_dir: Optional[str] = None) -> Discovery:
    """Expand every --input (file, directory or glob) into manifest files.

    Directories, and directories matched by a glob, are searched recursively
    (following symbolic links, each real directory once) for ``.jsonl``/
    ``.json`` (any case, optionally compressed); other files there are
    ignored. A file named explicitly is read whatever its name. An existing
    path is taken literally; only one that does not exist is a glob. Each
    real file (device and inode: symbolic and hard links alike) is read once,
    named by the smallest of the paths that reached it (so names, and window
    ids, do not depend on the order of the inputs), in the order it was first
    found. A local file that cannot be opened is a DiscoveryError. Manifest-named
    entries that are not regular files (FIFOs, sockets, devices, broken
    links) and anything inside ``output_dir`` are not read: they are returned
    in ``skipped``. With ``output_dir``, ``check_output_outside_inputs``
    runs first.
    """
    found: dict = {}  # (device, inode) (local) or path (remote) -> ManifestFile
    skipped: list = []
    inputs = list(inputs)
    if not inputs:
        raise DiscoveryError("no --input given")
    out_real = None
    if output_dir is not None:
        check_output_outside_inputs(inputs, output_dir)
        if not _is_remote(output_dir):
            out_real = _local_real(output_dir)
    for raw in inputs:
        path = os.path.expanduser(raw)
        if _is_remote(path):
            for m in sorted(_remote_input(raw, path), key=lambda m: m.path):
                if m.path not in found:
                    found[m.path] = ManifestFile(m.path, m.size_in_bytes, _is_compressed(m.path))
            continue
        # Local paths are made absolute: they end up in every output entry
        # (manifest_filepath) and in error records, read long after the run.
        walk = _local_input(raw, os.path.abspath(path), out_real)
        for file_path, identity, size in sorted(walk.files):
            held = found.get(identity)
            if held is None:
                _check_opens(raw, file_path)
            if held is None or file_path < held.path:
                found[identity] = ManifestFile(file_path, size, _is_compressed(file_path))
        skipped += [s for s in walk.skipped if s not in skipped]
    return Discovery(list(found.values()), skipped)


def discover(inputs: Iterable[str], output_dir: Optional[str] = None) -> list[ManifestFile]:
    """The manifest files of ``find_inputs`` (see there)."""
    return find_inputs(inputs, output_dir).files


def plan_ranges(files: Iterable[ManifestFile], split_bytes: int = DEFAULT_SPLIT_BYTES) -> list[ReadRange]:
    """Cut uncompressed files into byte ranges so big files are read in parallel.

    Compressed files cannot be seeked into and are read whole.
    """
    ranges = []
    for f in files:
        if f.compressed or f.size <= split_bytes:
            ranges.append(ReadRange(f.path, 0, -1, f.compressed))
            continue
        for start in range(0, f.size, split_bytes):
            end = min(start + split_bytes, f.size)
            ranges.append(ReadRange(f.path, start, -1 if end >= f.size else end, False))
    return ranges
