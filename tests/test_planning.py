"""Work planning: every byte of every file read once, and equal work per worker."""

import pytest

from alm_beam.io.discovery import ManifestFile, ReadRange
from alm_beam.io.planning import MAX_PIECE_BYTES, MIN_PIECE_BYTES, cut_file, pack, plan_units, range_bytes

MB = 1 << 20


def _covered(units, files):
    """{path: sorted [start, end) spans} from the planned units."""
    sizes = {f.path: f.size for f in files}
    spans = {}
    for unit in units:
        for r in unit:
            spans.setdefault(r.path, []).append((r.start, sizes[r.path] if r.end < 0 else r.end))
    return {path: sorted(s) for path, s in spans.items()}


def _unit_bytes(unit, files):
    sizes = {f.path: f.size for f in files}
    return sum((sizes[r.path] if r.end < 0 else r.end) - r.start for r in unit)


def _assert_each_byte_once(units, files):
    covered = _covered(units, files)
    assert sorted(covered) == sorted(f.path for f in files)
    for f in files:
        spans = covered[f.path]
        assert spans[0][0] == 0 and spans[-1][1] == f.size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no gap, no overlap


def test_one_big_file_two_workers_gives_two_equal_units():
    # The case: one 107 MB manifest, 2 workers. The old fixed 64 MB split
    # gave ranges of 64 and 43 MB, so one worker did 60% of the work.
    files = [ManifestFile("/big.jsonl", 107_000_000, False)]
    units = plan_units(files, workers=2)
    _assert_each_byte_once(units, files)
    assert len(units) == 2
    assert sorted(_unit_bytes(u, files) for u in units) == [53_500_000, 53_500_000]


