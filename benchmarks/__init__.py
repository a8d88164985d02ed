"""Benchmarks of alm_beam, run from the repository root (benchmarks/README.md)."""
