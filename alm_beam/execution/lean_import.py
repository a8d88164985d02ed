"""Beam imported without the optional packages our pipeline never uses.

``import apache_beam`` imports pandas whenever it is installed (the ``yaml``
extra brings it): ``apache_beam.typehints`` registers type hints for pandas'
DataFrame types, and ``textio`` defines its CSV transforms. It also imports
pymongo (a dependency of Beam's) for its MongoDB connector. alm_beam's
pipeline uses none of them, and their imports cost every run about 0.4 s
(pandas: the bundled sample, 2.18 s before, 1.81 s after, one worker) and
0.1 to 0.15 s (pymongo and its bson), in the runner process and so in every
SDK worker forked from it. Beam guards each of those imports with ``except
ImportError``, so while ``unused_modules_hidden_from_beam`` is active,
``sys.modules[name] = None`` makes them skip the package (Python's documented
way to make an import fail).

Scoped, for library callers of ``alm_beam.run.main``: nothing changes if Beam
is already imported, a package the caller imported is left alone, and on exit
the entries are removed, so a later ``import pandas`` in the same process loads
it as usual.

More are hidden only where the command is the whole process (``python -m
alm_beam.run``, ``alm-beam``: nothing imports Beam there afterwards), through
``hide_more`` inside the block: pyarrow (Parquet and Arrow type hints, about
30 ms) always; and on the DirectRunner, when no path or Beam flag of the run
names a remote location, boto3 (Beam's S3 client, about 0.1 s with botocore)
and requests (which Beam's BigQuery, Pub/Sub and GCS modules import, about
0.1 s; Beam skips them all, as it does where their client libraries are not
installed; the Flink and Spark runners' jar submission uses it). In a library
caller's process Beam, once imported without them, would keep lacking them.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

HIDDEN = ("pandas", "pymongo", "bson")
HIDDEN_IN_A_WHOLE_PROCESS = ("pyarrow",)
REMOTE_CLIENTS = ("boto3", "requests")  # needed only for remote locations or other runners

_blocks: list = []  # the names each active block hid, innermost last


@contextlib.contextmanager
def unused_modules_hidden_from_beam() -> Iterator[bool]:
    """Within the block, a first import of Beam skips the ``HIDDEN`` packages
    that are not imported yet; yields whether any is hidden (False where Beam
    was imported before)."""
    if "apache_beam" in sys.modules:
        yield False
        return
    hidden: list = []
    _hide(HIDDEN, hidden)
    _blocks.append(hidden)
    try:
        yield bool(hidden)
    finally:
        _blocks.remove(hidden)
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def hide_more(names) -> list:
    """Hide ``names`` too, until the innermost active block ends; the names
    hidden (none outside a block, once Beam is imported, or for a package
    already imported)."""
    if not _blocks or "apache_beam" in sys.modules:
        return []
    added: list = []
    _hide(names, added)
    _blocks[-1].extend(added)
    return added


def _hide(names, hidden: list) -> None:
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            hidden.append(name)
