"""alm_beam's curation inside your own Beam pipeline (docs/library.md).

    python pipelines/library_example.py --input 'manifests/*.jsonl' --output /tmp/curated \
        [Beam flags, e.g. --runner DirectRunner]

Writes <output>-windows*.jsonl, <output>-errors*.jsonl, <output>-train*.jsonl
(the training lines) and <output>-stats.json (summary.json's totals: lines read,
blank lines, entries, windows, ...).
"""

import argparse
import json

import apache_beam as beam
from apache_beam.coders import BytesCoder

from alm_beam import CurateManifests


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True, help="manifest file or glob (any Beam filesystem)")
    parser.add_argument("--output", required=True, help="output prefix")
    args, beam_args = parser.parse_known_args(argv)

    with beam.Pipeline(argv=beam_args) as p:
        # (filename, line) pairs; bytes, so a line that is not UTF-8 becomes an error record.
        lines = p | "Read" >> beam.io.ReadFromTextWithFilename(args.input, coder=BytesCoder())
        curated = lines | "Curate" >> CurateManifests(
            builder={"max_speakers": 5}, overlap={"overlap_percentage": 50}
        )
        _ = curated.entries | "WriteWindows" >> beam.io.WriteToText(
            args.output + "-windows", file_name_suffix=".jsonl"
        )
        _ = curated.errors | "WriteErrors" >> beam.io.WriteToText(
            args.output + "-errors", file_name_suffix=".jsonl"
        )
        _ = curated.train | "WriteTrain" >> beam.io.WriteToText(
            args.output + "-train", file_name_suffix=".jsonl"
        )
        _ = (
            curated.stats
            | "StatsJson" >> beam.Map(json.dumps, sort_keys=True)
            | "WriteStats"
            >> beam.io.WriteToText(args.output + "-stats", file_name_suffix=".json", shard_name_template="")
        )


if __name__ == "__main__":
    main()
