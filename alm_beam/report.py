"""``python -m alm_beam.report DIR``: the command; the code is alm_beam.results.report."""

from alm_beam.results.report import main

if __name__ == "__main__":
    raise SystemExit(main())
