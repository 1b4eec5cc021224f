"""Reading a run directory for the report: result.json (through the typed model),
metrics.csv (the monitor's samples), events.jsonl (the submission's own events, through
harness.events), and the phase logs as a fallback for log tails.

Every file may be missing, truncated or malformed; the readers say so (None, an empty
log, counts of skipped rows) instead of failing.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import events as events_mod
from harness import text
from harness.formatting import finite
from harness.model import PhaseResult, RunResult, SeriesResult, from_dict

MAX_RESULT_BYTES = 16 * 2**20  # a result.json bigger than this is not read (the harness writes a few KiB)
MAX_METRICS_BYTES = 64 * 2**20
MAX_EVENT_FIELDS = 64  # distinct numeric fields plotted and tabled; the rest are counted
MAX_EVENT_T_S = 1e7  # an event stamped further than this from the start (s) is not plotted
MAX_EVENT_VALUE = 1e15  # nor a value larger than this (a plot's range must stay finite)
EVENT_EXCLUDED = {"t_s", "time", "timestamp", "epoch", "step", "iter", "iteration", "event"}
LOG_TAIL_LINES = 20
LOG_LINE_CHARS = 300  # a log tail line in the report, at most


# --- result.json -------------------------------------------------------------------------


def read_result(path: Path) -> RunResult | SeriesResult:
    """A result.json through the typed model (harness.model.from_dict); ValueError saying why
    when the file is missing, too big, not JSON or not of the model's shape."""
    try:
        # A run directory may come from someone else: a symlink could name any file of this host, and
        # a FIFO would block the open, so only a regular file of its own is read.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError(f"{text.clean(Path(path).name)} is not a regular file")
            data = f.read(MAX_RESULT_BYTES + 1)
    except OSError as exc:
        why = "a symlink, which is not followed" if exc.errno == errno.ELOOP else exc.strerror or exc
        raise ValueError(f"{text.clean(Path(path).name)} could not be read ({why})") from None
    if len(data) > MAX_RESULT_BYTES:
        raise ValueError(f"{text.clean(Path(path).name)} is over {MAX_RESULT_BYTES // 2**20} MiB")
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise TypeError(f"a JSON {type(obj).__name__}, not an object")
        return from_dict(obj)
    except Exception as exc:  # noqa: BLE001 - any shape that is not the model's
        raise ValueError(
            f"{text.clean(Path(path).name)} is not a harness result ({type(exc).__name__}: {text.clean(exc, 200)})"
        ) from None


# --- metrics.csv --------------------------------------------------------------------------


def read_limited(path: Path, limit: int, tail: bool = False) -> str | None:
    """At most `limit` bytes of a file (its end when `tail`), as text; None when unreadable."""
    try:
        with open(path, "rb") as f:
            if tail:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - limit))
            data = f.read(limit)
    except OSError:
        return None
    return data.decode("utf-8", "replace")


@dataclass
class Metrics:
    """metrics.csv as columns of floats (NaN for empty or unparsable cells)."""

    t: list[float]
    cols: dict[str, list[float]]
    gpu_indices: list[int]
    skipped_rows: int = 0

    def col(self, name: str) -> list[float] | None:
        c = self.cols.get(name)
        if c is None or all(math.isnan(v) for v in c):
            return None
        return c


def _cell(cell: str) -> float:
    try:
        return float(cell) if cell.strip() else math.nan
    except ValueError:
        return math.nan


def read_metrics(path: Path) -> Metrics | None:
    content = read_limited(path, MAX_METRICS_BYTES)
    if not content:
        return None
    rows = csv.reader(io.StringIO(content))
    try:
        header = [h.strip() for h in next(rows)]
    except (StopIteration, csv.Error):
        return None
    if "t_s" not in header:
        return None
    t_idx = header.index("t_s")
    cols: dict[str, list[float]] = {h: [] for h in header if h != "t_s"}
    t: list[float] = []
    skipped = 0
    try:
        for row in rows:
            if len(row) != len(header):  # a truncated last line, a stray line
                skipped += 1 if row else 0
                continue
            ts = _cell(row[t_idx])
            if not math.isfinite(ts):
                skipped += 1
                continue
            t.append(ts)
            for h, cell in zip(header, row):
                if h != "t_s":
                    cols[h].append(_cell(cell))
    except csv.Error:
        skipped += 1
    gpus = sorted({int(m.group(1)) for h in header if (m := re.match(r"gpu(\d+)_", h))})
    return Metrics(t=t, cols=cols, gpu_indices=gpus, skipped_rows=skipped)


