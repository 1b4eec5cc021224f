"""The submission's own progress events (HAET_EVENTS), read while it runs.

Untrusted input, read under bounds so that no file an entry writes can exhaust the
harness or stop it:
  * at most POLL_BYTES read and POLL_LINES lines parsed per poll() (one call stays short),
    MAX_BYTES read and MAX_LINES non-blank lines parsed in all (blank lines are skipped in C);
  * lines longer than MAX_LINE, nested deeper than MAX_DEPTH (checked before parsing),
    with more than MAX_VALUES_PER_EVENT values, or that are not JSON objects are skipped;
  * at most MAX_EVENTS events and MAX_VALUES values are kept in memory; strings are cut
    to MAX_STRING characters, lone surrogates replaced and NaN/Infinity made null, so every
    kept event can be written as UTF-8 JSON. Past the caps only the latest line of each
    read is parsed, so that `last` still follows the run.
Every problem is counted and recorded once in `notes` ("events: 3 lines over 64 KiB
skipped"); nothing the entry writes raises out of poll().

A recorded events.jsonl (the report, the leaderboard, the regression check and the ablation
benchmark read one) goes through the same tail: `read`. `epochs`, `last_epoch` and `throughput`
are what the harness derives from the events.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.files import atomic_write_text
from harness.formatting import finite
from harness.text import clean, cut, utf8

MAX_BYTES = 10 * 2**20  # read at most this much of an events file
POLL_BYTES = 2**20  # read per poll(), at most
POLL_LINES = 10_000  # lines parsed per poll(), at most (the rest waits for the next call)
MAX_LINE = 64 * 1024  # bytes of one event line
MAX_DEPTH = 32  # nesting of arrays and objects in one event
MAX_EVENTS = 20_000  # events kept in memory (and written to events.jsonl)
MAX_VALUES_PER_EVENT = 1_000  # keys, values and items of one event, all levels together
MAX_VALUES = 500_000  # the same over all kept events
MAX_STRING = 1_000  # characters of one kept string (key or value); longer ones are cut
MAX_LINES = 5 * MAX_EVENTS  # non-blank lines parsed in all; past it (or MAX_EVENTS) only the latest is

_DECODER = json.JSONDecoder()
_JSON_STARTS = frozenset(bytes([c]) for c in b'["-0123456789tfnNI')  # other JSON values than objects
_LINE = re.compile(rb"[ \t\r\f\v]*[^\s][^\n]*")  # a line with something on it
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_DEPTH_STEP = np.zeros(256, dtype=np.int8)
_DEPTH_STEP[[ord("["), ord("{")]] = 1
_DEPTH_STEP[[ord("]"), ord("}")]] = -1

NOTES = {
    "long": "events: {n} line(s) over {max_line} KiB skipped",
    "deep": "events: {n} line(s) nested deeper than {max_depth} skipped",
    "json": "events: {n} line(s) that are not JSON skipped",
    "object": "events: {n} line(s) that are not JSON objects skipped",
    "values": "events: {n} event(s) with more than {max_values_per_event} values skipped",
    "strings": "events: {n} string(s) longer than {max_string} characters cut",
    "error": "events: {n} line(s) could not be read ({detail}) and were skipped",
    "bytes": "events: the file passed {max_mib} MiB; the rest was not read",
    "count": "events: more than {max_events} events; later ones dropped",
    "lines": "events: more than {max_lines} lines; later ones dropped",
    "total": "events: more than {max_values} values in all; {n} later event(s) dropped",
    "file": "events: the file could not be read ({detail})",
}


class EventError(ValueError):
    """A line of an events file that is not kept; `kind` is a key of NOTES."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind)
        self.kind, self.detail = kind, detail


