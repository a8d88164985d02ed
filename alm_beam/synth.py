"""Deterministic synthetic manifest generator.

Real diarized manifests cannot be shipped with the repository, yet tests,
benchmarks and memory checks need inputs that look like them: many speakers
taking turns, word timestamps, and the occasional malformed or out-of-spec
segment the pipeline must survive.  This module produces such manifests as
JSONL, one conversation per line.

Reproducibility is the point, so:

* every entry gets its own ``random.Random`` seeded from ``(seed, index)``
  through SHA-256 (independent of ``PYTHONHASHSEED``), which also makes a
  manifest of N entries an exact prefix of one of M > N entries;
* only ``Random.random()`` is used, because it is the one method whose
  sequence Python promises to keep across versions;
* all time arithmetic is done in integer centiseconds and converted to
  seconds once (``cs / 100`` is already the correctly rounded 2-decimal
  value), so no float drift or libm differences can leak into the output;
* nothing iterates over a set or depends on the clock.

Run ``python -m alm_beam.synth --help`` for the command line.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import os
import random
import re
import sys
from typing import Any, Iterator

import orjson

# --- Oddity rates (per segment unless noted) ------------------------------
# Kept as constants so tests can check the observed rates against them.
NO_SPEAKER_LABEL_RATE = 0.002  # speaker == "no-speaker"
NULL_SPEAKER_RATE = 0.005  # speaker is null
MISSING_SPEAKER_RATE = 0.003  # no "speaker" key at all
LOW_BANDWIDTH_RATE = 0.004  # bandwidth in LOW_BANDWIDTH_RANGE
MISSING_METRICS_RATE = 0.002  # no "metrics" key
MISSING_WORDS_RATE = 0.01  # no "words" key (text is still present)
LOW_SAMPLE_RATE_RATE = 0.03  # per entry: audio_sample_rate == LOW_SAMPLE_RATE
SWIFT_PATH_RATE = 0.30  # per entry: has "swift_audio_filepath"

# --- Conversation shape ---------------------------------------------------
LONG_PAUSE_RATE = 0.02  # gap of 5-40 s before a segment
OVERLAP_RATE = 0.03  # segment starts slightly before the previous one ends
SAME_SPEAKER_RATE = 0.15  # a speaker keeps the floor for another segment
MIN_SPEAKERS = 2
MAX_SPEAKERS = 6

LOW_SAMPLE_RATE = 8000
# (sample rate, cumulative probability) for the normal entries.
SAMPLE_RATES = ((16000, 0.50), (22050, 0.60), (24000, 0.75), (44100, 0.85), (48000, 1.0))
NORMAL_BANDWIDTH_MIN = 8000
LOW_BANDWIDTH_RANGE = (3000, 7900)

# Centisecond limits; integers keep the arithmetic exact.
MIN_SEGMENT_CS = 100
MAX_SEGMENT_CS = 1500

AUDIO_ROOT = "/data/synth"
SWIFT_ROOT = "s3://bucket/synth"
# An id prefix goes into file names: keep it to characters safe in any path.
ID_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9._-]*")

# A few hundred common conversational English words, most frequent first:
# word choice is skewed towards the front, giving a Zipf-like distribution.
VOCABULARY = tuple(
    dict.fromkeys(
        """
    the i you and to a it that of yeah is in we so know like it's just but
    was what they this have do not think be on right okay for that's don't
    um uh well with are really mean if go there at all about can get one
    would he she my me or yes no oh because people going then had out some
    time when up good now how said them kind more thing things got see want
    an also lot from were say could did your been here very actually sure
    back need make much other work something which who day way even only
    maybe little pretty still too years well our into these those us why
    where let's take over look come little bit thank thanks great cool
    probably different first never always every each many through should
    any new old last next long big small same own before after again down
    off around anything everything nothing someone everyone because while
    though year week month today tomorrow yesterday morning night home
    house school job money family friend friends kids car food water phone
    call talk talking tell told ask asked help try trying feel felt mean
    means put keep give find found start started stop use used play show
    happen happened remember understand guess believe hope wait read write
    called working doing going getting making saying thinking looking
    something sometimes usually already probably almost enough quite
    exactly definitely basically literally honestly totally anyway
    though although yet since until during without against between
    number part place point problem question idea story case fact side
    hand head life world city country area room office meeting project
    team company business market data system plan price cost order list
    interesting important different hard easy nice fine bad better best
    whole real true sort kind sense reason minute minutes hour hours
    two three four five ten hundred half couple few several most least
    coffee lunch dinner weekend summer winter weather movie music book
    game story news email report question answer computer internet
    """.split()
    )
)  # dict.fromkeys: drop repeats, keep first-seen order


def _entry_rng(index: int, seed: int) -> random.Random:
    """Give each entry an independent stream so entries are order-free prefixes."""
    digest = hashlib.sha256(f"alm_beam.synth/{seed}/{index}".encode("ascii")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _pick_sample_rate(rng: random.Random) -> int:
    if rng.random() < LOW_SAMPLE_RATE_RATE:
        return LOW_SAMPLE_RATE
    r = rng.random()
    for rate, cumulative in SAMPLE_RATES:
        if r < cumulative:
            return rate
    return SAMPLE_RATES[-1][0]


def _segment_length_cs(rng: random.Random) -> int:
    """Mostly short turns (2-8 s, skewed short), some 1-2 s replies, rare monologues."""
    r = rng.random()
    u = rng.random()
    if r < 0.35:
        return 100 + int(100 * u)  # 1.00-1.99 s
    if r < 0.96:
        return 200 + int(601 * u * u * u)  # 2.00-8.00 s, median ~2.75 s
    return 801 + int(700 * u)  # 8.01-15.00 s


def _gap_cs(rng: random.Random, prev_length_cs: int) -> int:
    """Signed offset from the previous end to the next start (negative = overlap)."""
    r = rng.random()
    u = rng.random()
    if r < LONG_PAUSE_RATE:
        return 500 + int(3501 * u * u)  # 5-40 s, skewed short
    if r < LONG_PAUSE_RATE + OVERLAP_RATE:
        # 0.1-1.0 s overlap, but never reaching back to the previous start.
        return -(10 + int(u * min(91, prev_length_cs - 20)))
    return int(151 * u * u * u)  # 0-1.5 s, median ~0.2 s


def _speaker_weights(rng: random.Random, n: int) -> list[float]:
    """Uneven talk shares: real conversations have dominant and quiet speakers."""
    return [0.2 + rng.random() for _ in range(n)]


def _next_speaker(rng: random.Random, current: int, weights: list[float]) -> int:
    if current >= 0 and rng.random() < SAME_SPEAKER_RATE:
        return current
    total = 0.0
    for k, w in enumerate(weights):
        if k != current:
            total += w
    target = rng.random() * total
    chosen = current
    for k, w in enumerate(weights):
        if k == current:
            continue
        chosen = k
        target -= w
        if target < 0.0:
            break
    return chosen


_VOCAB_WEIGHTS = tuple(len(word) + 2 for word in VOCABULARY)


def _words(rng: random.Random, start_cs: int, end_cs: int) -> tuple[list[str], list[dict]]:
    """Tokens and word timings that tile the segment exactly.

    Each word's share of the segment is proportional to its length, with an
    occasional short pause in between; boundaries are integer centiseconds,
    so words are monotone, the first starts at the segment start and the
    last ends exactly at the segment end.
    """
    span = end_cs - start_cs
    words_per_second = 1.8 + 1.6 * rng.random()
    n = max(1, int(span * words_per_second / 100 + 0.5))
    vocab = VOCABULARY
    weights = _VOCAB_WEIGHTS
    n_vocab = len(vocab)
    rand = rng.random

    tokens: list[str] = []
    # Cumulative weights at each word's start and end.
    bounds: list[tuple[int, int]] = []
    total = 0
    for i in range(n):
        r = rand()
        k = int(n_vocab * r * r)
        tokens.append(vocab[k])
        if i and rand() < 0.08:
            total += 3 + int(6 * rand())  # brief hesitation before this word
        word_start = total
        total += weights[k]
        bounds.append((word_start, total))

    timed = [
        {
            "word": token,
            "start": (start_cs + ws * span // total) / 100,
            "end": (start_cs + we * span // total) / 100,
        }
        for token, (ws, we) in zip(tokens, bounds)
    ]
    return tokens, timed


def _speaker_field(rng: random.Random, speaker: int) -> tuple[bool, Any]:
    """Return (include key, value), injecting the three speaker oddities."""
    r = rng.random()
    if r < NO_SPEAKER_LABEL_RATE:
        return True, "no-speaker"
    r -= NO_SPEAKER_LABEL_RATE
    if r < NULL_SPEAKER_RATE:
        return True, None
    r -= NULL_SPEAKER_RATE
    if r < MISSING_SPEAKER_RATE:
        return False, None
    return True, f"speaker_{speaker}"


def _target_cs(rng: random.Random, min_minutes: float, max_minutes: float, hours: float | None) -> int:
    if hours is not None:
        return int(round(hours * 360000))
    minutes = min_minutes + (max_minutes - min_minutes) * rng.random()
    return int(round(minutes * 6000))


def _check_lengths(min_minutes: float, max_minutes: float, hours: float | None) -> None:
    """Fail early: a conversation must fit at least one minimum-length segment."""
    min_seconds = MIN_SEGMENT_CS / 100
    if hours is not None:
        if not hours * 3600 >= min_seconds:
            raise ValueError(f"hours={hours!r}: must be at least {min_seconds} s")
        return
    if not min_minutes * 60 >= min_seconds:
        raise ValueError(f"min_minutes={min_minutes!r}: must be at least {min_seconds} s")
    if not max_minutes >= min_minutes:
        raise ValueError(f"max_minutes={max_minutes!r} is below min_minutes={min_minutes!r}")


def check_id_prefix(id_prefix: str) -> None:
    if not ID_PREFIX_PATTERN.fullmatch(id_prefix):
        raise ValueError(f"id_prefix={id_prefix!r}: allowed characters: letters, digits, '.', '_', '-'")


def check_words_rate(words_rate: float | None) -> None:
    if words_rate is not None and not 0.0 <= words_rate <= 1.0:  # nan fails too
        raise ValueError(f"words_rate={words_rate!r}: must be between 0 and 1")


def generate_entry(
    index: int,
    seed: int,
    *,
    min_minutes: float = 3.0,
    max_minutes: float = 6.0,
    hours: float | None = None,
    id_prefix: str = "",
    words_rate: float | None = None,
) -> dict:
    """Build manifest entry ``index`` of the manifest for ``seed``.

    Depends only on its arguments, so any entry can be regenerated alone.
    ``id_prefix`` starts the file names (``<prefix>conv_000000.wav``), so that
    corpora made with different seeds do not share an ``audio_filepath``; it
    changes nothing else. ``words_rate`` is the share of segments that carry
    word timings (default: all but ``MISSING_WORDS_RATE``); it changes only
    which segments have a ``words`` list, never their text or timings.
    """
    _check_lengths(min_minutes, max_minutes, hours)
    check_id_prefix(id_prefix)
    check_words_rate(words_rate)
    rng = _entry_rng(index, seed)
    rand = rng.random

    sample_rate = _pick_sample_rate(rng)
    has_swift = rand() < SWIFT_PATH_RATE
    target = _target_cs(rng, min_minutes, max_minutes, hours)
    n_speakers = MIN_SPEAKERS + int((MAX_SPEAKERS - MIN_SPEAKERS + 1) * rand())
    weights = _speaker_weights(rng, n_speakers)
    bw_max = max(sample_rate // 2, NORMAL_BANDWIDTH_MIN + 500)
    low_lo, low_hi = LOW_BANDWIDTH_RANGE

    segments: list[dict] = []
    speaker = -1
    prev_start = -1
    # Recordings often start with a little silence.
    t = 0 if rand() < 0.6 else int(100 * rand())
    while True:
        length = _segment_length_cs(rng)
        start = t
        end = start + length
        last = end + MIN_SEGMENT_CS > target
        if last:
            # End exactly on the target; keep the final turn within 1-15 s.
            end = target
            start = min(max(start, end - MAX_SEGMENT_CS), end - MIN_SEGMENT_CS)
            start = max(start, prev_start + 1)
        speaker = _next_speaker(rng, speaker, weights)

        tokens, timed = _words(rng, start, end)
        segment: dict[str, Any] = {
            "text": " ".join(tokens),
            "start": start / 100,
            "end": end / 100,
        }
        has_speaker, label = _speaker_field(rng, speaker)
        if has_speaker:
            segment["speaker"] = label
        if rand() >= MISSING_METRICS_RATE:
            if rand() < LOW_BANDWIDTH_RATE:
                bandwidth = low_lo + int((low_hi - low_lo + 1) * rand())
            else:
                bandwidth = NORMAL_BANDWIDTH_MIN + int((bw_max - NORMAL_BANDWIDTH_MIN + 1) * rand())
            segment["metrics"] = {"bandwidth": bandwidth}
        # One draw either way, so the rest of the entry does not depend on the rate.
        draw = rand()
        if (draw >= MISSING_WORDS_RATE) if words_rate is None else (draw < words_rate):
            segment["words"] = timed
        segments.append(segment)

        if last:
            break
        prev_start = start
        t = end + _gap_cs(rng, end - start)

    name = f"{id_prefix}conv_{index:06d}.wav"
    entry: dict[str, Any] = {
        "audio_filepath": f"{AUDIO_ROOT}/{name}",
        "audio_sample_rate": sample_rate,
        "duration": segments[-1]["end"],
    }
    if has_swift:
        entry["swift_audio_filepath"] = f"{SWIFT_ROOT}/{name}"
    entry["segments"] = segments
    return entry


def generate_entries(n: int, seed: int, **kw: Any) -> Iterator[dict]:
    """Yield entries 0..n-1 lazily so callers never hold the whole manifest."""
    if n < 0:
        raise ValueError(f"n={n!r}: must be >= 0")
    for index in range(n):
        yield generate_entry(index, seed, **kw)


def _open_output(path: str):
    """Pick the compressor from the suffix; gzip header carries no name or mtime."""
    raw = open(path, "wb")
    if path.endswith(".gz"):
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0), raw
    if path.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="wb"), raw
    return raw, None


def _write(path: str | os.PathLike, n: int, seed: int, **kw: Any) -> tuple[int, int, int]:
    """Stream entries to ``path``; return (entries, segments, uncompressed bytes).

    (The size on disk, compressed or not, is ``os.path.getsize(path)`` afterwards.)
    """
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    entries = segments = written = 0
    out, raw = _open_output(path)
    try:
        dumps = orjson.dumps
        for entry in generate_entries(n, seed, **kw):
            line = dumps(entry) + b"\n"
            out.write(line)
            entries += 1
            segments += len(entry["segments"])
            written += len(line)
    finally:
        out.close()
        if raw is not None:
            raw.close()
    return entries, segments, written


def write_manifest(path: str | os.PathLike, n: int, seed: int, **kw: Any) -> tuple[int, int]:
    """Write an ``n``-entry manifest; return (entries, uncompressed JSONL bytes).

    Bytes are counted before compression so the figure is the same whatever
    the zlib/bzip2 build; ``.gz`` and ``.bz2`` suffixes select compression.
    """
    entries, _segments, written = _write(path, n, seed, **kw)
    return entries, written


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alm_beam.synth",
        description=(
            "Write a deterministic synthetic diarized-conversation manifest (JSONL). "
            "Same arguments give byte-identical output; N entries are a prefix of "
            "N+M entries with the same seed. A .gz or .bz2 suffix compresses."
        ),
    )
    parser.add_argument(
        "--entries", type=int, required=True, metavar="N", help="number of conversations to generate"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    parser.add_argument(
        "--out", required=True, metavar="PATH", help="output manifest path (.jsonl, .jsonl.gz or .jsonl.bz2)"
    )
    parser.add_argument(
        "--min-minutes",
        type=float,
        default=3.0,
        metavar="M",
        help="shortest conversation length in minutes (default: 3)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=6.0,
        metavar="M",
        help="longest conversation length in minutes (default: 6)",
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=None,
        metavar="H",
        help="make every conversation exactly H hours long (overrides --min-minutes/--max-minutes)",
    )
    parser.add_argument(
        "--id-prefix",
        default="",
        metavar="P",
        help="start every file name with P (/data/synth/Pconv_000000.wav), so "
        "corpora made with different seeds do not share audio_filepaths "
        "(letters, digits, '.', '_', '-'; default: none)",
    )
    parser.add_argument(
        "--words-rate",
        type=float,
        default=None,
        metavar="R",
        help="share of segments with word timings, 0 to 1 (default: all but "
        f"{MISSING_WORDS_RATE * 100:g}%%); changes nothing else in the entries",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.entries < 0:
        parser.error("--entries must be >= 0")
    try:
        _check_lengths(args.min_minutes, args.max_minutes, args.hours)
        check_id_prefix(args.id_prefix)
        check_words_rate(args.words_rate)
    except ValueError as exc:
        parser.error(str(exc))
    entries, segments, written = _write(
        args.out,
        args.entries,
        args.seed,
        min_minutes=args.min_minutes,
        max_minutes=args.max_minutes,
        hours=args.hours,
        id_prefix=args.id_prefix,
        words_rate=args.words_rate,
    )
    # bytes: the file as written (compressed for .gz/.bz2); uncompressed_bytes: the JSONL
    print(
        f"entries={entries} segments={segments} bytes={os.path.getsize(args.out)} "
        f"uncompressed_bytes={written} path={args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
