"""The report people read: `report.md` and a self-contained `report.html` for a run directory.

Inputs (what the orchestrator leaves in `runs/<run-id>/`): the `RunResult` itself,
`metrics.csv` (the monitor's samples), `events.jsonl` (the submission's own progress
events), `train.log` / `predict.log` (fallback for log tails). Every one of the files
may be missing, truncated or malformed; the report says so instead of failing.

Everything that comes from the submission (its name, commands, logs, event names and
values, checkpoint names, reasons, class-folder names) is untrusted and escaped by the one
escaping module, harness.text: control characters, lone surrogates and bidi overrides are
escaped (`text.clean`), HTML text goes through `text.html`, Markdown cells through
`text.md`, logs are fenced with a fence longer than any backtick run inside them
(`text.md_code`), and plot labels are made mathtext-safe. Output is bounded: at most
MAX_CHECKPOINT_ROWS checkpoint rows, LOG_TAIL_LINES log lines of LOG_LINE_CHARS each,
MAX_EVENT_FIELDS event fields, CELL_CHARS per cell; the files are written as UTF-8 with
anything unencodable replaced, so no input can stop the report being written.

Plots are PNGs drawn with matplotlib's Agg canvas (no pyplot, no global backend state)
and embedded as base64 `data:` URIs: the HTML is one file with no external assets or JS.

Series (`--repeats N`): the top-level report links to each repeat's own
`<repeat-dir>/report.html`. The repeat directory names are taken from the
`repeat_dirs` argument when given; otherwise from a `repeat-NN` component of the
repeat's `run_id` when it has one; otherwise `repeat-01`, `repeat-02`, ... (1-based, in
order). Each repeat's report is written by calling `write_report` on its directory
(the orchestrator does this as each repeat finishes); `write_series_report` only
writes the top-level summary.

API:
    write_report(run_dir, result)                          -> None
    write_series_report(run_dir, series, repeat_dirs=None) -> None
    summary_table(result_or_series)                        -> str
"""

from __future__ import annotations

import base64
import csv
import enum
import html
import io
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from harness import events as events_mod
from harness import text
from harness.files import atomic_write_bytes
from harness.model import (
    GpuSummary,
    Outcome,
    PhaseResult,
    RunResult,
    SeriesResult,
    Status,
)

MAX_EVENTS_BYTES = 32 * 2**20  # events.jsonl is written by the submission: read at most this
MAX_EVENT_LINES = 100_000
MAX_EVENT_FIELDS = 64  # distinct numeric fields plotted and tabled; the rest are counted
MAX_EVENT_T_S = 1e7  # an event stamped further than this from the start (s) is not plotted
MAX_EVENT_VALUE = 1e15  # nor a value larger than this (a plot's range must stay finite)
MAX_CHECKPOINT_ROWS = 20  # checkpoint files listed per phase; the rest are counted
LOG_LINE_CHARS = 300  # a log tail line in the report, at most
CELL_CHARS = 2000  # any one escaped value, at most
MAX_METRICS_BYTES = 64 * 2**20
MAX_SERIES_PER_GROUP = 10
MAX_PLOT_POINTS = 4000
LOG_TAIL_LINES = 20
DPI = 100
NO_GPU_TEXT = "No GPU was visible to the harness; GPU metrics are not available."

OUTCOME_TEXT = {
    "completed": "exited 0 before the deadline",
    "killed_at_deadline": "still running at the deadline and stopped by the harness",
    "crashed": "exited non-zero on its own",
    "oom": "killed by the kernel for exceeding its memory limit",
    "no_checkpoint": "ended without leaving a checkpoint in HAET_CHECKPOINTS",
    "no_predictions": "ended without writing predictions.csv",
    "interrupted": "the operator stopped the harness",
    "not_started": "an earlier phase failed",
}
TRAIN_DEADLINE_NOTE = "normal under the competition rules: the last saved checkpoint counts"
FAILED_OUTCOMES = {"crashed", "oom", "no_checkpoint", "no_predictions", "interrupted"}
EVENT_EXCLUDED = {"t_s", "time", "timestamp", "epoch", "step", "iter", "iteration", "event"}


# --- small formatting helpers ------------------------------------------------------------


def _val(x: Any) -> str:
    return x.value if isinstance(x, enum.Enum) else str(x)


def _num(x: Any) -> Optional[float]:
    """A finite float from an int/float (not bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def fmt_pct(x: Optional[float], digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def fmt_bytes(n: Optional[float]) -> str:
    if n is None:
        return "—"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"  # pragma: no cover


def fmt_s(x: Optional[float], digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f} s"


def fmt_num(x: Optional[float], fmt: str = "{:.1f}", unit: str = "") -> str:
    if x is None:
        return "—"
    return fmt.format(x) + ("" if not unit else unit if unit == "%" else f" {unit}")


def fmt_energy(j: Optional[float]) -> str:
    return "—" if j is None else f"{j:,.0f} J ({j / 3600:.2f} Wh)"


def wilson(correct: int, total: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95% interval for a binomial proportion."""
    if total <= 0:
        return (0.0, 0.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _ci(result: RunResult) -> Optional[tuple[float, float]]:
    if result.score is not None:
        return (result.score.ci95_low, result.score.ci95_high)
    if result.correct is not None and result.total:
        return wilson(result.correct, result.total)
    return None


def accuracy_text(result: RunResult) -> str:
    """'93.40% (934/1000, 95% CI 91.66–94.79%)' or 'not scored'."""
    if result.accuracy is None:
        return "not scored"
    parts = []
    if result.correct is not None and result.total is not None:
        parts.append(f"{result.correct}/{result.total}")
    ci = _ci(result)
    if ci is not None:
        parts.append(f"95% CI {100 * ci[0]:.2f}–{100 * ci[1]:.2f}%")
    return fmt_pct(result.accuracy) + (f" ({', '.join(parts)})" if parts else "")


def _ci_text(result: RunResult) -> str:
    ci = _ci(result)
    return "—" if ci is None or result.accuracy is None else f"{100 * ci[0]:.2f}–{100 * ci[1]:.2f}%"


def signals_text(phase: PhaseResult) -> str:
    if not phase.signals:
        return "none"
    return ", ".join(f"{s.name} at {s.at_s:.2f} s" for s in phase.signals)


def outcome_text(phase: PhaseResult) -> str:
    o = _val(phase.outcome)
    out = f"{o}: {OUTCOME_TEXT.get(o, '')}".rstrip(": ")
    if phase.phase == "train" and o == Outcome.KILLED_AT_DEADLINE.value:
        out += f" ({TRAIN_DEADLINE_NOTE})"
    return out


def _sigterm_at(phase: PhaseResult) -> Optional[float]:
    for s in phase.signals:
        if s.name.upper() == "SIGTERM":
            return s.at_s
    return None


def _no_gpu_text(note: str, device: str) -> str:
    """The plain no-GPU sentence, plus the monitor's own note when it says something more.
    A --device cpu run never asks NVML, so there the note alone speaks: "no GPU was visible"
    would be a guess."""
    note = (note or "").strip()
    if device == "cpu" and note:
        return note.rstrip(".") + "."
    if not note or note.rstrip(".") == NO_GPU_TEXT.rstrip("."):
        return NO_GPU_TEXT
    return f"{NO_GPU_TEXT} {note}"


def _all_warnings(result: RunResult) -> list[str]:
    out: list[str] = []
    for w in list(result.warnings) + list(result.monitor.warnings or []):
        if w and w not in out:
            out.append(w)
    return out


def _phase_failed(result: RunResult, phase: PhaseResult) -> bool:
    o = _val(phase.outcome)
    if o in FAILED_OUTCOMES:
        return True
    # invalid predictions: the predict log is what explains them
    return (
        _val(result.status) == Status.INVALID_PREDICTIONS.value
        and phase.phase == "predict"
        and o != Outcome.NOT_STARTED.value
    )


def _class_names(result: RunResult, n: int) -> list[str]:
    classes = list(result.data.classes or [])
    if len(classes) != n and result.score is not None and len(result.score.per_class) == n:
        classes = list(result.score.per_class)
    if len(classes) != n:
        classes = [str(i) for i in range(n)]
    return [str(c) for c in classes]


def _gpu_energy(result: RunResult) -> Optional[float]:
    gpus = result.monitor.gpus
    if not gpus:
        return None
    vals = [g.energy_j for g in gpus if g.energy_j is not None]
    return sum(vals) if vals else None


# --- reading the run directory -----------------------------------------------------------


def _read_limited(path: Path, limit: int, tail: bool = False) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            if tail:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - limit))
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

    def col(self, name: str) -> Optional[list[float]]:
        c = self.cols.get(name)
        if c is None or all(math.isnan(v) for v in c):
            return None
        return c