def too_deep(line: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON line nests arrays/objects deeper than `limit`, without parsing it.

    Cheap: a line with no more than `limit` opening brackets cannot be deeper; otherwise the
    strings are blanked out and the depth is a running sum over the brackets left.
    """
    if line.count(b"[") + line.count(b"{") <= limit:
        return False
    bare = _STRING.sub(b'""', line)
    steps = _DEPTH_STEP[np.frombuffer(bare, dtype=np.uint8)]
    return bool(steps.size) and int(np.cumsum(steps, dtype=np.int32).max()) > limit


class _Budget:
    def __init__(self, limit: int):
        self.limit = self.left = limit
        self.cut_strings = 0

    @property
    def used(self) -> int:
        return self.limit - max(self.left, 0)


def _safe(value: Any, budget: _Budget) -> Any:
    """A copy with every string UTF-8-safe and cut, counting values against the budget."""
    budget.left -= 1
    if budget.left < 0:
        raise EventError("values")
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            budget.cut_strings += 1
            value = cut(value, MAX_STRING)
        return utf8(value)
    if isinstance(value, dict):
        return {_safe(k, budget): _safe(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe(v, budget) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and Infinity are not JSON: events.jsonl stays readable by any parser
    return value  # int, float, bool, None


def parse_event(line: bytes, budget: _Budget | None = None) -> dict[str, Any]:
    """One event line -> a UTF-8-safe dict, or EventError saying why it is not kept."""
    if len(line) > MAX_LINE:
        raise EventError("long")
    start = line.lstrip()[:1]
    if start != b"{":
        raise EventError("object" if start in _JSON_STARTS else "json")
    if too_deep(line):
        raise EventError("deep")
    try:
        event = _DECODER.decode(line.decode("utf-8"))
    except RecursionError:
        raise EventError("deep") from None
    except (ValueError, UnicodeDecodeError):
        raise EventError("json") from None
    if not isinstance(event, dict):
        raise EventError("object")
    try:
        return _safe(event, budget or _Budget(MAX_VALUES_PER_EVENT))
    except RecursionError:
        raise EventError("deep") from None


def _seconds_since(stamp: Any, started_unix: float) -> float:
    """The event's own `time` on the run's clock, or when the harness saw it."""
    try:
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            t_s = round(float(stamp) - started_unix, 3)
            if math.isfinite(t_s):
                return t_s
    except (OverflowError, ValueError):
        pass
    return round(time.time() - started_unix, 3)


class EventTail:
    """Reads an events file as it grows. poll() is called from one thread at a time (the
    harness's watcher), write() after the phase; nothing else mutates the tail.

    `started_unix` puts each event on the run's clock (its `t_s`); None reads a recorded file,
    whose events carry the `t_s` they were recorded with. `max_events`: events kept."""

    def __init__(self, path: Path, started_unix: float | None, max_events: int = MAX_EVENTS):
        self.path = Path(path)
        self.started_unix = started_unix
        self.max_events = max_events
        self.events: list[dict[str, Any]] = []
        self._last: dict[str, Any] | None = None
        self._offset = 0
        self._partial = b""
        self._overflow = False  # the line being read is already longer than MAX_LINE
        self._lines = 0  # non-blank lines looked at
        self._values = 0  # values in the kept events
        self._counts: dict[str, int] = {}
        self._details: dict[str, str] = {}

    # --- notes ------------------------------------------------------------------------

    def _note(self, kind: str, n: int = 1, detail: str = "") -> None:
        self._counts[kind] = self._counts.get(kind, 0) + n
        if detail and kind not in self._details:
            self._details[kind] = clean(detail, 120)

    @property
    def notes(self) -> list[str]:
        """Every problem with what the entry wrote, once each, with how often it happened."""
        values = dict(
            max_line=MAX_LINE // 1024,
            max_depth=MAX_DEPTH,
            max_values_per_event=MAX_VALUES_PER_EVENT,
            max_string=MAX_STRING,
            max_mib=MAX_BYTES // 2**20,
            max_events=self.max_events,
            max_values=MAX_VALUES,
            max_lines=MAX_LINES,
        )
        return [
            NOTES[kind].format(n=n, detail=self._details.get(kind, ""), **values) for kind, n in self._counts.items()
        ]

    # --- reading ----------------------------------------------------------------------

    def poll(self) -> bool:
        """Read what was appended since the last call (at most POLL_BYTES); True when it read
        something. Never raises for anything in the file."""
        if self._offset >= MAX_BYTES:
            if "bytes" not in self._counts:  # it reached the cap exactly: say so once it grows past it
                try:
                    if os.stat(self.path).st_size > self._offset:
                        self._note("bytes")
                except OSError:
                    pass
            return False
        try:
            chunk, size = self._read(min(POLL_BYTES, MAX_BYTES - self._offset))
        except Exception as exc:  # noqa: BLE001 - OSError mostly: replaced by a folder, a FIFO, unreadable
            if "file" not in self._counts:
                self._note("file", detail=f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}")
            return False
        if not chunk:
            return False
        try:
            taken = self._feed(chunk)
        except Exception as exc:  # noqa: BLE001 - a bug in reading must never stop a phase
            self._note("error", detail=type(exc).__name__)
            taken = len(chunk)
        self._offset += taken
        if self._offset >= MAX_BYTES and size > self._offset:
            self._note("bytes")
        return taken > 0

    def _read(self, limit: int) -> tuple[bytes, int]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the harness
        except FileNotFoundError:
            return b"", 0
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise OSError(0, "not a regular file")
            if info.st_size <= self._offset:
                return b"", info.st_size
            f.seek(self._offset)
            return f.read(limit), info.st_size

    def _feed(self, chunk: bytes) -> int:
        """Take the complete lines of a chunk (at most POLL_LINES parsed), keep the unfinished last
        one; how many bytes of the chunk were taken (the rest is read again by the next poll)."""
        end = chunk.rfind(b"\n")
        if end < 0:
            self._keep_partial(chunk)
            return len(chunk)
        newline = chunk.find(b"\n")
        first = chunk[:newline]
        if self._partial or self._overflow:
            if self._overflow or len(self._partial) + len(first) > MAX_LINE:
                self._note("long")
                first = b""
            else:
                first = self._partial + first
        self._partial, self._overflow = b"", False
        if first and not self._add(first):
            self._follow_latest(chunk, end)
            self._keep_partial(chunk[end + 1 :])
            return len(chunk)
        parsed = 1
        for match in _LINE.finditer(chunk, newline + 1, end):  # blank lines are skipped in C, uncounted
            if parsed >= POLL_LINES and not self._full():  # enough for one call: the rest waits
                return match.start()
            parsed += 1
            if not self._add(match.group()):
                break
        if self._full():
            self._follow_latest(chunk, end)
        self._keep_partial(chunk[end + 1 :])
        return len(chunk)

    def _follow_latest(self, chunk: bytes, end: int) -> None:
        """Past the caps only the latest line of a chunk is parsed, so that `last` follows the run."""
        for _ in range(100):  # the last non-blank line before `end`, if it is near
            start = chunk.rfind(b"\n", 0, end) + 1
            line = chunk[start:end]
            if line and not line.isspace():
                self._follow(line)
                return
            if start == 0:
                return
            end = start - 1

    def _keep_partial(self, rest: bytes) -> None:
        if self._overflow:
            return
        if len(self._partial) + len(rest) > MAX_LINE:
            self._partial, self._overflow = b"", True
        else:
            self._partial += rest

    def _full(self) -> bool:
        return len(self.events) >= self.max_events or self._lines >= MAX_LINES

    def _follow(self, line: bytes | None) -> None:
        if line is None or len(line) > MAX_LINE:
            return
        try:
            event = parse_event(line)
        except Exception:  # noqa: BLE001 - not an event: `last` stays as it was
            return
        self._last = self._stamped(event)

    def _stamped(self, event: dict[str, Any]) -> dict[str, Any]:
        if self.started_unix is not None:
            event["t_s"] = _seconds_since(event.get("time"), self.started_unix)
        return event

    def _add(self, line: bytes) -> bool:
        """Parse and keep one line; False when the caps are reached (the line is not looked at)."""
        if self._full():
            if "count" not in self._counts and "lines" not in self._counts:
                self._note("count" if len(self.events) >= self.max_events else "lines")
            return False
        if line.isspace():
            return True
        self._lines += 1
        room = MAX_VALUES - self._values
        budget = _Budget(min(MAX_VALUES_PER_EVENT, room))
        try:
            event = parse_event(line, budget)
        except EventError as exc:
            self._note("total" if exc.kind == "values" and room < MAX_VALUES_PER_EVENT else exc.kind, detail=exc.detail)
            return True
        except Exception as exc:  # noqa: BLE001 - whatever the line holds, it is only skipped
            self._note("error", detail=type(exc).__name__)
            return True
        if budget.cut_strings:
            self._note("strings", budget.cut_strings)
        self._last = self._stamped(event)
        self.events.append(event)
        self._values += budget.used
        return True

    @property
    def last(self) -> dict[str, Any] | None:
        """The latest event read (also one that came past max_events and is not kept)."""
        return self._last

    def drain(self) -> None:
        """Read what is left, within the bounds."""
        while self.poll():
            pass

    def write(self, path: Path) -> None:
        """Read what is left (within the bounds) and write the kept events as JSON lines."""
        self.drain()
        atomic_write_text(path, "".join(json.dumps(e, default=str) + "\n" for e in self.events))


def describe(event: dict[str, Any] | None, limit: int = 60) -> str:
    """'epoch 3 train_loss=0.912 acc=0.55' for the progress line: escaped, at most `limit` chars."""
    if not event:
        return ""
    try:
        name = clean(event.get("event", "event"), limit)
        fields = []
        for key, value in event.items():
            if key in ("event", "time", "t_s"):
                continue
            if isinstance(value, float):
                fields.append(f"{clean(key, limit)}={value:.4g}")
            elif isinstance(value, (int, str)):
                fields.append(f"{clean(key, limit)}={clean(value, limit)}")
            if sum(len(f) + 1 for f in fields) > limit:
                break
        return clean(name + " " + " ".join(fields), limit)
    except Exception:  # noqa: BLE001 - a progress line is never worth a crash
        return ""


# --- a recorded events.jsonl ---------------------------------------------------------------


@dataclass
class EventLog:
    """The events of a finished run, as `read` found them."""

    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # non-blank lines that are not kept events (malformed, too long, too deep, too many values)
    truncated: bool = False  # the file passed MAX_BYTES or MAX_LINES (or failed mid-read): the rest was not read


_SKIPPED = ("long", "deep", "json", "object", "values", "total", "error")  # notes of lines not kept
_TRUNCATED = ("bytes", "count", "lines")  # notes of a file not read to its end


def read(path: Path) -> EventLog:
    """A recorded events.jsonl, drained by an EventTail: the same bounds as a live file, each event
    with the `t_s` it was recorded with, and as many events as lines (MAX_LINES: the file was capped
    to MAX_EVENTS when it was recorded). A missing file, a FIFO or a folder is an empty log; nothing
    in the file raises."""
    tail = EventTail(path, started_unix=None, max_events=MAX_LINES)
    tail.drain()
    counts = tail._counts
    failed_mid_read = "file" in counts and tail._offset > 0
    return EventLog(
        tail.events,
        skipped=sum(counts.get(kind, 0) for kind in _SKIPPED),
        truncated=failed_mid_read or any(kind in counts for kind in _TRUNCATED),
    )


def _epoch_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contract's end-of-epoch markers: `{"event": "epoch", "epoch": N}` (docs/submission-contract.md).
    Other events that happen to carry an `epoch` field (a checkpoint's, say) are not epochs."""
    return [e for e in events if e.get("event") == "epoch" and finite(e.get("epoch")) is not None]


def epochs(events: list[dict[str, Any]]) -> int | None:
    """Epochs the submission finished, as its epoch events say; None without any."""
    found = {finite(e.get("epoch")) for e in _epoch_events(events)}
    return len(found) or None


def last_epoch(events: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(epoch, t_s) of the latest epoch event with a positive epoch and a positive time."""
    for event in reversed(_epoch_events(events)):
        epoch, t_s = finite(event.get("epoch")), finite(event.get("t_s"))
        if epoch > 0 and t_s is not None and t_s > 0:
            return epoch, t_s
    return None


def throughput(events: list[dict[str, Any]], train_count: int | None) -> float | None:
    """Training images per second: the latest epoch event's `images` (images processed so far)
    when it says, else epochs x training images, over its time. None (unknown, not a guess)
    without an epoch event or a training set size."""
    for event in reversed(_epoch_events(events)):
        epoch, t_s, images = finite(event.get("epoch")), finite(event.get("t_s")), finite(event.get("images"))
        if t_s is None or t_s <= 0:
            continue
        if images is not None and images > 0:
            return images / t_s
        if epoch > 0 and train_count:
            return epoch * train_count / t_s
    return None
