"""report.html: one self-contained page (harness.markup: its skeleton and stylesheet, plots as
data: URIs, no scripts), rendered from the rows of harness.report.rows. Markup is built with
harness.markup, which escapes every value that is not markup it built; a section that fails
renders as a note saying so, never as a missing report."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from harness.formatting import fmt_interval, fmt_pct
from harness.markup import Markup, escape, h, join, lines, page, table, warnings_box
from harness.model import PhaseResult, SeriesResult, Status
from harness.report import plots
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
    Badge,
    Code,
    RepeatLink,
    Row,
    accuracy_ci,
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
    val,
)

# --- pieces --------------------------------------------------------------------------------------


def badge(value: str) -> Markup:
    return h("span", value, class_="badge b-" + re.sub(r"[^a-z_]", "", value.lower()))


def cell(v: Any) -> Markup:
    """One value of a row as HTML."""
    if isinstance(v, Badge):
        return join(badge(v.value), f" {v.text}" if v.text else None)
    if isinstance(v, Code):
        return h("code", v)
    if isinstance(v, RepeatLink):
        return h("a", v.dir, href=f"{url_path(v.dir)}/report.html")
    return escape(v)


def kv_table(rows: Iterable[Row]) -> Markup:
    return h("table", (h("tr", h("th", k), h("td", cell(v))) for k, v in rows), class_="kv")


def grid(headers: Sequence[str], rows: Iterable[Sequence[Any]], num: Sequence[int] = ()) -> Markup:
    """A table of row values (harness.report.rows), `num` columns right-aligned."""
    return table(headers, ([cell(c) for c in row] for row in rows), num)


def pre(log: Sequence[str]) -> Markup:
    return h("pre", lines(log, LOG_LINE_CHARS))


def sub(sentence: str) -> Markup:
    return h("p", sentence, class_="sub")


def failed_note(what: str, exc: Exception) -> Markup:
    return h("div", f"{what}: {type(exc).__name__}: ", escape(exc, 300), class_="err")


def guarded(title: str, fn: Callable[[], Markup | None]) -> Markup | None:
    """A section that fails renders as a note; a report never dies of one bad input."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        return h("section", h("h2", title), failed_note("This section could not be rendered", exc))


def _plot(fn: Callable[[], Markup | None]) -> Markup | None:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a plot that fails is a note, the rest of the section stays
        return failed_note("plot failed", exc)


def _status(status: str, reason: str) -> Markup:
    return join(badge(status), [" ", h("span", reason, class_="sub")] if reason else None)


def _top(title: Any, kind: str, *rest: Any) -> Markup:
    return h("header", h("h1", title, " ", h("span", f"· {kind}", class_="sub")), *rest, class_="top")


# --- one run -------------------------------------------------------------------------------------


def _headline(c: RunFiles) -> Markup:
    r = c.result
    facts = []
    if r.correct is not None and r.total is not None:
        facts.append(f"{r.correct} / {r.total} correct")
    ci = accuracy_ci(r)
    if ci is not None and r.accuracy is not None:
        facts.append(f"95% CI (Wilson) {fmt_interval(*ci)}")
    big = fmt_pct(r.accuracy) if r.accuracy is not None else "not scored"
    hero = h(
        "div",
        h("div", h("div", big, class_="big"), h("div", " · ".join(facts), class_="sub")),
        h("div", _status(val(r.status), r.reason)),
        class_="hero",
    )
    sections = ("phases", "resources", "events", "score", "environment")
    nav = h("nav", (h("a", name, href=f"#{name}") for name in sections))
    return join(
        _top(r.submission.name, "HAET run report", nav),
        h("section", hero, warnings_box(all_warnings(r)), kv_table(headline_rows(r))),
    )


def _phase(c: RunFiles, phase: PhaseResult) -> Markup:
    out = [h("h3", phase.phase.capitalize()), kv_table(phase_rows(phase))]
    checkpoints, more = checkpoint_rows(phase)
    if checkpoints:
        out += [h("h3", "Checkpoints"), grid(["name", "size", "sha256"], checkpoints, num=(1,))]
        if more > 0:
            out.append(sub(f"and {more} more file(s)"))
    failed = phase_failed(c.result, phase)
    tail = log_tail(c.run_dir, phase)
    if tail and failed:
        out += [h("h3", f"Last lines of {phase.phase}.log"), pre(tail)]
    elif tail:
        out.append(h("details", h("summary", f"last lines of {phase.phase}.log"), pre(tail)))
    elif failed:
        out.append(sub(f"{phase.phase}.log is empty."))
    return join(out)


def _phases(c: RunFiles) -> Markup:
    return h(
        "section",
        h("h2", "Phases"),
        h("div", h("div", _phase(c, c.result.train)), h("div", _phase(c, c.result.predict)), class_="cols"),
        id="phases",
    )


def _resources(c: RunFiles) -> Markup:
    mon, m = c.result.monitor, c.metrics
    parts = [warnings_box(list(mon.warnings or [])), kv_table(resource_rows(c))]
    if m is None or not m.t:
        parts.append(sub("metrics.csv is missing or has no samples; no resource plots."))
    else:
        if m.skipped_rows:
            parts.append(sub(f"{m.skipped_rows} malformed row(s) of metrics.csv skipped."))
        parts.append(_plot(lambda: plots.plot_cpu(m, c.budget_s, c.sigterm_s)))
    parts += [h("div", note, class_="note") for note in gpu_notes(c.result)]
    if mon.gpus:
        parts.append(grid(GPU_HEADERS, [gpu_row(g) for g in mon.gpus], num=GPU_NUMERIC))
    if mon.gpus is not None and m is not None and m.t:
        parts.append(_plot(lambda: plots.plot_gpu(m, c.budget_s, c.sigterm_s)))
    return h("section", h("h2", "Resources"), parts, id="resources")


