"""``python -m alm_beam.inspect DIR``: the command; the code is alm_beam.results.inspect."""

from alm_beam.results.inspect import main

if __name__ == "__main__":
    raise SystemExit(main())
