"""Beam imported without pandas, in the processes that run our pipeline.

``import apache_beam`` imports pandas whenever it is installed (the ``yaml``
extra brings it): ``apache_beam.typehints`` registers type hints for pandas'
DataFrame types, and ``textio`` defines its CSV transforms. alm_beam's
pipeline uses neither, and the import cost about 0.4 s of every run (the
bundled sample: 2.18 s before, 1.81 s after, one worker), in the runner
process and so in every SDK worker forked from it. Both of Beam's imports
are guarded by ``except ImportError``, so while ``pandas_hidden_from_beam`` is
active, ``sys.modules["pandas"] = None`` makes them skip pandas (Python's
documented way to make an import fail).

Scoped, for library callers of ``alm_beam.run.main``: nothing changes if
pandas or Beam is already imported, and on exit the entry is removed, so a
later ``import pandas`` in the same process loads it as usual.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

HIDDEN = "pandas"


@contextlib.contextmanager
def pandas_hidden_from_beam() -> Iterator[bool]:
    """Within the block, a first import of Beam skips pandas; yields whether
    pandas is hidden (False where pandas or Beam was imported before)."""
    if HIDDEN in sys.modules or "apache_beam" in sys.modules:
        yield False
        return
    sys.modules[HIDDEN] = None  # type: ignore[assignment]
    try:
        yield True
    finally:
        if HIDDEN in sys.modules and sys.modules[HIDDEN] is None:
            del sys.modules[HIDDEN]