def read_metrics(path: Path) -> Optional[Metrics]:
    content = _read_limited(path, MAX_METRICS_BYTES)
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
            try:
                ts = float(row[t_idx])
            except ValueError:
                skipped += 1
                continue
            if not math.isfinite(ts):
                skipped += 1
                continue
            t.append(ts)
            for h, cell in zip(header, row):
                if h == "t_s":
                    continue
                try:
                    v = float(cell) if cell.strip() else math.nan
                except ValueError:
                    v = math.nan
                cols[h].append(v)
    except csv.Error:
        skipped += 1
    gpus = sorted({int(m.group(1)) for h in header if (m := re.match(r"gpu(\d+)_", h))})
    return Metrics(t=t, cols=cols, gpu_indices=gpus, skipped_rows=skipped)


@dataclass
class Events:
    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    truncated: bool = False
    fields_dropped: int = 0  # numeric fields past MAX_EVENT_FIELDS (known after series())
    points_outside: int = 0  # events or values past MAX_EVENT_T_S / MAX_EVENT_VALUE (known after series())

    def series(self) -> dict[str, tuple[list[float], list[float]]]:
        """label -> (t_s values, field values) for every numeric field over time."""
        raw: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        dropped: set[tuple[str, str]] = set()
        outside = 0
        for ev in self.events:
            t = _num(ev.get("t_s"))
            if t is None:
                continue
            if abs(t) > MAX_EVENT_T_S:  # a `time` of its own far from the run: no plot can show it
                outside += 1
                continue
            name = text.clean(ev.get("event", ""), 60)
            for k, v in ev.items():
                if k in EVENT_EXCLUDED:
                    continue
                x = _num(v)
                if x is None:
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
        out: dict[str, tuple[list[float], list[float]]] = {}
        for (name, k), v in raw.items():
            label = k if names_per_field[k] == 1 or not name else f"{k} ({name})"
            out[label] = v
        self.fields_dropped = len(dropped)
        self.points_outside = outside
        return out

    def epochs(self) -> Optional[int]:
        """Epochs reached as the submission reported them: distinct `epoch` values in its
        `epoch` events (or in any events when it has none), else the count of `epoch` events."""
        epoch_events = [e for e in self.events if e.get("event") == "epoch"]
        for pool in (epoch_events, self.events):
            vals = {_num(e.get("epoch")) for e in pool} - {None}
            if vals:
                return len(vals)
        return len(epoch_events) or None

    def last(self) -> Optional[dict[str, Any]]:
        return self.events[-1] if self.events else None


def read_events(path: Path) -> Events:
    """events.jsonl, streamed line by line under the bounds of harness.events (each line parsed by
    events.parse_event: size, depth, values, strings made UTF-8-safe), at most MAX_EVENTS_BYTES
    and MAX_EVENT_LINES lines, at most events.MAX_VALUES values in all."""
    out = Events()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return out
    values = 0
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return out
        read = lines = 0
        while True:
            line = f.readline(events_mod.MAX_LINE + 2)
            if not line:
                break
            read += len(line)
            lines += 1
            if read > MAX_EVENTS_BYTES or lines > MAX_EVENT_LINES:
                out.truncated = True
                break
            if not line.endswith(b"\n") and len(line) > events_mod.MAX_LINE:
                while (more := f.readline(2**20)) and not more.endswith(b"\n"):  # skip the rest of it
                    read += len(more)
                read += len(more)
                out.skipped += 1
                continue
            if not line.strip():
                continue
            budget = events_mod._Budget(min(events_mod.MAX_VALUES_PER_EVENT, events_mod.MAX_VALUES - values))
            try:
                event = events_mod.parse_event(line.strip(), budget)
            except Exception:  # noqa: BLE001 - EventError, or anything else: the line is skipped
                out.skipped += 1
                continue
            values += budget.used
            out.events.append(event)
    return out


def _log_tail(run_dir: Path, phase: PhaseResult) -> list[str]:
    """The phase's last LOG_TAIL_LINES lines, each cleaned and cut to LOG_LINE_CHARS."""
    if phase.log_tail:
        lines = list(phase.log_tail)[-LOG_TAIL_LINES:]
    else:
        content = _read_limited(run_dir / f"{phase.phase}.log", 64 * 1024, tail=True)
        lines = content.split("\n")[-LOG_TAIL_LINES - 1:] if content else []
        if lines and lines[-1] == "":
            lines.pop()
        lines = lines[-LOG_TAIL_LINES:]
    return [text.clean(str(x).rstrip("\r"), LOG_LINE_CHARS) for x in lines]


# --- plots ---------------------------------------------------------------------------------


def _safe_label(s: Any, limit: int = 40) -> str:
    """A label matplotlib draws literally: no mathtext, not hidden by a leading '_'."""
    s = text.clean(s)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _nan_to_none(xs: Sequence[float]) -> list[Optional[float]]:
    return [None if math.isnan(x) else x for x in xs]


def _mark_deadline(ax, budget_s: Optional[float], sigterm_s: Optional[float], label: bool) -> None:
    if sigterm_s is not None:
        ax.axvline(sigterm_s, color="#bc4c00", ls="--", lw=1,
                   label=f"SIGTERM ({sigterm_s:.1f} s)" if label else None)
    if budget_s is not None and budget_s > 0:
        ax.axvline(budget_s, color="#cf222e", ls="-", lw=1.2,
                   label=f"deadline ({budget_s:.0f} s)" if label else None)
    # the x range always shows the deadline, however early the run ended
    lim = ax.dataLim
    lo = min(0.0, lim.x0) if math.isfinite(lim.x0) else 0.0
    hi = max([v for v in (budget_s, sigterm_s, lim.x1 if math.isfinite(lim.x1) else None) if v] or [1.0])
    ax.set_xlim(lo, hi * 1.02)


def _top_legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=min(len(handles), 5),
                  fontsize=8, frameon=False, borderaxespad=0.2)


def _markers(n: int) -> dict[str, Any]:
    """Dots when there are few samples (a run that ended in a second still shows something)."""
    return {"marker": "o", "ms": 3} if n <= 30 else {}


