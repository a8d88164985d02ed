"""Beam glue under TestPipeline: read, curate (with dead letters), aggregate."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from conftest import FIXTURES, GOLDEN, beam_test_pipeline, canonical

from alm_beam.beam.transforms import AggregateRunStats, CurateEntries, ManifestLine, ReadManifestLines
from alm_beam.core.curate import OutputOptions
from alm_beam.core.params import make_params
from alm_beam.io.discovery import ManifestFile, plan_ranges


def _sample_lines():
    path = str(FIXTURES / "sample_input.jsonl")
    with open(path, "rb") as fh:
        raw = fh.read().split(b"\n")
    return path, [ManifestLine(path, data, n + 1, None) for n, data in enumerate(raw)]


@pytest.mark.e2e
def test_curate_entries_matches_golden_and_routes_bad_lines():
    path, lines = _sample_lines()
    bad = [ManifestLine(path, b'{"audio_filepath": 1}', 99, 1234), ManifestLine(path, b"[1, 2]", 100, 2000)]
    with open(GOLDEN / "sample_default.jsonl", encoding="utf-8") as fh:
        golden = sorted(canonical(json.loads(line)) for line in fh if line.strip())

    with beam_test_pipeline() as p:
        out = p | beam.Create(lines + bad) | CurateEntries(make_params(), OutputOptions())
        assert_that(
            out.entries | "Canon" >> beam.Map(lambda b: canonical(json.loads(b))),
            equal_to(golden),
            label="EntriesEqualGolden",
        )
        assert_that(
            out.errors
            | "Why"
            >> beam.Map(
                lambda b: (json.loads(b)["line"], json.loads(b)["byte_offset"], json.loads(b)["reason"])
            ),
            equal_to([(99, 1234, "wrong_type:audio_filepath"), (100, 2000, "not_an_object")]),
            label="ErrorsWithReasons",
        )
        totals = out.stats | AggregateRunStats() | beam.Map(lambda s: s.to_dict())
        assert_that(
            totals
            | beam.Map(
                lambda d: (
                    d["entries_read"],
                    d["entries_written"],
                    d["entries_failed"],
                    d["windows"],
                    d["filtered_windows"],
                    d["truncation_events"],
                )
            ),
            equal_to([(7, 5, 2, 181, 25, 92)]),
            label="Totals",
        )


@pytest.mark.e2e
def test_compact_output_drops_prefilter_lists():
    _, lines = _sample_lines()
    with beam_test_pipeline() as p:
        out = p | beam.Create(lines) | CurateEntries(make_params(), OutputOptions(compact=True))
        assert_that(
            out.entries
            | beam.Map(
                lambda b: (
                    "windows" in json.loads(b),
                    "lost_win_full_data" in json.loads(b)["stats"],
                    len(json.loads(b)["filtered_windows"]),
                )
            ),
            equal_to([(False, False, 5)] * 5),
        )


@pytest.mark.e2e
def test_read_manifest_lines_over_split_ranges(tmp_path):
    """Each line once over split ranges; the reader's own counts (lines, blank)
    summed over the ranges are the file's: 50 entries + 10 blank lines, one
    of them a whitespace-only line and none of them passed on."""
    path = tmp_path / "m.jsonl"
    body = b"".join(b'{"n": %d}\r\n' % i + (b" \t\r\n" if i % 5 == 0 else b"") for i in range(50))
    path.write_bytes(b"\xef\xbb\xbf" + body)
    ranges = plan_ranges([ManifestFile(str(path), path.stat().st_size, False)], 97)
    assert len(ranges) > 5
    with beam_test_pipeline() as p:
        read = p | ReadManifestLines(ranges, reshuffle=True)
        assert_that(
            read.lines | beam.Map(lambda ln: ln.data),
            equal_to([b'{"n": %d}' % i for i in range(50)]),
            label="Lines",
        )
        assert_that(
            read.counts
            | "Sum"
            >> beam.CombineGlobally(lambda counts: tuple(map(sum, zip(*counts))) if counts else (0, 0)),
            equal_to([(60, 10)]),
            label="Counts",
        )


@pytest.mark.e2e
def test_counters_in_one_namespace():
    from apache_beam.metrics.metric import MetricsFilter

    _, lines = _sample_lines()
    p = beam_test_pipeline()
    _ = (
        p
        | beam.Create(lines + [ManifestLine("m", b"nope", 1, 0)])
        | CurateEntries(make_params(), OutputOptions())
    )
    result = p.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("alm_beam"))["counters"]
    }
    assert counters["entries_written"] == 5
    assert counters["entries_failed"] == 1 and counters["failed_invalid_json"] == 1
    assert counters["windows"] == 181 and counters["filtered_windows"] == 25
    assert counters["blank_lines"] == 1  # the fixture's trailing newline


def test_curate_worker_raises_the_gen0_gc_threshold_but_never_enables_gc():
    import gc

    from alm_beam.beam.transforms import GC_GEN0_THRESHOLD, _CurateFn

    saved = gc.get_threshold()
    fn = _CurateFn(make_params(), OutputOptions())
    try:
        gc.set_threshold(700, 10, 10)
        fn.setup()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)
        gc.set_threshold(0, 10, 10)  # collection disabled by the user stays disabled
        fn.setup()
        assert gc.get_threshold() == (0, 10, 10)
        gc.set_threshold(50_000, 10, 10)  # a larger threshold is kept
        fn.setup()
        assert gc.get_threshold() == (50_000, 10, 10)
    finally:
        gc.set_threshold(*saved)


@pytest.mark.e2e
def test_statistics_leave_curation_once_per_bundle_not_once_per_entry():
    """A record per entry crossed the stage boundary after curation (runners
    materialize the Flatten with the reader's counts): encoded, sent to the
    runner, read back. Summed per bundle, the totals are the same."""
    path, lines = _sample_lines()
    many = [ManifestLine(f"{path}#{k}", ln.data, ln.line, None) for k in range(8) for ln in lines]
    many.append(ManifestLine(path, b"[1]", 1, 0))
    with beam_test_pipeline() as p:
        out = p | beam.Create(many) | CurateEntries(make_params(), OutputOptions())
        assert_that(
            out.stats | "HowMany" >> beam.combiners.Count.Globally() | beam.Map(lambda n: 1 <= n <= 4),
            equal_to([True]),
            label="FewElements",
        )
        assert_that(
            out.stats
            | AggregateRunStats()
            | beam.Map(lambda s: (s.to_dict()["entries_written"], s.to_dict()["entries_failed"])),
            equal_to([(40, 1)]),
            label="SameTotals",
        )


@pytest.mark.e2e
def test_statistics_keep_the_windows_of_their_entries():
    """Summed per bundle and window: windowed input gives each window its own totals."""
    from apache_beam.transforms import window

    from alm_beam.beam.transforms import RunStatsCombineFn

    _, lines = _sample_lines()
    entries = [ln for ln in lines if ln.data.strip()]
    stamped = [window.TimestampedValue(ln, 10 * (k % 2) + 1) for k, ln in enumerate(entries * 2)]
    with beam_test_pipeline() as p:
        out = (
            p
            | beam.Create(stamped)
            | beam.WindowInto(window.FixedWindows(10))
            | CurateEntries(make_params(), OutputOptions())
        )
        per_window = (
            out.stats
            | beam.CombineGlobally(RunStatsCombineFn()).without_defaults()
            | beam.Map(lambda s, w=beam.DoFn.WindowParam: (int(w.start), s.to_dict()["entries_written"]))
        )
        assert_that(per_window, equal_to([(0, 5), (10, 5)]))


@pytest.mark.e2e
def test_batched_lines_hold_the_same_lines_in_fewer_elements():
    """The CLI's sinks get newline-joined batches (their per-element work is paid
    per batch); split back, they are the unbatched output, line for line."""
    path, lines = _sample_lines()
    many = [ManifestLine(f"{path}#{k}", ln.data, ln.line, None) for k in range(60) for ln in lines]
    with beam_test_pipeline() as p:
        source = p | beam.Create(many)
        plain = source | "Plain" >> CurateEntries(make_params(), OutputOptions())
        batched = source | "Batched" >> CurateEntries(make_params(), OutputOptions(), batch_lines=True)
        assert_that(
            batched.entries
            | "CountBatches" >> beam.combiners.Count.Globally()
            # 300 lines: 120 of 80 to 90 KB (ALONE_BYTES or more) alone, the 180
            # others (38 to 52 KB) in batches of up to 256 lines or 1 MiB
            | "Few" >> beam.Map(lambda n: 120 < n <= 140),
            equal_to([True]),
            label="FewElements",
        )
        assert_that(
            batched.entries | "SplitEntries" >> beam.FlatMap(lambda b: b.split(b"\n")),
            equal_to(sorted(_entries_of(many))),
            label="SameLines",
        )
        assert_that(
            batched.train | "SplitTrain" >> beam.FlatMap(lambda b: b.split(b"\n")),
            equal_to(_train_of(many)),
            label="SameTraining",
        )
        assert_that(
            plain.entries | "CountPlain" >> beam.combiners.Count.Globally(), equal_to([300]), label="One"
        )


def test_a_long_output_line_leaves_alone_unjoined():
    """Joining a line of ALONE_BYTES or more into a batch would only copy it (most
    of the output is such lines); it leaves as its own element, the very bytes."""
    from alm_beam.beam import transforms

    fn = transforms._CurateFn(make_params(), OutputOptions(), batch_lines=True)
    fn.start_bundle()
    window = object()
    small = [b'{"n":%d}' % k for k in range(3)]
    assert [fn._batched(None, window, line) for line in small] == [None, None, None]
    long_line = b"x" * transforms.ALONE_BYTES
    assert fn._batched(None, window, long_line) is long_line
    assert fn._batched(None, window, long_line[1:]) is None  # one byte short: batched
    # the small lines are still pending, with the shorter long one, in their batch
    assert fn._batches[(None, window)][0] == [*small, long_line[1:]]


def _entries_of(lines):
    from alm_beam.core.curate import curate_line

    outcomes = (
        curate_line(ln.data, ln.source, make_params(), line=ln.line, offset=ln.offset) for ln in lines
    )
    return [o.line for o in outcomes if o is not None]


def _train_of(lines):
    from alm_beam.core.curate import curate_line

    out = []
    for ln in lines:
        o = curate_line(ln.data, ln.source, make_params(), line=ln.line, offset=ln.offset)
        if o is not None and getattr(o, "train", b""):
            out.extend(o.train.split(b"\n"))
    return out
