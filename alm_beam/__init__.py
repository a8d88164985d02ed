"""alm_beam: NeMo Curator's ALM window curation as an Apache Beam pipeline."""

__version__ = "0.1.0"