def _style(ax, ylabel: str, zero: bool = False) -> None:
    if zero:
        ax.set_ylim(bottom=0)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def plot_cpu(m: Metrics, budget_s: Optional[float], sigterm_s: Optional[float]) -> Optional[str]:
    cpu, rss = m.col("cpu_percent"), m.col("rss_bytes")
    if not m.t or (cpu is None and rss is None):
        return None
    fig = _new_figure(10, 4.6)
    axes = fig.subplots(2, 1, sharex=True)
    if cpu is not None:
        axes[0].plot(m.t, _nan_to_none(cpu), color="#0969da", lw=1.2, **_markers(len(m.t)))
    _style(axes[0], "CPU %  (100 = 1 core)", zero=True)
    if rss is not None:
        axes[1].plot(m.t, [v / 2**30 if not math.isnan(v) else None for v in rss],
                     color="#8250df", lw=1.2, **_markers(len(m.t)))
    _style(axes[1], "RSS (GiB)", zero=True)
    for i, ax in enumerate(axes):
        _mark_deadline(ax, budget_s, sigterm_s, label=i == 0)
    _top_legend(axes[0])
    axes[1].set_xlabel("seconds since train start")
    axes[0].set_title("CPU and memory of the submission's process tree", fontsize=11, loc="left")
    fig.tight_layout()
    return _png_data_uri(fig)


def plot_gpu(m: Metrics, budget_s: Optional[float], sigterm_s: Optional[float]) -> Optional[str]:
    if not m.t or not m.gpu_indices:
        return None
    panels = [("util", "utilization %", 1.0), ("power_w", "power (W)", 1.0),
              ("mem_used_bytes", "memory used (GiB)", 1 / 2**30)]
    present = [p for p in panels if any(m.col(f"gpu{i}_{p[0]}") is not None for i in m.gpu_indices)]
    if not present:
        return None
    fig = _new_figure(10, 1.9 * len(present) + 0.6)
    axes = fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, ylabel, scale) in zip(axes, present):
        for i in m.gpu_indices:
            c = m.col(f"gpu{i}_{key}")
            if c is not None:
                ax.plot(m.t, [None if math.isnan(v) else v * scale for v in c], lw=1.2,
                        label=f"GPU {i}", **_markers(len(m.t)))
        _style(ax, ylabel, zero=True)
        _mark_deadline(ax, budget_s, sigterm_s, label=ax is axes[0])
    _top_legend(axes[0])
    axes[-1].set_xlabel("seconds since train start")
    axes[0].set_title("GPU", fontsize=11, loc="left")
    fig.tight_layout()
    return _png_data_uri(fig)


def _group_of(label: str) -> str:
    low = label.lower()
    if "loss" in low:
        return "loss"
    if "acc" in low:
        return "accuracy"
    if low in ("lr", "learning_rate") or low.startswith(("lr", "learning_rate")):
        return "learning rate"
    return "other"


GROUP_ORDER = ("loss", "accuracy", "learning rate", "other")


MAX_OTHER_PANELS = 3


def group_series(series: dict[str, tuple[list[float], list[float]]]) -> dict[str, list[str]]:
    """Panel title -> labels: losses together, accuracies together, lr alone; other fields
    (throughput, grad norm, ... different units) one panel each, the rest in one 'other' panel."""
    groups: dict[str, list[str]] = {}
    for label in series:
        groups.setdefault(_group_of(label), []).append(label)
    out = {g: groups[g] for g in GROUP_ORDER[:3] if g in groups}
    other = groups.get("other", [])
    if len(other) <= MAX_OTHER_PANELS + 1:
        out.update({_safe_label(label, 24): [label] for label in other})
    else:
        out.update({_safe_label(label, 24): [label] for label in other[:MAX_OTHER_PANELS]})
        out["other"] = other[MAX_OTHER_PANELS:]
    return out


def plot_events(ev: Events, budget_s: Optional[float], sigterm_s: Optional[float]) -> Optional[str]:
    series = ev.series()
    if not series:
        return None
    groups = group_series(series)
    fig = _new_figure(10, 2.1 * len(groups) + 0.6)
    axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (gname, labels) in zip(axes, groups.items()):
        for label in labels[:MAX_SERIES_PER_GROUP]:
            ts, xs = series[label]
            if len(xs) > MAX_PLOT_POINTS:  # per-step events: every k-th point is plenty
                k = math.ceil(len(xs) / MAX_PLOT_POINTS)
                ts, xs = ts[::k] + ts[-1:], xs[::k] + xs[-1:]
            ax.plot(ts, xs, lw=1.3, marker="o" if len(xs) <= 60 else None, ms=3,
                    label=_safe_label(label))
        _style(ax, gname)
        _mark_deadline(ax, budget_s, sigterm_s, label=False)
        if len(labels) > 1 or gname in GROUP_ORDER:
            ax.legend(loc="best", fontsize=8, frameon=False)
        if gname == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes[-1].set_xlabel("seconds since train start")
    axes[0].set_title("The submission's own events", fontsize=11, loc="left")
    fig.tight_layout()
    return _png_data_uri(fig)


def plot_confusion(confusion: list[list[int]], classes: list[str]) -> Optional[str]:
    n = len(confusion)
    if n == 0 or any(len(r) != n for r in confusion):
        return None
    fig = _new_figure(5.2, 4.7)
    ax = fig.subplots()
    im = ax.imshow(confusion, cmap="Blues", interpolation="nearest")
    vmax = max(max(r) for r in confusion) or 1
    for i in range(n):
        for j in range(n):
            v = confusion[i][j]
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8 if n <= 12 else 6,
                    color="white" if v > vmax / 2 else "#1f2328")
    labels = [_safe_label(c, 14) for c in classes]
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _png_data_uri(fig)


def plot_series_accuracy(series: SeriesResult) -> Optional[str]:
    if not series.repeats:
        return None
    fig = _new_figure(9, 2.8)
    ax = fig.subplots()
    cis = [c for r in series.repeats if r.accuracy is not None and (c := _ci(r)) is not None]
    lows = [100 * c[0] for c in cis] + [100 * r.accuracy for r in series.repeats if r.accuracy is not None]
    highs = [100 * c[1] for c in cis] + [100 * r.accuracy for r in series.repeats if r.accuracy is not None]
    bottom, top = (min(lows) - 2, max(highs) + 2) if lows else (0.0, 100.0)
    ax.set_ylim(bottom, top)
    for i, r in enumerate(series.repeats, 1):
        if r.accuracy is None:
            ax.plot([i], [bottom + 0.04 * (top - bottom)], "x", color="#cf222e", ms=9)
            ax.annotate("not scored", (i, bottom + 0.04 * (top - bottom)), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=8, color="#cf222e")
            continue
        ci = _ci(r)
        if ci is not None:
            ax.errorbar([i], [100 * r.accuracy], yerr=[[100 * (r.accuracy - ci[0])],
                        [100 * (ci[1] - r.accuracy)]], fmt="o", color="#0969da", capsize=4)
        else:
            ax.plot([i], [100 * r.accuracy], "o", color="#0969da")
    ax.axhline(100 * series.accuracy_mean, color="#1a7f37", ls="--", lw=1,
               label=f"mean {100 * series.accuracy_mean:.2f}% (not scored = 0)")
    ax.set_xticks(range(1, len(series.repeats) + 1))
    ax.set_xlim(0.5, len(series.repeats) + 0.5)
    ax.set_xlabel("repeat")
    ax.set_ylabel("accuracy % (95% CI)")
    ax.grid(True, alpha=0.3)
    _top_legend(ax)
    fig.tight_layout()
    return _png_data_uri(fig)


# --- HTML ------------------------------------------------------------------------------------

