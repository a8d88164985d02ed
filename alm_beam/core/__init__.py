"""The per-entry logic: validation, the window builder, the overlap filter,
training lines, per-entry statistics. Pure Python: imports no Beam, no I/O and no other alm_beam layer."""
