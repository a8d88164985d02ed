"""Files and object stores: discovery, streaming decoders, the line reader, the
planning of read units, pre-flight checks, the output directory's lock and commit,
run temp roots. May import alm_beam.core and alm_beam.config; never Beam transforms."""
