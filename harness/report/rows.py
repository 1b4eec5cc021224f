"""What the report says, built once as plain rows and rendered twice (html.py, markdown.py).

A row is (label, value); a value is plain text (escaped by the renderer), a `Code` (shown
in monospace in HTML), a `Badge` (a status or an outcome, then what it means) or a
`RepeatLink` (a series row's link to that repeat's own report). Nothing here escapes:
the renderers do, through harness.markup (HTML) and harness.formatting (Markdown).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import text
from harness.formatting import (
    DASH,
    finite,
    fmt_bytes,
    fmt_energy,
    fmt_interval,
    fmt_num,
    fmt_pct,
    fmt_s,
    gpu_energy_j,
)
from harness.model import BuildInfo, GpuStatus, GpuSummary, Outcome, PhaseResult, RunResult, SeriesResult, Status
from harness.report.read import MAX_EVENT_FIELDS, Events, RunFiles, read_events
from harness.scoring import wilson_interval

MAX_CHECKPOINT_ROWS = 20  # checkpoint files listed per phase; the rest are counted
MAX_LAST_EVENT_FIELDS = 30
NO_GPU_TEXT = "No GPU was visible to the harness; GPU metrics are not available."
CPU_RUN_TEXT = "The run used --device cpu; GPUs were not monitored."

OUTCOME_TEXT = {
    Outcome.COMPLETED: "exited 0 before the deadline",
    Outcome.KILLED_AT_DEADLINE: "still running at the deadline and stopped by the harness",
    Outcome.CRASHED: "exited non-zero on its own",
    Outcome.OOM: "killed for exceeding its memory limit",
    Outcome.NO_CHECKPOINT: "ended without leaving a checkpoint in HAET_CHECKPOINTS",
    Outcome.NO_PREDICTIONS: "ended without writing predictions.csv",
    Outcome.INTERRUPTED: "the operator stopped the harness",
    Outcome.NOT_STARTED: "an earlier phase failed",
}
TRAIN_DEADLINE_NOTE = "normal under the competition rules: the last saved checkpoint counts"
FAILED_OUTCOMES = {Outcome.CRASHED, Outcome.OOM, Outcome.NO_CHECKPOINT, Outcome.NO_PREDICTIONS, Outcome.INTERRUPTED}

Row = tuple[str, Any]


class Code(str):
    """A value shown in monospace in HTML (a digest, a run id)."""


@dataclass(frozen=True)
class Badge:
    """A status or an outcome, and what it means."""

    value: str
    text: str = ""

    def __str__(self) -> str:
        return f"{self.value}: {self.text}" if self.text else self.value


@dataclass(frozen=True)
class RepeatLink:
    """A link to one repeat's own report, its directory relative to the series' report."""

    dir: str


def val(x: Any) -> str:
    """An enum member's value, anything else as text."""
    return x.value if isinstance(x, enum.Enum) else str(x)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --- the verdict -------------------------------------------------------------------------------


def accuracy_ci(result: RunResult) -> tuple[float, float] | None:
    if result.score is not None:
        return (result.score.ci95_low, result.score.ci95_high)
    if result.correct is not None and result.total:
        return wilson_interval(result.correct, result.total)
    return None


def accuracy_text(result: RunResult) -> str:
    """'93.40% (934/1000, 95% CI 91.66–94.79%)' or 'not scored'."""
    if result.accuracy is None:
        return "not scored"
    parts = []
    if result.correct is not None and result.total is not None:
        parts.append(f"{result.correct}/{result.total}")
    ci = accuracy_ci(result)
    if ci is not None:
        parts.append(f"95% CI {fmt_interval(*ci)}")
    return fmt_pct(result.accuracy) + (f" ({', '.join(parts)})" if parts else "")


def ci_text(result: RunResult) -> str:
    ci = accuracy_ci(result)
    return DASH if ci is None or result.accuracy is None else fmt_interval(*ci)


def status_text(status: Any, reason: str) -> str:
    return val(status) + (f" — {reason}" if reason else "")


