"""report.md: the same facts as report.html (the rows of harness.report.rows), text only.

Every value is escaped by the one Markdown table writer and cell escaper
(harness.formatting.md_table / md): one clean line, no raw HTML, no broken tables; logs are
fenced with a fence longer than any backtick run inside them (harness.text.md_code).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from harness import text
from harness.formatting import Md, fmt_pct, md, md_table
from harness.model import PhaseResult, SeriesResult
from harness.report.curve import (
    CURVE_HEADERS,
    CURVE_NUMERIC,
    curve_rows,
    fingerprint_rows,
    point_rows,
    reproduction_lines,
)
from harness.report.read import LOG_LINE_CHARS, RunFiles, log_tail
from harness.report.rows import (
    EVENT_STATS_HEADERS,
    GPU_HEADERS,
    GPU_NUMERIC,
    REPEAT_HEADERS,
    REPEAT_NUMERIC,
    RepeatLink,
    Row,
    accuracy_text,
    all_warnings,
    checkpoint_rows,
    class_names,
    data_rows,
    env_rows,
    event_notes,
    event_stats,
    event_summary,
    gpu_notes,
    gpu_row,
    headline_rows,
    last_event_rows,
    not_scored_text,
    per_class_rows,
    phase_failed,
    phase_rows,
    resource_rows,
    series_rows,
    series_warnings,
    submission_rows,
    url_path,
)


def cell(v: Any) -> Any:
    """One value of a row for md_table: a link is Markdown of its own, the rest is escaped there."""
    if isinstance(v, RepeatLink):
        return Md(f"[{md(v.dir)}](<{url_path(v.dir)}/report.md>)")
    return v if isinstance(v, str) else str(v)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    return md_table(headers, [[cell(v) for v in row] for row in rows], right) + "\n\n"


def kv(rows: Iterable[Row]) -> str:
    return table(["", ""], rows)


def bullets(title: str, items: Sequence[str]) -> str:
    return f"**{title}:**\n\n" + "".join(f"- {md(w)}\n" for w in items) + "\n" if items else ""


def paragraph(sentence: str) -> str:
    return md(sentence) + "\n\n"


def guarded(title: str, fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        return f"## {title}\n\nThis section could not be rendered: {md(type(exc).__name__)}: {md(exc, 300)}\n\n"


# --- one run ---------------------------------------------------------------------------------------


def _headline(c: RunFiles) -> str:
    r = c.result
    return (
        f"# {md(r.submission.name)} — HAET run report\n\n" + kv(headline_rows(r)) + bullets("Warnings", all_warnings(r))
    )


def _phase(c: RunFiles, phase: PhaseResult) -> str:
    out = f"### {md(phase.phase.capitalize())}\n\n" + kv(phase_rows(phase))
    checkpoints, more = checkpoint_rows(phase)
    if checkpoints:
        out += "Checkpoints:\n\n" + table(["name", "size", "sha256"], checkpoints, right=(1,))
        if more > 0:
            out += f"and {more} more file(s)\n\n"
    if phase_failed(c.result, phase):
        tail = log_tail(c.run_dir, phase)
        out += (
            f"Last lines of {md(phase.phase)}.log:\n\n{text.md_code(tail, LOG_LINE_CHARS)}\n"
            if tail
            else f"{md(phase.phase)}.log is empty.\n\n"
        )
    return out


def _phases(c: RunFiles) -> str:
    return "## Phases\n\n" + _phase(c, c.result.train) + _phase(c, c.result.predict)


def _resources(c: RunFiles) -> str:
    mon = c.result.monitor
    out = "## Resources\n\n" + kv(resource_rows(c)) + bullets("Monitor warnings", list(mon.warnings or []))
    out += "".join(paragraph(note) for note in gpu_notes(c.result))
    if mon.gpus:
        out += table(GPU_HEADERS, [gpu_row(g) for g in mon.gpus], right=GPU_NUMERIC)
    return out


def _events(c: RunFiles) -> str:
    ev = c.events
    out = "## Training curves (the submission's events)\n\n" + paragraph(event_summary(ev))
    stats = event_stats(ev) if ev.events else []
    if stats:
        out += table(EVENT_STATS_HEADERS, stats, right=(2, 3, 4, 5))
    out += "".join(paragraph(note) for note in event_notes(ev))
    if ev.events:
        out += "### Last event\n\n" + kv(last_event_rows(ev))
    return out


def _score(c: RunFiles) -> str:
    r, s = c.result, c.result.score
    if s is None:
        return "## Score\n\n" + paragraph(not_scored_text(r))
    classes = class_names(r, len(s.confusion))
    out = "## Score\n\n" + paragraph(accuracy_text(r)) + "### Per-class accuracy\n\n"
    out += table(
        ["class", "correct", "total", "accuracy"],
        [[name, corr, tot, fmt_pct(acc, 1)] for name, corr, tot, acc in per_class_rows(r)],
        right=(1, 2, 3),
    )
    out += "### Confusion matrix (rows: true, columns: predicted)\n\n"
    out += table(
        ["true \\ pred"] + classes,
        [[classes[i]] + list(row) for i, row in enumerate(s.confusion)],
        right=tuple(range(1, len(classes) + 1)),
    )
    return out


def _curve(c: RunFiles) -> str:
    curve = c.result.curve
    if curve is None:
        return ""
    return (
        "## Accuracy against time and energy (curve.csv)\n\n"
        + kv(curve_rows(curve))
        + table(CURVE_HEADERS, point_rows(curve), right=CURVE_NUMERIC)
        + "".join(paragraph(n) for n in curve.notes)
    )


def _environment(c: RunFiles) -> str:
    r = c.result
    return (
        "## Environment\n\n"
        + "".join(paragraph(line) for line in reproduction_lines(r))
        + kv(env_rows(r) + fingerprint_rows(r))
        + "## Data\n\n"
        + kv(data_rows(r))
        + "## Submission\n\n"
        + kv(submission_rows(r))
    )


def render_run(c: RunFiles) -> str:
    return "".join(
        guarded(title, lambda fn=fn: fn(c))
        for title, fn in [
            ("Headline", _headline),
            ("Phases", _phases),
            ("Resources", _resources),
            ("Training curves", _events),
            ("Score", _score),
            ("Curve", _curve),
            ("Environment", _environment),
        ]
    )


# --- a series of repeats ----------------------------------------------------------------------------


def render_series(series: SeriesResult, rows: list[list[Any]]) -> str:
    def headline() -> str:
        return (
            f"# {md(series.submission.name)} — HAET series report\n\n"
            + kv(series_rows(series))
            + bullets("Warnings", series_warnings(series))
        )

    def repeats() -> str:
        return "## Repeats\n\n" + table(REPEAT_HEADERS, rows, right=REPEAT_NUMERIC)

    def environment() -> str:
        if not series.repeats:
            return ""
        r0 = series.repeats[0]
        return (
            "## Environment (first repeat)\n\n"
            + kv(env_rows(r0))
            + "## Data (first repeat)\n\n"
            + kv(data_rows(r0, per_seed=False))
            + "## Submission\n\n"
            + kv(submission_rows(r0))
        )

    return "".join(
        guarded(title, fn) for title, fn in [("Headline", headline), ("Repeats", repeats), ("Environment", environment)]
    )


def unreadable(reason: str) -> str:
    """The report of a run whose result.json does not parse into the model."""
    return "# HAET run report\n\n" + paragraph(f"This run has no readable result: {reason}")