# --- events.jsonl -------------------------------------------------------------------------


@dataclass
class Events(events_mod.EventLog):
    """The events as the report shows them: every numeric field as a series over time."""

    fields_dropped: int = 0  # numeric fields past MAX_EVENT_FIELDS (known after series())
    points_outside: int = 0  # events or values past MAX_EVENT_T_S / MAX_EVENT_VALUE (known after series())
    _series: dict[str, tuple[list[float], list[float]]] | None = field(default=None, repr=False)

    def series(self) -> dict[str, tuple[list[float], list[float]]]:
        """label -> (t_s values, field values) for every numeric field over time (computed once)."""
        if self._series is None:
            self._series = self._make_series()
        return self._series

    def _make_series(self) -> dict[str, tuple[list[float], list[float]]]:
        raw: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        dropped: set[tuple[str, str]] = set()
        outside = 0
        for ev in self.events:
            t = finite(ev.get("t_s"))
            if t is None:
                continue
            if abs(t) > MAX_EVENT_T_S:  # a `time` of its own far from the run: no plot can show it
                outside += 1
                continue
            name = text.clean(ev.get("event", ""), 60)
            for k, v in ev.items():
                if k in EVENT_EXCLUDED or (x := finite(v)) is None:
                    continue
                if abs(x) > MAX_EVENT_VALUE:
                    outside += 1
                    continue
                key = (name, text.clean(k, 100))
                if key not in raw and len(raw) >= MAX_EVENT_FIELDS:
                    dropped.add(key)
                    continue
                ts, xs = raw.setdefault(key, ([], []))
                ts.append(t)
                xs.append(x)
        names_per_field: dict[str, int] = {}
        for _, k in raw:
            names_per_field[k] = names_per_field.get(k, 0) + 1
        out = {}
        for (name, k), v in raw.items():
            out[k if names_per_field[k] == 1 or not name else f"{k} ({name})"] = v
        self.fields_dropped = len(dropped)
        self.points_outside = outside
        return out

    def epochs(self) -> int | None:
        """Epochs reached as the submission reported them (harness.events.epochs)."""
        return events_mod.epochs(self.events)

    def last(self) -> dict[str, Any] | None:
        return self.events[-1] if self.events else None


def read_events(path: Path) -> Events:
    """events.jsonl through the one reader, harness.events.read (its bounds, its byte cap)."""
    log = events_mod.read(path)
    return Events(events=log.events, skipped=log.skipped, truncated=log.truncated)


# --- logs and the whole directory ------------------------------------------------------------


def log_tail(run_dir: Path, phase: PhaseResult) -> list[str]:
    """The phase's last LOG_TAIL_LINES lines (from the result, else from <phase>.log), each
    cleaned and cut to LOG_LINE_CHARS."""
    if phase.log_tail:
        lines = list(phase.log_tail)[-LOG_TAIL_LINES:]
    else:
        content = read_limited(Path(run_dir) / f"{phase.phase}.log", 64 * 1024, tail=True)
        lines = content.split("\n")[-LOG_TAIL_LINES - 1 :] if content else []
        if lines and lines[-1] == "":
            lines.pop()
        lines = lines[-LOG_TAIL_LINES:]
    return [text.clean(str(x).rstrip("\r"), LOG_LINE_CHARS) for x in lines]


def _sigterm_at(phase: PhaseResult) -> float | None:
    """When SIGTERM went out, or when it was due (the moment entries plan for) if the phase ended first."""
    for s in phase.signals:
        if s.name.upper() == "SIGTERM":
            return s.at_s
    if phase.grace_s is not None and phase.budget_s:
        return max(phase.budget_s - phase.grace_s, 0.0)
    return None


@dataclass
class RunFiles:
    """One graded run as the report shows it: the result and what its directory holds."""

    run_dir: Path
    result: RunResult
    metrics: Metrics | None
    events: Events
    budget_s: float | None  # the train budget: where the plots mark the deadline
    sigterm_s: float | None


def read_run(run_dir: Path, result: RunResult) -> RunFiles:
    """Everything the report needs besides the result; a file that cannot be read is absent."""
    run_dir = Path(run_dir)
    try:
        metrics = read_metrics(run_dir / "metrics.csv")
    except Exception:  # noqa: BLE001
        metrics = None
    try:
        events = read_events(run_dir / "events.jsonl")
    except Exception:  # noqa: BLE001
        events = Events()
    budget = result.train.budget_s if result.train.budget_s and result.train.budget_s > 0 else None
    return RunFiles(run_dir, result, metrics, events, budget, _sigterm_at(result.train))
