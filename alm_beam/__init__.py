"""alm_beam: NeMo Curator's ALM window curation as an Apache Beam pipeline.

``from alm_beam import CurateManifests`` gives the composite transform for
your own pipeline (docs/library.md). Importing ``alm_beam`` alone does not
import Apache Beam: the CLI starts faster that way.
"""

__version__ = "0.1.0"

_LAZY = {
    "CurateManifests": "alm_beam.beam.transforms",
    "CuratedManifests": "alm_beam.beam.transforms",
    "ManifestLine": "alm_beam.beam.transforms",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alm_beam' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