CSS = """
*{box-sizing:border-box}
body{font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1f2328;background:#f6f8fa;margin:0}
main{max-width:1100px;margin:0 auto;padding:20px 24px 40px}
header.top{margin:8px 0 4px}
h1{font-size:24px;margin:0;word-break:break-word}
h2{font-size:18px;margin:0 0 10px;padding-bottom:6px;border-bottom:1px solid #eaeef2}
h3{font-size:15px;margin:16px 0 6px}
nav{font-size:13px;color:#57606a;margin:4px 0 8px}
nav a{margin-right:12px}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin:14px 0}
table{border-collapse:collapse;margin:6px 0 10px}
th,td{padding:4px 12px 4px 0;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{font-weight:600;color:#57606a;white-space:nowrap}
table.kv th{width:190px}
table.kv td{overflow-wrap:anywhere}.cols table.kv th{width:150px}
table.grid td.num{white-space:nowrap}.tw{overflow-x:auto;max-width:100%}
table.grid th,table.grid td{padding:4px 12px}
table.grid thead th{background:#f6f8fa;border-bottom:1px solid #d0d7de}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.badge{display:inline-block;padding:1px 10px;border-radius:12px;font-weight:600;color:#fff;font-size:13px;vertical-align:middle}
.b-scored,.b-completed{background:#1a7f37}.b-failed,.b-crashed,.b-oom,.b-no_checkpoint,.b-no_predictions{background:#cf222e}
.b-invalid_predictions{background:#bc4c00}.b-interrupted,.b-not_started{background:#6e7781}.b-killed_at_deadline{background:#0969da}
.hero{display:flex;gap:32px;align-items:baseline;flex-wrap:wrap;margin:8px 0 12px}
.big{font-size:36px;font-weight:700;font-variant-numeric:tabular-nums}
.sub{color:#57606a}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px;margin:8px 0}
.warn ul{margin:4px 0;padding-left:20px}
.note{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:8px 12px;margin:8px 0}
.err{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:8px 12px;margin:8px 0}
pre{background:#0d1117;color:#e6edf3;padding:10px 12px;border-radius:6px;overflow:auto;max-height:420px;
 font-size:12px;line-height:1.45;white-space:pre-wrap;word-break:break-all}
details{margin:6px 0}summary{cursor:pointer;color:#57606a}
img.plot{max-width:100%;height:auto;display:block;margin:8px 0}
.bar{display:inline-block;height:10px;background:#54aeff;border-radius:2px;vertical-align:middle}
.cols{display:flex;gap:28px;flex-wrap:wrap}.cols>div{flex:1 1 420px;min-width:0}
footer{color:#57606a;font-size:12px;text-align:center;margin-top:20px}
"""


def e(x: Any, limit: int = CELL_CHARS) -> str:
    """Any text for HTML (body or attribute): cleaned, cut, escaped (harness.text.html)."""
    return text.html(x, limit)


def _badge(value: str) -> str:
    cls = re.sub(r"[^a-z_]", "", value.lower())
    return f'<span class="badge b-{cls}">{e(value)}</span>'