def _events(c: RunFiles) -> Markup:
    ev = c.events
    parts = [h("p", event_summary(ev)) if ev.events else sub(event_summary(ev))]
    if ev.events:
        parts.append(_plot(lambda: plots.plot_events(ev, c.budget_s, c.sigterm_s)))
        stats = event_stats(ev)
        if stats:
            parts.append(grid(EVENT_STATS_HEADERS, stats, num=(2, 3, 4, 5)))
    parts += [sub(note) for note in event_notes(ev)]
    if ev.events:
        parts += [h("h3", "Last event"), kv_table(last_event_rows(ev))]
    return h("section", h("h2", "Training curves (the submission's events)"), parts, id="events")


def _score(c: RunFiles) -> Markup:
    s = c.result.score
    if s is None:
        return h("section", h("h2", "Score"), sub(not_scored_text(c.result)), id="score")
    bars = [
        [name, corr, tot, fmt_pct(acc, 1), h("span", class_="bar", style=f"width:{round(100 * (acc or 0))}px")]
        for name, corr, tot, acc in per_class_rows(c.result)
    ]
    per_class = grid(["class", "correct", "total", "accuracy", ""], bars, num=(1, 2, 3))
    confusion = _plot(lambda: plots.plot_confusion(s.confusion, class_names(c.result, len(s.confusion))))
    return h(
        "section",
        h("h2", "Score"),
        h("p", accuracy_text(c.result)),
        h(
            "div",
            h("div", h("h3", "Confusion matrix"), confusion),
            h("div", h("h3", "Per-class accuracy"), per_class),
            class_="cols",
        ),
        id="score",
    )


def _curve(c: RunFiles) -> Markup | None:
    curve = c.result.curve
    if curve is None:
        return None
    return h(
        "section",
        h("h2", "Accuracy against time and energy (curve.csv)"),
        kv_table(curve_rows(curve)),
        _plot(lambda: plots.plot_curve(curve, c.budget_s, c.sigterm_s)),
        grid(CURVE_HEADERS, point_rows(curve), num=CURVE_NUMERIC),
        [sub(note) for note in curve.notes],
        id="curve",
    )


def _environment(c: RunFiles) -> Markup:
    r = c.result
    said = reproduction_lines(r)
    reproduced = h("div", said[0], [(h("br"), x) for x in said[1:]], class_="note") if said else None
    return h(
        "section",
        h("h2", "Environment, data and submission"),
        reproduced,
        h(
            "div",
            h("div", h("h3", "Environment"), kv_table(env_rows(r) + fingerprint_rows(r))),
            h("div", h("h3", "Data"), kv_table(data_rows(r)), h("h3", "Submission"), kv_table(submission_rows(r))),
            class_="cols",
        ),
        id="environment",
    )


def render_run(c: RunFiles) -> str:
    body = [
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
    ]
    return page(f"{c.result.submission.name} · {c.result.run_id}", body)


# --- a series of repeats ----------------------------------------------------------------------------


def render_series(series: SeriesResult, rows: list[list[Any]]) -> str:
    def headline() -> Markup:
        scored = sum(1 for r in series.repeats if r.status == Status.SCORED)
        spread = h("span", f"± {fmt_pct(series.accuracy_std)}", class_="sub", style="font-size:20px")
        hero = h(
            "div",
            h(
                "div",
                h("div", fmt_pct(series.accuracy_mean), " ", spread, class_="big"),
                h(
                    "div",
                    f"mean ± std over {len(series.repeats)} repeats; {scored} scored "
                    "(a repeat that did not score counts as 0)",
                    class_="sub",
                ),
            ),
            h("div", _status(val(series.status), series.reason)),
            class_="hero",
        )
        return join(
            _top(series.submission.name, "HAET series report"),
            h("section", hero, warnings_box(series_warnings(series)), kv_table(series_rows(series))),
        )

    def repeats() -> Markup:
        return h(
            "section",
            h("h2", "Repeats"),
            grid(REPEAT_HEADERS, rows, num=REPEAT_NUMERIC),
            _plot(lambda: plots.plot_series_accuracy(series)),
            id="repeats",
        )

    def environment() -> Markup | None:
        if not series.repeats:
            return None
        r0 = series.repeats[0]
        return h(
            "section",
            h("h2", "Environment and data (first repeat)"),
            h(
                "div",
                h("div", h("h3", "Environment"), kv_table(env_rows(r0))),
                h(
                    "div",
                    h("h3", "Data"),
                    kv_table(data_rows(r0, per_seed=False)),
                    h("h3", "Submission"),
                    kv_table(submission_rows(r0)),
                ),
                class_="cols",
            ),
            id="environment",
        )

    body = [
        guarded(title, fn) for title, fn in [("Headline", headline), ("Repeats", repeats), ("Environment", environment)]
    ]
    return page(f"{series.submission.name} · {series.run_id}", body)


def unreadable(reason: str) -> str:
    """The report of a run whose result.json does not parse into the model."""
    return page(
        "HAET run report",
        h("header", h("h1", "HAET run report"), class_="top"),
        h("section", h("div", "This run has no readable result: ", reason, class_="err")),
    )