def all_warnings(result: RunResult) -> list[str]:
    out: list[str] = []
    for w in list(result.warnings) + list(result.monitor.warnings or []):
        if w and w not in out:
            out.append(w)
    return out


def headline_rows(r: RunResult) -> list[Row]:
    return [
        ("submission", r.submission.name),
        ("status", status_text(r.status, r.reason)),
        ("accuracy", accuracy_text(r)),
        ("seed", r.seed),
        ("data sha256", Code(r.data.data_sha256)),
        ("run id", Code(r.run_id)),
        ("started", r.started_at),
        ("finished", r.finished_at),
        ("wall time", fmt_s(r.wall_seconds)),
        ("submission sha256", Code(r.submission.sha256)),
    ]


# --- phases --------------------------------------------------------------------------------


def signals_text(phase: PhaseResult) -> str:
    if not phase.signals:
        return "none"
    return ", ".join(f"{s.name} at {s.at_s:.2f} s" for s in phase.signals)


def outcome_badge(phase: PhaseResult) -> Badge:
    meaning = OUTCOME_TEXT.get(phase.outcome, "")
    if phase.phase == "train" and phase.outcome == Outcome.KILLED_AT_DEADLINE:
        meaning += f" ({TRAIN_DEADLINE_NOTE})"
    return Badge(val(phase.outcome), meaning)


def phase_failed(result: RunResult, phase: PhaseResult) -> bool:
    """Whether the phase's log explains a failure (then the report shows it open)."""
    if phase.outcome in FAILED_OUTCOMES:
        return True
    # invalid predictions: the predict log is what explains them
    return (
        result.status == Status.INVALID_PREDICTIONS
        and phase.phase == "predict"
        and phase.outcome != Outcome.NOT_STARTED
    )


def late_text(phase: PhaseResult) -> str:
    late = list(getattr(phase, "late_checkpoints", None) or [])
    if not late:
        return ""
    shown = ", ".join(text.clean(x, 100) for x in late[:5])
    return f"{len(late)} file(s) written after the deadline, not scored: {shown}" + (
        f" and {len(late) - 5} more" if len(late) > 5 else ""
    )


def compute_text(phase: PhaseResult) -> str:
    """The phase's sampled compute (Monitor.compute): CPU seconds, and GPU-busy seconds where NVML
    monitored a GPU. Predict's shows what it did with its budget (harness/predict_rule.py)."""
    cpu, gpu = getattr(phase, "cpu_seconds", None), getattr(phase, "gpu_busy_seconds", None)
    if cpu is None and gpu is None:
        return "not measured"
    return f"CPU {fmt_s(cpu)}" + (f", GPU busy {fmt_s(gpu)}" if gpu is not None else "")


def phase_rows(phase: PhaseResult) -> list[Row]:
    rows: list[Row] = [
        ("outcome", outcome_badge(phase)),
        ("time", f"{fmt_s(phase.seconds, 2)} of {fmt_s(phase.budget_s, 0)} budget"),
        ("compute (sampled)", compute_text(phase)),
        ("signals sent", signals_text(phase)),
        ("exit code", DASH if phase.exit_code is None else phase.exit_code),
        ("stray processes killed", phase.stray_processes_killed),
    ]
    if phase.detail:
        rows.append(("detail", phase.detail))
    if late_text(phase):
        rows.append(("late checkpoints", late_text(phase)))
    return rows