def _kv_table(rows: Iterable[tuple[str, str]]) -> str:
    """rows of (escaped-html key, escaped-html value)."""
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _grid(headers: Sequence[str], rows: Iterable[Sequence[str]], num: Sequence[int] = ()) -> str:
    """A table; headers are plain text, cells are already-escaped html; `num` columns right-aligned."""
    head = "".join(f'<th class="num">{e(h)}</th>' if i in num else f"<th>{e(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
                         for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<div class="tw"><table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(uri: Optional[str], alt: str) -> str:
    return f'<img class="plot" alt="{e(alt)}" src="{uri}">' if uri else ""


def _pre(lines: Sequence[str]) -> str:
    return "<pre>" + text.html_lines(list(lines), LOG_LINE_CHARS) + "</pre>"


def _guarded(title: str, fn: Callable[[], str]) -> str:
    """A section that fails renders as a note; a report never dies of one bad input."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        return (f'<section><h2>{e(title)}</h2><div class="err">This section could not be '
                f"rendered: {e(type(exc).__name__)}: {e(exc, 300)}</div></section>")


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>{body}"
        "<footer>generated by haet-harness</footer></main></body></html>\n"
    )


def _warnings_html(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{e(w)}</li>" for w in warnings)
    return f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>'


@dataclass
class _Ctx:
    run_dir: Path
    result: RunResult
    metrics: Optional[Metrics]
    events: Events
    budget_s: Optional[float]
    sigterm_s: Optional[float]


def _html_headline(c: _Ctx) -> str:
    r = c.result
    status = _val(r.status)
    acc_big = fmt_pct(r.accuracy) if r.accuracy is not None else "not scored"
    sub = []
    if r.correct is not None and r.total is not None:
        sub.append(f"{r.correct} / {r.total} correct")
    ci = _ci(r)
    if ci is not None and r.accuracy is not None:
        sub.append(f"95% CI (Wilson) {100 * ci[0]:.2f}–{100 * ci[1]:.2f}%")
    hero = (f'<div class="hero"><div><div class="big">{e(acc_big)}</div>'
            f'<div class="sub">{e(" · ".join(sub))}</div></div>'
            f"<div>{_badge(status)}"
            + (f' <span class="sub">{e(r.reason)}</span>' if r.reason else "")
            + "</div></div>")
    rows = [
        ("submission", f"{e(r.submission.name)}"),
        ("status", f"{e(status)}" + (f" — {e(r.reason)}" if r.reason else "")),
        ("accuracy", e(accuracy_text(r))),
        ("seed", e(r.seed)),
        ("data index hash", f'<code>{e(r.data.index_hash)}</code>'),
        ("run id", f"<code>{e(r.run_id)}</code>"),
        ("started", e(r.started_at)),
        ("finished", e(r.finished_at)),
        ("wall time", e(fmt_s(r.wall_seconds))),
        ("submission sha256", f"<code>{e(r.submission.sha256)}</code>"),
    ]
    return (f'<header class="top"><h1>{e(r.submission.name)} <span class="sub">· HAET run report</span></h1>'
            '<nav><a href="#phases">phases</a><a href="#resources">resources</a>'
            '<a href="#events">events</a><a href="#score">score</a><a href="#environment">environment</a></nav>'
            f"</header><section>{hero}{_warnings_html(_all_warnings(r))}{_kv_table(rows)}</section>")


def _checkpoint_rows(phase: PhaseResult) -> tuple[list[tuple[str, str, str]], int]:
    """(name, size, sha256 prefix) of the first MAX_CHECKPOINT_ROWS checkpoints, as plain text,
    and how many more files there are."""
    listed = [ck for ck in (phase.checkpoints or []) if isinstance(ck, dict)]
    total = max(len(listed), _int(getattr(phase, "checkpoint_files", 0)))
    rows = []
    for ck in listed[:MAX_CHECKPOINT_ROWS]:
        b = ck.get("bytes")
        rows.append((text.clean(ck.get("name", ""), 200),
                     fmt_bytes(b) if isinstance(b, (int, float)) and not isinstance(b, bool) else "—",
                     text.clean(ck.get("sha256") or "", 80)[:16]))
    return rows, total - len(rows)


def _int(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else 0


def _late_text(phase: PhaseResult) -> str:
    late = list(getattr(phase, "late_checkpoints", None) or [])
    if not late:
        return ""
    shown = ", ".join(text.clean(x, 100) for x in late[:5])
    return f"{len(late)} file(s) written after the deadline, not scored: {shown}" + (
        f" and {len(late) - 5} more" if len(late) > 5 else "")


def _checkpoints_html(phase: PhaseResult) -> str:
    rows, more = _checkpoint_rows(phase)
    if not rows:
        return ""
    cells = [[e(name), e(size), f"<code>{e(sha)}</code>"] for name, size, sha in rows]
    out = "<h3>Checkpoints</h3>" + _grid(["name", "size", "sha256"], cells, num=(1,))
    if more > 0:
        out += f'<p class="sub">and {more} more file(s)</p>'
    return out


def _phase_html(c: _Ctx, phase: PhaseResult) -> str:
    o = _val(phase.outcome)
    rows = [
        ("outcome", f"{_badge(o)} {e(outcome_text(phase).split(': ', 1)[-1])}"),
        ("time", e(f"{fmt_s(phase.seconds, 2)} of {fmt_s(phase.budget_s, 0)} budget")),
        ("signals sent", e(signals_text(phase))),
        ("exit code", e("—" if phase.exit_code is None else phase.exit_code)),
        ("stray processes killed", e(phase.stray_processes_killed)),
    ]
    if phase.detail:
        rows.append(("detail", e(phase.detail)))
    if _late_text(phase):
        rows.append(("late checkpoints", e(_late_text(phase))))
    out = f"<h3>{e(phase.phase.capitalize())}</h3>{_kv_table(rows)}{_checkpoints_html(phase)}"
    tail = _log_tail(c.run_dir, phase)
    if tail:
        if _phase_failed(c.result, phase):
            out += f"<h3>Last lines of {e(phase.phase)}.log</h3>{_pre(tail)}"
        else:
            out += (f"<details><summary>last lines of {e(phase.phase)}.log</summary>"
                    f"{_pre(tail)}</details>")
    elif _phase_failed(c.result, phase):
        out += f'<p class="sub">{e(phase.phase)}.log is empty.</p>'
    return out


def _html_phases(c: _Ctx) -> str:
    return (f'<section id="phases"><h2>Phases</h2><div class="cols"><div>{_phase_html(c, c.result.train)}'
            f"</div><div>{_phase_html(c, c.result.predict)}</div></div></section>")


def _gpu_rows(g: GpuSummary) -> list[str]:
    return [
        e(g.index), e(g.name), e(fmt_num(g.util_mean, "{:.0f}", "%")), e(fmt_num(g.util_max, "{:.0f}", "%")),
        e(f"{fmt_bytes(g.memory_used_peak_bytes)} / {fmt_bytes(g.memory_total_bytes)}"),
        e(fmt_num(g.power_mean_w, "{:.0f}", "W")), e(fmt_num(g.power_max_w, "{:.0f}", "W")),
        e(fmt_energy(g.energy_j)), e(fmt_num(g.temperature_max_c, "{:.0f}", "°C")),
        e(fmt_num(g.sm_clock_mean_mhz, "{:.0f}", "MHz")),
    ]


GPU_HEADERS = ["GPU", "name", "util mean", "util max", "peak memory", "power mean", "power max",
               "energy", "max temp", "SM clock"]


def _html_resources(c: _Ctx) -> str:
    mon = c.result.monitor
    parts = [_warnings_html(list(mon.warnings or []))]
    parts.append(_kv_table([
        ("samples", e(f"{mon.samples} every {mon.interval_s:g} s")),
        ("CPU mean / max", e(f"{fmt_num(mon.cpu_percent_mean, '{:.0f}', '%')} / "
                             f"{fmt_num(mon.cpu_percent_max, '{:.0f}', '%')}  (100% = one core)")),
        ("peak RSS", e(fmt_bytes(mon.rss_peak_bytes))),
        ("deadline", e(f"{fmt_s(c.budget_s, 0)}" + (f", SIGTERM at {c.sigterm_s:.1f} s"
                                                        if c.sigterm_s is not None else ""))),
    ]))
    m = c.metrics
    if m is None or not m.t:
        parts.append('<p class="sub">metrics.csv is missing or has no samples; no resource plots.</p>')
    else:
        if m.skipped_rows:
            parts.append(f'<p class="sub">{m.skipped_rows} malformed row(s) of metrics.csv skipped.</p>')
        parts.append(_img(plot_cpu(m, c.budget_s, c.sigterm_s), "CPU and RSS over time"))
    if mon.gpus is None:
        parts.append(f'<div class="note">{e(_no_gpu_text(mon.gpu_note, c.result.environment.device))}</div>')
    else:
        if mon.gpu_note:
            parts.append(f'<div class="note">{e(mon.gpu_note)}</div>')
        if mon.gpus:
            parts.append(_grid(GPU_HEADERS, [_gpu_rows(g) for g in mon.gpus], num=(0, 2, 3, 4, 5, 6, 7, 8, 9)))
        if m is not None and m.t:
            parts.append(_img(plot_gpu(m, c.budget_s, c.sigterm_s), "GPU over time"))
    return f'<section id="resources"><h2>Resources</h2>{"".join(parts)}</section>'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _g(x: float) -> str:
    """6 significant digits, but a unix time or a step count stays readable."""
    if abs(x) < 1e6 or abs(x) >= 1e15:
        return f"{x:.6g}"
    return f"{x:,.0f}" if x.is_integer() else f"{x:.3f}"


def _fmt_event_value(v: Any) -> str:
    x = _num(v)
    if x is None:
        s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
        return s if len(s) <= 80 else s[:79] + "…"
    return _g(x)


def _event_stats(ev: Events) -> list[tuple[str, str, str, str, str, int]]:
    """label, group, last, min, max, points."""
    out = []
    for label, (ts, xs) in ev.series().items():
        out.append((label, _group_of(label), _g(xs[-1]), _g(min(xs)), _g(max(xs)), len(xs)))
    return out


def _html_events(c: _Ctx) -> str:
    ev = c.events
    parts = []
    if not ev.events:
        parts.append('<p class="sub">The submission wrote no events (events.jsonl is empty or missing).</p>')
    else:
        info = _plural(len(ev.events), "event")
        epochs = ev.epochs()
        if epochs:
            info += f", {_plural(epochs, 'epoch')} reported"
        parts.append(f"<p>{e(info)}.</p>")
    if ev.skipped:
        parts.append(f'<p class="sub">{ev.skipped} malformed line(s) of events.jsonl skipped.</p>')
    if ev.truncated:
        parts.append('<p class="sub">events.jsonl is very large; only its beginning was read.</p>')
    if ev.events:
        parts.append(_img(plot_events(ev, c.budget_s, c.sigterm_s), "the submission's curves"))
        stats = _event_stats(ev)
        if stats:
            parts.append(_grid(["field", "group", "last", "min", "max", "points"],
                               [[e(s[0]), e(s[1]), e(s[2]), e(s[3]), e(s[4]), e(s[5])] for s in stats],
                               num=(2, 3, 4, 5)))
        if ev.fields_dropped:
            parts.append(f'<p class="sub">{ev.fields_dropped} more numeric field(s) not shown '
                         f"(at most {MAX_EVENT_FIELDS}).</p>")
        if ev.points_outside:
            parts.append(f'<p class="sub">{ev.points_outside} event time(s) or value(s) far out of range '
                         "not plotted.</p>")
        last = ev.last() or {}
        parts.append("<h3>Last event</h3>" + _kv_table(
            (e(k, 100), e(_fmt_event_value(v))) for k, v in list(last.items())[:30]))
    return f'<section id="events"><h2>Training curves (the submission\'s events)</h2>{"".join(parts)}</section>'


def _per_class_rows(c: _Ctx) -> list[tuple[str, int, int, Optional[float]]]:
    s = c.result.score
    assert s is not None
    n = len(s.confusion)
    classes = _class_names(c.result, n)
    rows = []
    for i, name in enumerate(classes):
        total = sum(s.confusion[i]) if i < n else 0
        correct = s.confusion[i][i] if i < n and i < len(s.confusion[i]) else 0
        acc = s.per_class.get(name, s.per_class.get(str(i)))
        if acc is None and total:
            acc = correct / total
        rows.append((name, correct, total, acc))
    return rows


def _html_score(c: _Ctx) -> str:
    s = c.result.score
    if s is None:
        return ('<section id="score"><h2>Score</h2><p class="sub">Not scored: '
                f"{e(c.result.reason or _val(c.result.status))}</p></section>")
    classes = _class_names(c.result, len(s.confusion))
    table = _grid(["class", "correct", "total", "accuracy", ""], [
        [e(name), e(corr), e(tot), e(fmt_pct(acc, 1)),
         f'<span class="bar" style="width:{int(round(100 * (acc or 0)))}px"></span>']
        for name, corr, tot, acc in _per_class_rows(c)], num=(1, 2, 3))
    img = _img(plot_confusion(s.confusion, classes), "confusion matrix")
    return (f'<section id="score"><h2>Score</h2><p>{e(accuracy_text(c.result))}</p>'
            f'<div class="cols"><div><h3>Confusion matrix</h3>{img}</div>'
            f"<div><h3>Per-class accuracy</h3>{table}</div></div></section>")


def _env_rows(r: RunResult) -> list[tuple[str, str]]:
    env = r.environment
    return [
        ("harness", env.harness), ("python", env.python), ("platform", env.platform),
        ("torch", env.torch or "—"), ("CUDA", env.cuda or "—"),
        ("runner", env.runner + ("" if env.isolated else " (not isolated: the entry ran on this host)")),
        ("entry build", _build_text(r.build)),
        ("device", env.device), ("GPUs", ", ".join(env.gpus) if env.gpus else "none"),
        ("driver", env.driver or "—"), ("image", env.image or "—"), ("hostname", env.hostname or "—"),
    ]


def _build_text(build) -> str:
    if build is None:
        return "none (the runtime image)"
    return (f"{build.outcome} in {build.seconds:g}s, network {'on' if build.network else 'off'}, "
            f"{build.image or '—'} {build.image_id or ''}; log {build.log or '—'}"
            + (f": {build.detail}" if build.detail else ""))


def _data_rows(r: RunResult) -> list[tuple[str, str]]:
    d = r.data
    return [
        ("source", d.source), ("eval source", d.eval_source),
        ("classes", ", ".join(map(str, d.classes))),
        ("train", f"{d.train_count} images ({d.train_per_class} per class)"),
        ("eval", f"{d.eval_count} images ({d.eval_per_class} per class)"),
        ("seed", str(d.seed)), ("index hash", d.index_hash),
        ("held-out order", "secret (key in result.json)" + ("; the images are a public split" if d.heldout_public else "")),
    ]


def _sub_rows(r: RunResult) -> list[tuple[str, str]]:
    s = r.submission
    return [("name", s.name), ("path", s.path), ("train command", s.train),
            ("predict command", s.predict), ("sha256", s.sha256)]


def _html_environment(c: _Ctx) -> str:
    r = c.result
    kv = lambda rows: _kv_table((e(k), e(v)) for k, v in rows)  # noqa: E731
    return (f'<section id="environment"><h2>Environment, data and submission</h2><div class="cols">'
            f"<div><h3>Environment</h3>{kv(_env_rows(r))}</div>"
            f"<div><h3>Data</h3>{kv(_data_rows(r))}<h3>Submission</h3>{kv(_sub_rows(r))}</div>"
            "</div></section>")


def render_html(c: _Ctx) -> str:
    body = "".join(_guarded(title, fn) for title, fn in [
        ("Headline", lambda: _html_headline(c)),
        ("Phases", lambda: _html_phases(c)),
        ("Resources", lambda: _html_resources(c)),
        ("Training curves", lambda: _html_events(c)),
        ("Score", lambda: _html_score(c)),
        ("Environment", lambda: _html_environment(c)),
    ])
    return _page(f"{c.result.submission.name} · {c.result.run_id}", body)


# --- Markdown --------------------------------------------------------------------------------


def md(x: Any, limit: int = CELL_CHARS) -> str:
    """Any text for a Markdown paragraph or table cell (harness.text.md): one clean line, no raw
    HTML, no broken tables."""
    return "" if x is None else text.md(x, limit)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    lines = ["| " + " | ".join(md(h) for h in headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(md(v) for v in r) + " |")
    return "\n".join(lines) + "\n"


def md_kv(rows: Iterable[tuple[str, Any]]) -> str:
    return md_table(["", ""], rows)


def md_code(lines: Sequence[str]) -> str:
    return text.md_code(list(lines), LOG_LINE_CHARS)


def _md_phase(c: _Ctx, phase: PhaseResult) -> str:
    rows = [
        ("outcome", outcome_text(phase)),
        ("time", f"{fmt_s(phase.seconds, 2)} of {fmt_s(phase.budget_s, 0)} budget"),
        ("signals sent", signals_text(phase)),
        ("exit code", "—" if phase.exit_code is None else phase.exit_code),
        ("stray processes killed", phase.stray_processes_killed),
    ]
    if phase.detail:
        rows.append(("detail", phase.detail))
    if _late_text(phase):
        rows.append(("late checkpoints", _late_text(phase)))
    out = f"### {md(phase.phase.capitalize())}\n\n{md_kv(rows)}\n"
    checkpoints, more = _checkpoint_rows(phase)
    if checkpoints:
        out += "Checkpoints:\n\n" + md_table(["name", "size", "sha256"], checkpoints, right=(1,)) + "\n"
        if more > 0:
            out += f"and {more} more file(s)\n\n"
    if _phase_failed(c.result, phase):
        tail = _log_tail(c.run_dir, phase)
        out += (f"Last lines of {phase.phase}.log:\n\n{md_code(tail)}\n" if tail
                else f"{phase.phase}.log is empty.\n\n")
    return out


def _md_section(title: str, fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        return f"## {title}\n\nThis section could not be rendered: {md(type(exc).__name__)}: {md(exc, 300)}\n\n"


def render_md(c: _Ctx) -> str:
    r = c.result

    def headline() -> str:
        out = f"# {md(r.submission.name)} — HAET run report\n\n"
        out += md_kv([
            ("status", _val(r.status) + (f" — {r.reason}" if r.reason else "")),
            ("accuracy", accuracy_text(r)), ("seed", r.seed), ("data index hash", r.data.index_hash),
            ("run id", r.run_id), ("started", r.started_at), ("finished", r.finished_at),
            ("wall time", fmt_s(r.wall_seconds)),
        ]) + "\n"
        ws = _all_warnings(r)
        if ws:
            out += "**Warnings:**\n\n" + "".join(f"- {md(w)}\n" for w in ws) + "\n"
        return out

    def phases() -> str:
        return "## Phases\n\n" + _md_phase(c, r.train) + _md_phase(c, r.predict)

    def resources() -> str:
        mon = r.monitor
        out = "## Resources\n\n" + md_kv([
            ("samples", f"{mon.samples} every {mon.interval_s:g} s"),
            ("CPU mean / max", f"{fmt_num(mon.cpu_percent_mean, '{:.0f}', '%')} / "
                               f"{fmt_num(mon.cpu_percent_max, '{:.0f}', '%')} (100% = one core)"),
            ("peak RSS", fmt_bytes(mon.rss_peak_bytes)),
        ]) + "\n"
        if mon.warnings:
            out += "**Monitor warnings:**\n\n" + "".join(f"- {md(w)}\n" for w in mon.warnings) + "\n"
        if mon.gpus is None:
            out += md(_no_gpu_text(mon.gpu_note, r.environment.device)) + "\n\n"
        else:
            if mon.gpu_note:
                out += md(mon.gpu_note) + "\n\n"
            if mon.gpus:
                out += md_table(GPU_HEADERS, [[html.unescape(x) for x in _gpu_rows(g)] for g in mon.gpus],
                                right=(0, 2, 3, 4, 5, 6, 7, 8, 9)) + "\n"
        return out

    def events() -> str:
        ev = c.events
        out = "## Training curves (the submission's events)\n\n"
        if not ev.events:
            out += "The submission wrote no events.\n\n"
        else:
            epochs = ev.epochs()
            out += _plural(len(ev.events), "event") + (f", {_plural(epochs, 'epoch')} reported" if epochs else "") + ".\n\n"
            stats = _event_stats(ev)
            if stats:
                out += md_table(["field", "group", "last", "min", "max", "points"], stats,
                                right=(2, 3, 4, 5)) + "\n"
        if ev.skipped:
            out += f"{ev.skipped} malformed line(s) of events.jsonl skipped.\n\n"
        if ev.fields_dropped:
            out += f"{ev.fields_dropped} more numeric field(s) not shown (at most {MAX_EVENT_FIELDS}).\n\n"
        if ev.points_outside:
            out += f"{ev.points_outside} event time(s) or value(s) far out of range not plotted.\n\n"
        if ev.truncated:
            out += "events.jsonl is very large; only its beginning was read.\n\n"
        return out

    def score() -> str:
        if r.score is None:
            return f"## Score\n\nNot scored: {md(r.reason or _val(r.status))}\n\n"
        s = r.score
        classes = _class_names(r, len(s.confusion))
        out = f"## Score\n\n{md(accuracy_text(r))}\n\n### Per-class accuracy\n\n"
        out += md_table(["class", "correct", "total", "accuracy"],
                        [[n, corr, tot, fmt_pct(a, 1)] for n, corr, tot, a in _per_class_rows(c)],
                        right=(1, 2, 3)) + "\n"
        out += "### Confusion matrix (rows: true, columns: predicted)\n\n"
        out += md_table(["true \\ pred"] + classes, [[classes[i]] + list(row) for i, row in
                                                      enumerate(s.confusion)],
                        right=tuple(range(1, len(classes) + 1))) + "\n"
        return out

    def environment() -> str:
        return ("## Environment\n\n" + md_kv(_env_rows(r)) + "\n## Data\n\n" + md_kv(_data_rows(r))
                + "\n## Submission\n\n" + md_kv(_sub_rows(r)) + "\n")

    return "".join(_md_section(t, f) for t, f in [
        ("Headline", headline), ("Phases", phases), ("Resources", resources),
        ("Training curves", events), ("Score", score), ("Environment", environment)])


# --- public API ----------------------------------------------------------------------------


def _context(run_dir: Path, result: RunResult) -> _Ctx:
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
    return _Ctx(run_dir, result, metrics, events, budget, _sigterm_at(result.train))


def write_report(run_dir: Path, result: RunResult) -> None:
    """Write `report.md` and `report.html` for one graded run into `run_dir`, atomically."""
    c = _context(Path(run_dir), result)
    _write(Path(run_dir) / "report.md", render_md(c))
    _write(Path(run_dir) / "report.html", render_html(c))


def _write(path: Path, content: str) -> None:
    """UTF-8, atomically; anything unencodable (a lone surrogate that escaped the escaping) is replaced."""
    atomic_write_bytes(path, content.encode("utf-8", "replace"))


def repeat_dir_names(series: SeriesResult, repeat_dirs: Optional[Sequence[str]] = None) -> list[str]:
    """The directory of each repeat, relative to the series' run directory (see module doc)."""
    if repeat_dirs is not None:
        if len(repeat_dirs) != len(series.repeats):
            raise ValueError(f"{len(repeat_dirs)} repeat_dirs for {len(series.repeats)} repeats")
        return [str(d) for d in repeat_dirs]
    names = []
    for i, r in enumerate(series.repeats, 1):
        m = re.search(r"(repeat-\d+)$", str(r.run_id))
        names.append(m.group(1) if m else f"repeat-{i:02d}")
    return names


@dataclass
class _RepeatRow:
    index: int
    dir: str
    result: RunResult
    epochs: Optional[int]
    energy_j: Optional[float]


def _repeat_rows(run_dir: Path, series: SeriesResult, dirs: list[str]) -> list[_RepeatRow]:
    rows = []
    for i, (d, r) in enumerate(zip(dirs, series.repeats), 1):
        try:
            epochs = read_events(Path(run_dir) / d / "events.jsonl").epochs()
        except Exception:  # noqa: BLE001
            epochs = None
        rows.append(_RepeatRow(i, d, r, epochs, _gpu_energy(r)))
    return rows


def _mean_std_text(series: SeriesResult) -> str:
    return (f"{100 * series.accuracy_mean:.2f}% ± {100 * series.accuracy_std:.2f}% "
            f"over {len(series.repeats)} repeats")


def _series_warnings(series: SeriesResult) -> list[str]:
    out = []
    for i, r in enumerate(series.repeats, 1):
        for w in _all_warnings(r):
            out.append(f"repeat {i}: {w}")
    return out


def render_series_html(run_dir: Path, series: SeriesResult, dirs: list[str]) -> str:
    rows = _repeat_rows(run_dir, series, dirs)
    scored = sum(1 for r in series.repeats if _val(r.status) == Status.SCORED.value)
    status = _val(series.status)
    hero = (f'<div class="hero"><div><div class="big">{e(fmt_pct(series.accuracy_mean))}'
            f' <span class="sub" style="font-size:20px">± {e(fmt_pct(series.accuracy_std))}</span></div>'
            f'<div class="sub">mean ± std over {len(series.repeats)} repeats; {scored} scored '
            "(a repeat that did not score counts as 0)</div></div>"
            f"<div>{_badge(status)}" + (f' <span class="sub">{e(series.reason)}</span>' if series.reason else "")
            + "</div></div>")
    head = _kv_table([
        ("submission", e(series.submission.name)),
        ("accuracy", e(_mean_std_text(series))),
        ("run id", f"<code>{e(series.run_id)}</code>"),
        ("started", e(series.started_at)), ("finished", e(series.finished_at)),
        ("wall time", e(fmt_s(series.wall_seconds))),
        ("submission sha256", f"<code>{e(series.submission.sha256)}</code>"),
    ])
    def row(rr: _RepeatRow) -> list[str]:
        try:
            return html_row(rr)
        except Exception as exc:  # noqa: BLE001 - one unreadable repeat is a row saying so
            return [e(rr.index), "—", e(f"could not be shown: {type(exc).__name__}: {exc}", 300)] + ["—"] * 6 + [
                f'<a href="{e(_url_path(rr.dir))}/report.html">{e(rr.dir)}</a>']

    def html_row(rr: _RepeatRow) -> list[str]:
        return [e(rr.index), e(rr.result.seed),
          _badge(_val(rr.result.status)) + (f'<div class="sub" style="white-space:normal;max-width:220px">{e(rr.result.reason)}</div>'
                                            if rr.result.reason and _val(rr.result.status) != "scored" else ""),
          e(fmt_pct(rr.result.accuracy) if rr.result.accuracy is not None else "—")
          + (f' <span class="sub">({e(rr.result.correct)}/{e(rr.result.total)})</span>'
             if rr.result.correct is not None else ""),
          e(_ci_text(rr.result)), e(_val(rr.result.train.outcome)),
          e(f"{rr.result.train.seconds:.1f} / {rr.result.train.budget_s:.0f}"),
          e(rr.epochs if rr.epochs is not None else "—"),
          e(fmt_energy(rr.energy_j) if rr.energy_j is not None else "no GPU" if rr.result.monitor.gpus is None
            else "—"),
          f'<a href="{e(_url_path(rr.dir))}/report.html">{e(rr.dir)}</a>']

    table = _grid(
        ["#", "seed", "status", "accuracy", "95% CI", "train outcome", "train s", "epochs", "GPU energy", "report"],
        [row(rr) for rr in rows],
        num=(0, 1, 3, 4, 6, 7, 8),
    )
    img = ""
    try:
        img = _img(plot_series_accuracy(series), "accuracy per repeat")
    except Exception as exc:  # noqa: BLE001
        img = f'<div class="err">plot failed: {e(exc)}</div>'
    env = ""
    if series.repeats:
        r0 = series.repeats[0]
        kv = lambda rows: _kv_table((e(k), e(v)) for k, v in rows)  # noqa: E731
        data_rows = [x for x in _data_rows(r0) if x[0] not in ("seed", "index hash")]
        env = ('<section id="environment"><h2>Environment and data (first repeat)</h2><div class="cols">'
               f"<div><h3>Environment</h3>{kv(_env_rows(r0))}</div>"
               f"<div><h3>Data</h3>{kv(data_rows)}<h3>Submission</h3>{kv(_sub_rows(r0))}</div></div></section>")
    body = (f'<header class="top"><h1>{e(series.submission.name)} <span class="sub">· HAET series report'
            f"</span></h1></header><section>{hero}{_warnings_html(_series_warnings(series))}{head}</section>"
            f'<section id="repeats"><h2>Repeats</h2>{table}{img}</section>{env}')
    return _page(f"{series.submission.name} · {series.run_id}", body)


def _url_path(d: str) -> str:
    from urllib.parse import quote

    return quote(text.utf8(d).replace("\\", "/"), safe="/")


def render_series_md(run_dir: Path, series: SeriesResult, dirs: list[str]) -> str:
    rows = _repeat_rows(run_dir, series, dirs)
    out = f"# {md(series.submission.name)} — HAET series report\n\n"
    out += md_kv([
        ("status", _val(series.status) + (f" — {series.reason}" if series.reason else "")),
        ("accuracy", _mean_std_text(series) + " (a repeat that did not score counts as 0)"),
        ("run id", series.run_id), ("started", series.started_at), ("finished", series.finished_at),
        ("wall time", fmt_s(series.wall_seconds)),
    ]) + "\n## Repeats\n\n"
    head = ["#", "seed", "status", "accuracy", "95% CI", "train outcome", "train s", "epochs", "GPU energy"]
    def row(rr: _RepeatRow) -> list[Any]:
        try:
            return [
                rr.index, rr.result.seed, _val(rr.result.status),
                (fmt_pct(rr.result.accuracy) + f" ({rr.result.correct}/{rr.result.total})")
                if rr.result.accuracy is not None else "—",
                _ci_text(rr.result), _val(rr.result.train.outcome),
                f"{rr.result.train.seconds:.1f} / {rr.result.train.budget_s:.0f}",
                rr.epochs if rr.epochs is not None else "—",
                fmt_energy(rr.energy_j) if rr.energy_j is not None else "no GPU" if rr.result.monitor.gpus is None
                else "—",
            ]
        except Exception as exc:  # noqa: BLE001 - one unreadable repeat is a row saying so
            return [rr.index, "—", text.clean(f"could not be shown: {type(exc).__name__}: {exc}", 300)] + ["—"] * 6

    lines = md_table(head, [row(rr) for rr in rows], right=(0, 1, 6, 7)).splitlines()
    # link each row to its repeat's report (a link, so not escaped as a cell)
    head_line, sep = lines[:2]
    head_line = head_line[:-1] + "| report |"
    sep = sep + "---|"
    body = [ln[:-1] + f"| [{md(rr.dir)}](<{_url_path(rr.dir)}/report.md>) |" for ln, rr in zip(lines[2:], rows)]
    out += "\n".join([head_line, sep] + body) + "\n\n"
    ws = _series_warnings(series)
    if ws:
        out += "**Warnings:**\n\n" + "".join(f"- {md(w)}\n" for w in ws) + "\n"
    return out


def write_series_report(run_dir: Path, series: SeriesResult,
                        repeat_dirs: Optional[Sequence[str]] = None) -> None:
    """Write the top-level `report.md` / `report.html` of a `--repeats N` run into `run_dir`.

    `repeat_dirs`: each repeat's directory relative to `run_dir`, in the order of
    `series.repeats`; default as described in the module docstring (`repeat-01`, ...).
    """
    dirs = repeat_dir_names(series, repeat_dirs)
    _write(Path(run_dir) / "report.md", render_series_md(Path(run_dir), series, dirs))
    _write(Path(run_dir) / "report.html", render_series_html(Path(run_dir), series, dirs))


# --- console summary -------------------------------------------------------------------------


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _console_safe(s: Any) -> str:
    """No control characters from the submission on the operator's terminal (harness.text.clean)."""
    return text.clean(s, CELL_CHARS)


def _run_summary(r: RunResult) -> str:
    status = _val(r.status) + (f": {r.reason}" if r.reason else "")
    mon = r.monitor
    rows = [
        ("status", status),
        ("accuracy", accuracy_text(r)),
        ("train", f"{_val(r.train.outcome)}  {r.train.seconds:.1f} s / {r.train.budget_s:.0f} s budget"
                  + (f"  ({signals_text(r.train)})" if r.train.signals else "")),
        ("predict", f"{_val(r.predict.outcome)}  {r.predict.seconds:.1f} s / {r.predict.budget_s:.0f} s budget"),
        ("cpu", f"mean {fmt_num(mon.cpu_percent_mean, '{:.0f}', '%')}  max "
                f"{fmt_num(mon.cpu_percent_max, '{:.0f}', '%')}  peak RSS {fmt_bytes(mon.rss_peak_bytes)}"),
    ]
    if mon.gpus is None:
        rows.append(("gpu", "no GPU"))
    elif not mon.gpus:
        rows.append(("gpu", mon.gpu_note or "no GPU samples"))
    for g in mon.gpus or []:
        rows.append((f"gpu{g.index}", f"util mean {fmt_num(g.util_mean, '{:.0f}', '%')} max "
                                      f"{fmt_num(g.util_max, '{:.0f}', '%')}  peak mem "
                                      f"{fmt_bytes(g.memory_used_peak_bytes)}  energy {fmt_energy(g.energy_j)}"))
    ws = _all_warnings(r)
    rows.append(("warnings", ws[0] if ws else "none"))
    rows += [("", w) for w in ws[1:]]
    title = f"{r.submission.name} · run {r.run_id}"
    return _console_safe(title) + "\n" + _text_table(["", ""], [[k, _console_safe(v)] for k, v in rows]) \
        .split("\n", 2)[2] + "\n"


def _series_summary(s: SeriesResult) -> str:
    rows = []
    for i, r in enumerate(s.repeats, 1):
        energy = _gpu_energy(r)
        rows.append([
            str(i), str(r.seed), _val(r.status),
            fmt_pct(r.accuracy) if r.accuracy is not None else "—",
            f"{r.correct}/{r.total}" if r.correct is not None else "—",
            _ci_text(r), _val(r.train.outcome), f"{r.train.seconds:.1f}",
            f"{energy:,.0f} J" if energy is not None else ("no GPU" if r.monitor.gpus is None else "—"),
        ])
    table = _text_table(["#", "seed", "status", "accuracy", "correct", "95% CI", "train", "train s",
                         "GPU energy"], [[_console_safe(c) for c in row] for row in rows],
                        right=(0, 1, 3, 4, 7, 8))
    out = (f"{_console_safe(s.submission.name)} · series {_console_safe(s.run_id)} · "
           f"{_val(s.status)}" + (f": {_console_safe(s.reason)}" if s.reason else "") + "\n")
    out += table + "\n"
    out += f"mean ± std: {_mean_std_text(s)}\n"
    ws = _series_warnings(s)
    if ws:
        out += "warnings:\n" + "".join(f"  {_console_safe(w)}\n" for w in ws)
    return out


def summary_table(result: RunResult | SeriesResult) -> str:
    """A plain-text table for the console at the end of a run (or of a series of repeats)."""
    if isinstance(result, SeriesResult):
        return _series_summary(result)
    return _run_summary(result)
