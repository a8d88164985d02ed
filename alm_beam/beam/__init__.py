"""Thin Beam glue: composite PTransforms, DoFns and CombineFns over the core, the
pipeline graph, the Beam YAML provider. May import results, io, config and core."""