def _count(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else 0


def checkpoint_rows(phase: PhaseResult) -> tuple[list[list[Any]], int]:
    """(name, size, sha256 prefix) of the first MAX_CHECKPOINT_ROWS checkpoints, and how many
    more files there are."""
    listed = [ck for ck in (phase.checkpoints or []) if isinstance(ck, dict)]
    total = max(len(listed), _count(getattr(phase, "checkpoint_files", 0)))
    rows = []
    for ck in listed[:MAX_CHECKPOINT_ROWS]:
        size = finite(ck.get("bytes"))
        rows.append(
            [text.clean(ck.get("name", ""), 200), fmt_bytes(size), Code(text.clean(ck.get("sha256") or "", 80)[:16])]
        )
    return rows, total - len(rows)


# --- resources -----------------------------------------------------------------------------

GPU_HEADERS = [
    "GPU",
    "name",
    "util mean",
    "util max",
    "peak memory",
    "power mean",
    "power max",
    "energy",
    "max temp",
    "SM clock",
]
GPU_NUMERIC = (0, 2, 3, 4, 5, 6, 7, 8, 9)


def resource_rows(c: RunFiles) -> list[Row]:
    mon = c.result.monitor
    return [
        ("samples", f"{mon.samples} every {mon.interval_s:g} s"),
        (
            "CPU mean / max",
            f"{fmt_num(mon.cpu_percent_mean, '{:.0f}', '%')} / "
            f"{fmt_num(mon.cpu_percent_max, '{:.0f}', '%')} (100% = one core)",
        ),
        ("peak RSS", fmt_bytes(mon.rss_peak_bytes)),
        ("deadline", fmt_s(c.budget_s, 0) + (f", SIGTERM at {c.sigterm_s:.1f} s" if c.sigterm_s is not None else "")),
    ]


def gpu_row(g: GpuSummary) -> list[str]:
    return [
        str(g.index),
        g.name,
        fmt_num(g.util_mean, "{:.0f}", "%"),
        fmt_num(g.util_max, "{:.0f}", "%"),
        f"{fmt_bytes(g.memory_used_peak_bytes)} / {fmt_bytes(g.memory_total_bytes)}",
        fmt_num(g.power_mean_w, "{:.0f}", "W"),
        fmt_num(g.power_max_w, "{:.0f}", "W"),
        fmt_energy(g.energy_j),
        fmt_num(g.temperature_max_c, "{:.0f}", "°C"),
        fmt_num(g.sm_clock_mean_mhz, "{:.0f}", "MHz"),
    ]


def gpu_status(result: RunResult) -> GpuStatus:
    """Whether the GPUs were monitored: the monitor's field; for results written before it
    existed, what the run asked for (a --device cpu run never opens NVML)."""
    status = result.monitor.gpu_status
    if status is not None:
        return status
    if result.monitor.gpus is not None:
        return GpuStatus.MONITORED
    return GpuStatus.CPU_RUN if result.environment.device == "cpu" else GpuStatus.NOT_VISIBLE


def gpu_notes(result: RunResult) -> list[str]:
    """Sentences about the GPUs above their table: why none was monitored, and the monitor's note."""
    status, note = gpu_status(result), (result.monitor.gpu_note or "").strip()
    if status == GpuStatus.CPU_RUN:
        # the note, when there is one, is the harness's own word for it; "no GPU was visible" would be a guess
        return [note.rstrip(".") + "." if note else CPU_RUN_TEXT]
    if status == GpuStatus.NOT_VISIBLE:
        return [NO_GPU_TEXT + (f" {note}" if note else "")]
    return [note] if note else []


# --- the submission's events ------------------------------------------------------------------


def group_of(label: str) -> str:
    """The panel (and the stats table's group) of an event field."""
    low = label.lower()
    if "loss" in low:
        return "loss"
    if "acc" in low:
        return "accuracy"
    if low in ("lr", "learning_rate") or low.startswith(("lr", "learning_rate")):
        return "learning rate"
    return "other"


def _g(x: float) -> str:
    """6 significant digits, but a unix time or a step count stays readable."""
    if abs(x) < 1e6 or abs(x) >= 1e15:
        return f"{x:.6g}"
    return f"{x:,.0f}" if x.is_integer() else f"{x:.3f}"


def _event_value(v: Any) -> str:
    x = finite(v)
    if x is None:
        s = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
        return s if len(s) <= 80 else s[:79] + "…"
    return _g(x)


def event_summary(ev: Events) -> str:
    if not ev.events:
        return "The submission wrote no events (events.jsonl is empty or missing)."
    epochs = ev.epochs()
    return plural(len(ev.events), "event") + (f", {plural(epochs, 'epoch')} reported" if epochs else "") + "."


EVENT_STATS_HEADERS = ["field", "group", "last", "min", "max", "points"]


def event_stats(ev: Events) -> list[list[Any]]:
    """field, group, last, min, max, points: one row per plotted series."""
    return [
        [label, group_of(label), _g(xs[-1]), _g(min(xs)), _g(max(xs)), len(xs)]
        for label, (ts, xs) in ev.series().items()
    ]


def event_notes(ev: Events) -> list[str]:
    """What was left out of the events, and why."""
    ev.series()  # counts what it leaves out
    notes = []
    if ev.skipped:
        notes.append(f"{ev.skipped} malformed line(s) of events.jsonl skipped.")
    if ev.truncated:
        notes.append("events.jsonl is very large; only its beginning was read.")
    if ev.fields_dropped:
        notes.append(f"{ev.fields_dropped} more numeric field(s) not shown (at most {MAX_EVENT_FIELDS}).")
    if ev.points_outside:
        notes.append(f"{ev.points_outside} event time(s) or value(s) far out of range not plotted.")
    return notes


def last_event_rows(ev: Events) -> list[Row]:
    last = ev.last() or {}
    return [(text.clean(k, 100), _event_value(v)) for k, v in list(last.items())[:MAX_LAST_EVENT_FIELDS]]


# --- score -----------------------------------------------------------------------------------


def class_names(result: RunResult, n: int) -> list[str]:
    classes = list(result.data.classes or [])
    if len(classes) != n and result.score is not None and len(result.score.per_class) == n:
        classes = list(result.score.per_class)
    if len(classes) != n:
        classes = [str(i) for i in range(n)]
    return [str(c) for c in classes]


def per_class_rows(result: RunResult) -> list[tuple[str, int, int, float | None]]:
    """(class, correct, total, accuracy) from the confusion matrix."""
    s = result.score
    assert s is not None
    n = len(s.confusion)
    rows = []
    for i, name in enumerate(class_names(result, n)):
        total = sum(s.confusion[i]) if i < n else 0
        correct = s.confusion[i][i] if i < n and i < len(s.confusion[i]) else 0
        acc = s.per_class.get(name, s.per_class.get(str(i)))
        if acc is None and total:
            acc = correct / total
        rows.append((name, correct, total, acc))
    return rows


def not_scored_text(result: RunResult) -> str:
    return f"Not scored: {result.reason or val(result.status)}"


# --- environment, data, submission -------------------------------------------------------------


def build_text(build: BuildInfo | None) -> str:
    if build is None:
        return "none (the runtime image)"
    return (
        f"{build.outcome} in {build.seconds:g}s, network {'on' if build.network else 'off'}, "
        f"{build.image or DASH} {build.image_id or ''}; log {build.log or DASH}"
        + (f": {build.detail}" if build.detail else "")
    )


def env_rows(r: RunResult) -> list[Row]:
    env = r.environment
    return [
        ("harness", env.harness),
        ("python", env.python),
        ("platform", env.platform),
        ("torch", env.torch or DASH),
        ("CUDA", env.cuda or DASH),
        ("runner", env.runner + ("" if env.isolated else " (not isolated: the entry ran on this host)")),
        ("entry build", build_text(r.build)),
        ("device", env.device),
        ("GPUs", ", ".join(env.gpus) if env.gpus else "none"),
        ("driver", env.driver or DASH),
        ("image", env.image or DASH),
        ("hostname", env.hostname or DASH),
    ]


def data_rows(r: RunResult, per_seed: bool = True) -> list[Row]:
    """`per_seed` False: without what differs between the repeats of a series."""
    d = r.data
    rows = [
        ("source", d.source),
        ("eval source", d.eval_source),
        ("classes", ", ".join(map(str, d.classes))),
        ("train", f"{d.train_count} images ({d.train_per_class} per class)"),
        ("eval", f"{d.eval_count} images ({d.eval_per_class} per class)"),
        ("seed", str(d.seed)),
        ("data sha256", d.data_sha256),
        (
            "held-out order",
            "secret (key in result.json)" + ("; the images are a public split" if d.heldout_public else ""),
        ),
    ]
    return rows if per_seed else [x for x in rows if x[0] not in ("seed", "data sha256")]


def submission_rows(r: RunResult) -> list[Row]:
    s = r.submission
    return [
        ("name", s.name),
        ("path", s.path),
        ("train command", s.train),
        ("predict command", s.predict),
        ("sha256", s.sha256),
    ]


# --- a series of repeats ---------------------------------------------------------------------

REPEAT_HEADERS = [
    "#",
    "seed",
    "status",
    "accuracy",
    "95% CI",
    "train outcome",
    "train s",
    "epochs",
    "GPU energy",
    "report",
]
REPEAT_NUMERIC = (0, 1, 3, 4, 6, 7, 8)


def repeat_dir_names(series: SeriesResult, repeat_dirs: Sequence[str] | None = None) -> list[str]:
    """The directory of each repeat, relative to the series' run directory (see harness.report)."""
    if repeat_dirs is not None:
        if len(repeat_dirs) != len(series.repeats):
            raise ValueError(f"{len(repeat_dirs)} repeat_dirs for {len(series.repeats)} repeats")
        return [str(d) for d in repeat_dirs]
    names = []
    for i, r in enumerate(series.repeats, 1):
        m = re.search(r"(repeat-\d+)$", str(r.run_id))
        names.append(m.group(1) if m else f"repeat-{i:02d}")
    return names


def url_path(d: str) -> str:
    """A repeat's directory as a relative URL path (a link's target in HTML and Markdown)."""
    return quote(text.utf8(d).replace("\\", "/"), safe="/")


def mean_std_text(series: SeriesResult) -> str:
    return f"{100 * series.accuracy_mean:.2f}% ± {100 * series.accuracy_std:.2f}% over {len(series.repeats)} repeats"


def series_rows(series: SeriesResult) -> list[Row]:
    return [
        ("submission", series.submission.name),
        ("status", status_text(series.status, series.reason)),
        ("accuracy", mean_std_text(series) + " (a repeat that did not score counts as 0)"),
        ("run id", Code(series.run_id)),
        ("started", series.started_at),
        ("finished", series.finished_at),
        ("wall time", fmt_s(series.wall_seconds)),
        ("submission sha256", Code(series.submission.sha256)),
    ]


def series_warnings(series: SeriesResult) -> list[str]:
    return [f"repeat {i}: {w}" for i, r in enumerate(series.repeats, 1) for w in all_warnings(r)]


def energy_cell(result: RunResult) -> str:
    energy = gpu_energy_j(result.monitor)
    return fmt_energy(energy) if energy is not None else "no GPU" if result.monitor.gpus is None else DASH


def repeat_rows(run_dir: Path, series: SeriesResult, dirs: list[str]) -> list[list[Any]]:
    """One row of REPEAT_HEADERS per repeat (its epochs from its own events.jsonl); a repeat
    that cannot be shown is a row saying so."""
    rows = []
    for i, (d, r) in enumerate(zip(dirs, series.repeats), 1):
        try:
            epochs = read_events(Path(run_dir) / d / "events.jsonl").epochs()
        except Exception:  # noqa: BLE001
            epochs = None
        try:
            status = val(r.status)
            rows.append(
                [
                    i,
                    r.seed,
                    Badge(status, r.reason if status != Status.SCORED.value else ""),
                    DASH
                    if r.accuracy is None
                    else fmt_pct(r.accuracy) + (f" ({r.correct}/{r.total})" if r.correct is not None else ""),
                    ci_text(r),
                    val(r.train.outcome),
                    f"{r.train.seconds:.1f} / {r.train.budget_s:.0f}",
                    epochs if epochs is not None else DASH,
                    energy_cell(r),
                    RepeatLink(d),
                ]
            )
        except Exception as exc:  # noqa: BLE001 - one unreadable repeat is a row saying so
            rows.append(
                [i, DASH, text.clean(f"could not be shown: {type(exc).__name__}: {exc}", 300)]
                + [DASH] * 6
                + [RepeatLink(d)]
            )
    return rows
