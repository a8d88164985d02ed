"""What a run reports: summary.json, report.html, progress lines, inspect.
May import alm_beam.io, alm_beam.config and alm_beam.core; never the pipeline or runners."""
