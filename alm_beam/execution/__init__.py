"""Running a pipeline: Beam flags and runner choice, Prism and job servers,
SDK worker processes and pools, signals. May import every layer below (beam, results,
io, config, core); only the entry point imports it."""