def test_many_unequal_files_are_packed_to_nearly_equal_units():
    sizes = [90, 70, 50, 40, 30, 20, 10, 5, 3, 1]
    files = [ManifestFile(f"/m{i}.jsonl.gz", s * MB, True) for i, s in enumerate(sizes)]
    units = plan_units(files, workers=3)
    _assert_each_byte_once(units, files)
    loads = sorted(_unit_bytes(u, files) // MB for u in units)
    # compressed files cannot be cut; longest first, each to the lightest unit:
    # 90->A, 70->B, 50->C, 40->C, 30->B, 20->A, 10->C, 5->B, 3->C, 1->C
    assert loads == [104, 105, 110]


def test_units_keep_their_ranges_in_file_order():
    files = [ManifestFile("/a.jsonl", 40 * MB, False), ManifestFile("/b.jsonl", 8 * MB, False)]
    for unit in plan_units(files, workers=2):
        keys = [(r.path, r.start) for r in unit]
        assert keys == sorted(keys)


def test_unknown_worker_count_gives_one_range_per_element_of_at_most_64_mb():
    files = [ManifestFile("/big.jsonl", 200 * MB, False), ManifestFile("/s.jsonl.gz", MB, True)]
    units = plan_units(files, workers=None)
    _assert_each_byte_once(units, files)
    assert all(len(u) == 1 for u in units)
    assert [_unit_bytes(u, files) for u in units] == [50 * MB] * 4 + [MB]
    assert MAX_PIECE_BYTES == 64 * MB


def test_a_fixed_split_is_kept():
    files = [ManifestFile("/big.jsonl", 10 * MB, False)]
    units = plan_units(files, workers=1, split_bytes=3 * MB)
    _assert_each_byte_once(units, files)
    assert [_unit_bytes(u, files) for u in units] == [2621440] * 3 + [10 * MB - 3 * 2621440]


def test_small_inputs_are_not_cut_below_64_kib():
    files = [ManifestFile("/small.jsonl", 300_000, False)]
    units = plan_units(files, workers=2)
    _assert_each_byte_once(units, files)
    assert MIN_PIECE_BYTES == 64 << 10
    # 300,000 / 8 is below 64 KiB: pieces of at most 65,536 bytes, 5 of them (60,000
    # each), packed 3 + 2
    assert sorted(_unit_bytes(u, files) for u in units) == [120_000, 180_000]


def test_empty_and_missing_work():
    assert plan_units([], workers=2) == []
    files = [ManifestFile("/e.jsonl", 0, False)]
    assert plan_units(files, workers=4) == [(ReadRange("/e.jsonl", 0, -1, False),)]


@pytest.mark.parametrize("size,piece", [(10, 3), (9, 3), (1, 1), (100, 7), (64 * MB + 1, MB)])
def test_cut_file_gives_nearly_equal_pieces(size, piece):
    f = ManifestFile("/x.jsonl", size, False)
    ranges = cut_file(f, piece)
    _assert_each_byte_once([tuple(ranges)], [f])
    lengths = [(size if r.end < 0 else r.end) - r.start for r in ranges]
    assert max(lengths) <= piece and max(lengths) - min(lengths) <= len(ranges)


def test_pack_is_deterministic_and_longest_first():
    items = [5, 1, 4, 2, 3]
    # 5->0, 4->1, 3->1 (4 < 5), 2->0 (5 < 7), 1->0 (7 = 7: the lower index)
    assert pack(items, lambda x: x, 2) == [[5, 1, 2], [4, 3]]
    assert pack(items, lambda x: x, 2) == pack(list(items), lambda x: x, 2)


def test_one_worker_keeps_files_whole_up_to_64_mb():
    """Cuts gain one worker nothing and cost line numbers (a mid-file range cannot
    count lines from the start), so files are cut only above 64 MB."""
    files = [ManifestFile("/a.jsonl", 60 * MB, False), ManifestFile("/b.jsonl", 100 * MB, False)]
    units = plan_units(files, workers=1)
    _assert_each_byte_once(units, files)
    assert [_unit_bytes(u, files) for u in units] == [60 * MB, 50 * MB, 50 * MB]


def test_shared_units_list_the_same_pieces_largest_first():
    from alm_beam.io.planning import SHARED_PIECES_PER_WORKER, TAPER_STEPS, SharedRanges, plan_shared_units

    files = [ManifestFile("big", 64 * 1024 * 1024, False), ManifestFile("small", 100_000, False)]
    sizes = {f.path: f.size for f in files}
    units = plan_shared_units(files, 2, "/claims")
    assert [type(u) for u in units] == [SharedRanges, SharedRanges]
    assert [u.worker for u in units] == [0, 1] and units[0].ranges == units[1].ranges
    ranges = units[0].ranges
    # 64 pieces of the big file, the small file whole, and the big file's last
    # two pieces each cut into four more (see the next test)
    assert len(ranges) == 2 * SHARED_PIECES_PER_WORKER + 1 + 2 * TAPER_STEPS
    lengths = [range_bytes(r, sizes[r.path]) for r in ranges]
    assert lengths == sorted(lengths, reverse=True)
    assert [(r.start, r.end) for r in ranges if r.path == "small"] == [(0, -1)]  # whole
    _assert_each_byte_once([ranges], files)


def test_the_last_shared_pieces_taper_so_the_workers_finish_together():
    """Pieces are claimed largest first; the last ones claimed must be small, or
    the worker that takes the last full piece keeps the other waiting for up to
    a whole piece (measured: 0.2 to 0.7 s of a 14 to 22 s run on one manifest).
    The last pieces halve down to a sixteenth, and only pieces that start
    mid-file are cut (a range from a file's start keeps its line numbers)."""
    from alm_beam.io.planning import SHARED_PIECES_PER_WORKER, plan_shared_units

    files = [ManifestFile("big", 220 * MB, False)]
    sizes = {"big": 220 * MB}
    ranges = plan_shared_units(files, 2, "/claims")[0].ranges
    _assert_each_byte_once([ranges], files)
    piece = -(-220 * MB // (2 * SHARED_PIECES_PER_WORKER))
    lengths = [range_bytes(r, sizes[r.path]) for r in ranges]
    assert lengths == sorted(lengths, reverse=True)
    assert max(lengths[-2:]) <= piece // 16 + 1  # the last claim of each worker
    assert sum(1 for n in lengths if n < piece - 1) == 2 * 5  # two pieces, five parts each
    first = [r for r in ranges if r.start == 0]
    assert len(first) == 1 and range_bytes(first[0], sizes[first[0].path]) >= piece - 1  # not cut


def test_no_taper_where_it_would_cut_a_files_line_numbers_or_go_below_the_smallest_piece():
    from alm_beam.io.planning import plan_shared_units, taper_range

    many = [ManifestFile(f"part-{i}", MB, False) for i in range(256)]  # each under a piece: whole
    ranges = plan_shared_units(many, 2, "/claims")[0].ranges
    assert sorted((r.path, r.start, r.end) for r in ranges) == sorted((f.path, 0, -1) for f in many)

    r = ReadRange("m", 10 * MIN_PIECE_BYTES, 13 * MIN_PIECE_BYTES, False)
    # 3 pieces' worth: one half of 1.5, then 1.5 left; halving again would go below
    assert taper_range(r, 100 * MIN_PIECE_BYTES, MIN_PIECE_BYTES, 4) == [
        ReadRange("m", 10 * MIN_PIECE_BYTES, 10 * MIN_PIECE_BYTES + 3 * MIN_PIECE_BYTES // 2, False),
        ReadRange("m", 10 * MIN_PIECE_BYTES + 3 * MIN_PIECE_BYTES // 2, 13 * MIN_PIECE_BYTES, False),
    ]
    to_end = ReadRange("m", 50, -1, False)
    assert taper_range(to_end, 50 + 16 * MIN_PIECE_BYTES, MIN_PIECE_BYTES, 4)[-1].end == -1


@pytest.mark.parametrize(
    "lines, workers, split, tapered",
    [(20_000, 4, 5_000, False), (800_000, 2, MB, True)],
    ids=["fine-pieces", "tapered-pieces"],
)
def test_every_shared_range_is_read_by_exactly_one_of_the_workers(tmp_path, lines, workers, split, tapered):
    """Workers racing over the same units: each line is read once, whoever claims it."""
    import threading

    from alm_beam.beam.transforms import _ReadRangeFn
    from alm_beam.io.planning import plan_shared_units

    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(lines)))
    claims = tmp_path / "claims"
    claims.mkdir()
    size = path.stat().st_size
    units = plan_shared_units([ManifestFile(str(path), size, False)], workers, str(claims), split)
    assert len(units[0].ranges) > 30 or tapered
    assert (len(units[0].ranges) > -(-size // split)) == tapered
    seen = [[] for _ in units]

    def work(k):
        for item in _ReadRangeFn().process(units[k]):
            if hasattr(item, "data"):
                seen[k].append(item.data)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(units))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [line for lines in seen for line in lines]
    assert sorted(everything) == sorted(b'{"n": %d}' % i for i in range(lines))
    assert sorted(p.name for p in claims.iterdir()) == sorted(str(i) for i in range(len(units[0].ranges)))
