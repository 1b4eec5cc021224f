"""Property tests: every reader of entry-written data gives a clean result or a clear reason.

For any bytes an entry can write (events file, predictions.csv, submission.yaml) the reader
returns a result that can be written as UTF-8 and shown on a terminal, or it says why not in
its own terms (a note, InvalidPredictions, ContractError): never another exception, never an
unbounded amount of memory. Examples are capped (deadline off, 100-200 examples each) so the
file runs in well under a minute on two cores.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

# No .hypothesis/ folder in the checkout: examples are not kept between runs (database=None) and
# hypothesis's own caches go to the temporary directory.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "haet-hypothesis"))

from harness import events as events_mod  # noqa: E402
from harness import text  # noqa: E402
from harness.contract import MAX_MANIFEST_BYTES, NAME_PATTERN, ContractError, load_submission  # noqa: E402
from harness.events import MAX_DEPTH, MAX_LINE, EventTail  # noqa: E402
from harness.scoring import InvalidPredictions, byte_limit, read_predictions  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
_counter = itertools.count()

# Every character, lone surrogates included (hypothesis leaves category Cs out by default).
ANY_CHAR = st.characters(blacklist_categories=())
ANY_TEXT = st.text(alphabet=ANY_CHAR, max_size=200)
FRAGMENTS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"\\",
    b":",
    b",",
    b"1",
    b"-0.5e9",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b'"event"',
    b'"time"',
    b"\\ud800",
    b"\\udfff",
    b"\\u001b",
    b"\x1b[2J",
    b"\xff",
    b"\xed\xa0\x80",
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    b"9" * 50,
    b"\x00",
    b"\xe2\x80\xae",
]
JSONISH = st.lists(st.sampled_from(FRAGMENTS), max_size=200).map(b"".join)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("property")


def fresh(workdir: Path, name: str) -> Path:
    return workdir / f"{next(_counter)}-{name}"


def printable_reason(message: str, limit: int = 1200) -> None:
    assert text.is_printable(message), repr(message)
    assert len(message) <= limit, len(message)


def drain(path: Path) -> EventTail:
    tail = EventTail(path, started_unix=time.time())
    for _ in range(1000):
        if not tail.poll():
            break
    return tail


def check_tail(tail: EventTail, out: Path) -> None:
    for event in tail.events:
        assert isinstance(event, dict) and isinstance(event["t_s"], float)
        json.dumps(event, allow_nan=False).encode("utf-8")  # valid JSON, valid UTF-8
    for note in tail.notes:
        assert note.startswith("events: ") and text.is_printable(note)
    tail.write(out)
    for line in out.read_text(encoding="utf-8").splitlines():
        assert isinstance(json.loads(line), dict)
    text.is_printable(events_mod.describe(tail.last))


# --- the events file ---------------------------------------------------------------------------


@SETTINGS
@given(data=st.one_of(st.binary(max_size=4096), JSONISH))
def test_events_from_any_bytes(workdir, data):
    path = fresh(workdir, "events.jsonl")
    path.write_bytes(data)
    check_tail(drain(path), path.with_suffix(".out"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(ANY_TEXT, inner, max_size=5),
    max_leaves=30,
)


@SETTINGS
@given(objects=st.lists(st.dictionaries(ANY_TEXT, json_values, max_size=8), max_size=20))
def test_events_with_any_keys_and_values(workdir, objects):
    path = fresh(workdir, "events.jsonl")
    # ensure_ascii writes lone surrogates as \\udXXX escapes, as an entry's JSON library may
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="ascii")
    tail = drain(path)
    check_tail(tail, path.with_suffix(".out"))
    assert len(tail.events) + sum(1 for n in tail.notes if "skipped" in n) >= 1 or not objects


@SETTINGS
@given(depth=st.integers(MAX_DEPTH + 1, 30_000), kind=st.sampled_from(["[", "{", "mixed"]), closed=st.booleans())
def test_events_nested_too_deep_are_noted_not_raised(workdir, depth, kind, closed):
    if kind == "[":
        line = "[" * depth + ("]" * depth if closed else "")
    elif kind == "{":
        line = '{"a":' * depth + ("1" + "}" * depth if closed else "")
    else:
        line = '{"a":[' * (depth // 2 + 1) + ("0" + "]}" * (depth // 2 + 1) if closed else "")
    path = fresh(workdir, "events.jsonl")
    path.write_text(line + "\n" + json.dumps({"event": "after"}) + "\n")
    tail = drain(path)
    assert [e["event"] for e in tail.events] == ["after"]
    assert len(tail.notes) == 1 and "1 line(s)" in tail.notes[0] and "skipped" in tail.notes[0], tail.notes
    if kind != "[" and len(line) <= MAX_LINE:
        assert "nested deeper than" in tail.notes[0], tail.notes


@settings(max_examples=30, deadline=None, database=None)
@given(depth=st.integers(1, MAX_DEPTH - 1))
def test_events_nested_within_the_limit_are_kept(workdir, depth):
    path = fresh(workdir, "events.jsonl")
    path.write_text('{"v": ' + "[" * depth + "]" * depth + "}\n")
    assert len(drain(path).events) == 1


@settings(max_examples=20, deadline=None, database=None)
@given(size=st.integers(MAX_LINE + 1, 4 * MAX_LINE), newline=st.booleans())
def test_events_huge_lines_are_skipped(workdir, size, newline):
    path = fresh(workdir, "events.jsonl")
    path.write_bytes(b'{"a":"' + b"x" * size + b'"}' + (b"\n" if newline else b"") + b'{"event":"ok"}\n')
    tail = drain(path)
    assert [e.get("event") for e in tail.events] == (["ok"] if newline else [])
    assert any("over 64 KiB" in n for n in tail.notes)


def test_events_memory_stays_bounded_on_a_flood_of_tiny_events(workdir):
    """10 MiB of tiny events: millions of dicts without the cap. Measured: ~5 MiB peak (bound 32)."""
    path = fresh(workdir, "events.jsonl")
    path.write_bytes((b"{}\n" + b'{"e":1}\n' + b"\n") * (10 * 2**20 // 12))
    tracemalloc.start()
    try:
        tail = drain(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(tail.events) == events_mod.MAX_EVENTS
    assert any("later ones dropped" in n for n in tail.notes)
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_each_poll_reads_a_bounded_slice(workdir):
    path = fresh(workdir, "events.jsonl")
    path.write_bytes(b"x\n" * (3 * 2**20))
    tail = EventTail(path, time.time())
    start = time.perf_counter()
    assert tail.poll()
    assert tail._offset <= events_mod.POLL_BYTES
    assert time.perf_counter() - start < 5, "one poll is short"


# --- predictions.csv ---------------------------------------------------------------------------

ROWS = st.lists(st.tuples(st.integers(-2, 12), st.integers(-2, 12)), max_size=15)


@SETTINGS
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        ROWS.map(lambda rows: ("index,label\n" + "".join(f"{i},{j}\n" for i, j in rows)).encode()),
        st.lists(
            st.sampled_from(
                [
                    b"index,label\n",
                    b"0,1\n",
                    b"\n",
                    b"\r\n",
                    b'"',
                    b",",
                    b"\x1b[2J",
                    b"\xff",
                    b"\x00",
                    b"1_0",
                    b" 3 ",
                    "\u202e".encode(),
                ]
            ),
            max_size=60,
        ).map(b"".join),
    )
)
def test_predictions_from_any_bytes(workdir, data):
    path = fresh(workdir, "predictions.csv")
    path.write_bytes(data)
    try:
        labels = read_predictions(path, 10, 10)
    except InvalidPredictions as exc:
        printable_reason(str(exc), 400)
    else:
        assert labels.shape == (10,) and labels.min() >= 0 and labels.max() < 10


@settings(max_examples=10, deadline=None, database=None)
@given(size=st.integers(byte_limit(1000) + 1, 2**30))
def test_predictions_huge_files_are_refused_unread(workdir, size):
    path = fresh(workdir, "predictions.csv")
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: nothing is written, a reader that reads it all would still pay
    start = time.perf_counter()
    with pytest.raises(InvalidPredictions, match="byte limit"):
        read_predictions(path, 1000, 10)
    assert time.perf_counter() - start < 1
    path.unlink()


def test_predictions_memory_stays_bounded_on_blank_lines(workdir):
    """16 MiB of blank lines where the byte cap allows 16 MiB: streamed, refused by the row cap.
    Measured: well under 1 MiB traced besides the labels array (bound 8 MiB)."""
    count = (16 * 2**20 - 64 * 2**10) // 64  # byte_limit(count) == 16 MiB
    path = fresh(workdir, "predictions.csv")
    path.write_bytes(b"index,label\n" + b"\n" * (16 * 2**20 - 20))
    tracemalloc.start()
    try:
        with pytest.raises(InvalidPredictions, match="lines"):
            read_predictions(path, count, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    labels_bytes = count * 8
    assert peak - labels_bytes < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


# --- submission.yaml ---------------------------------------------------------------------------

ALIAS_BOMBS = [
    "a: &a [x, x]\nname: *a\ntrain: a\npredict: b\n",
    "name: [&a [lol, lol], &b [*a, *a, *a], &c [*b, *b, *b]]\ntrain: a\npredict: b\n",
    "base: &b {train: a}\n<<: *b\nname: x\npredict: b\n",
    "name: &n x\ntrain: a\npredict: b\n",
    "name: *undefined\ntrain: a\npredict: b\n",
]
YAMLISH = st.lists(
    st.sampled_from(
        [
            "name",
            "train",
            "predict",
            ":",
            " ",
            "\n",
            "  ",
            "- ",
            "[",
            "]",
            "{",
            "}",
            "&a ",
            "*a",
            "'",
            '"',
            "\\e",
            "\\x",
            "!!python/object:os.system ",
            "!!binary ",
            "2021-13-45",
            "~",
            "|",
            ">",
            "#",
            "---\n",
            "...\n",
            "x",
            "python a.py",
            "\x1b[2J",
            "\u202e",
            "\t",
            "\x00",
            "\ud800",
        ]
    ),
    max_size=80,
).map("".join)


def check_manifest(directory: Path) -> None:
    try:
        sub = load_submission(directory)
    except ContractError as exc:
        printable_reason(str(exc))
    else:
        assert NAME_PATTERN.fullmatch(sub.name) and sub.train and sub.predict


@pytest.mark.parametrize("manifest", ALIAS_BOMBS)
def test_yaml_aliases_and_anchors_are_refused(workdir, manifest):
    directory = fresh(workdir, "entry")
    directory.mkdir()
    (directory / "submission.yaml").write_text(manifest)
    with pytest.raises(ContractError, match="anchors|aliases|alias"):
        load_submission(directory)


@SETTINGS
@given(manifest=st.one_of(YAMLISH, ANY_TEXT, st.binary(max_size=512)))
def test_manifest_from_any_text(workdir, manifest):
    directory = fresh(workdir, "entry")
    directory.mkdir()
    data = manifest if isinstance(manifest, bytes) else manifest.encode("utf-8", "surrogatepass")
    (directory / "submission.yaml").write_bytes(data)
    check_manifest(directory)


@settings(max_examples=20, deadline=None, database=None)
@given(depth=st.integers(17, 20_000), kind=st.sampled_from(["[", "{", "- "]))
def test_manifest_nested_deep_is_refused(workdir, depth, kind):
    directory = fresh(workdir, "entry")
    directory.mkdir()
    if kind == "- ":
        body = "".join("  " * i + "-\n" for i in range(min(depth, 2000)))
    else:
        body = "name: " + kind * depth + "\n"
    (directory / "submission.yaml").write_text(body[:MAX_MANIFEST_BYTES])
    with pytest.raises(ContractError) as err:
        load_submission(directory)
    printable_reason(str(err.value))


def test_manifest_over_the_size_cap_is_refused_by_its_size(workdir):
    directory = fresh(workdir, "entry")
    directory.mkdir()
    with open(directory / "submission.yaml", "wb") as f:
        f.truncate(2**30)
    with pytest.raises(ContractError, match="byte limit"):
        load_submission(directory)


# --- text.clean --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, database=None)
@given(value=st.one_of(ANY_TEXT, st.binary(max_size=200)), limit=st.one_of(st.none(), st.integers(0, 300)))
def test_clean_is_idempotent_printable_one_line_and_bounded(value, limit):
    out = text.clean(value, limit)
    assert text.clean(out, limit) == out
    assert text.is_printable(out)
    assert len(out.splitlines()) <= 1
    out.encode("utf-8")
    if limit is not None:
        assert len(out) <= limit
    for escaped in (text.md(value, limit), text.html(value, limit)):
        assert text.is_printable(escaped) and "<" not in escaped and len(escaped.splitlines()) <= 1


@settings(max_examples=100, deadline=None, database=None)
@given(value=ANY_TEXT)
def test_clean_leaves_ordinary_text_alone(value):
    if text.is_printable(value):
        assert text.clean(value) == value


def test_numpy_is_still_what_predictions_return(workdir):
    path = fresh(workdir, "predictions.csv")
    path.write_text("index,label\n1,2\n0,1\n")
    assert isinstance(read_predictions(path, 2, 3), np.ndarray)
    assert os.path.getsize(path) < byte_limit(2)
