"""The report's plots: inline SVG drawn here, so that report.html stays one file with no assets.

No plotting library: matplotlib's import and Agg drawing took 2.4 of the 3.4 CPU seconds the
harness spent on a small graded run (cProfile, 2-core VM). A grading of 2,000 runs paid over an
hour of CPU for pictures, and the test suite a third of its time. SVG text is the page's own font.

Labels come from the submission (event names, class folders): they go through `markup.h`, which
cleans and escapes every text and attribute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import text
from harness.markup import Markup, h
from harness.model import Curve, SeriesResult
from harness.report.read import Events, Metrics
from harness.report.rows import accuracy_ci, group_of

MAX_SERIES_PER_GROUP = 10
MAX_PLOT_POINTS = 4000
MAX_OTHER_PANELS = 3
GROUP_ORDER = ("loss", "accuracy", "learning rate", "other")
WIDTH, PANEL_H, LEFT, RIGHT, GAP = 900, 150, 72, 16, 26  # px
PALETTE = ("#0969da", "#8250df", "#1a7f37", "#bc4c00", "#cf222e", "#6e7781", "#bf8700", "#0550ae", "#953800")
RED, GREEN, GRID, INK = "#cf222e", "#1a7f37", "#d8dee4", "#1f2328"


def safe_label(s: Any, limit: int = 40) -> str:
    """One clean line of at most `limit` characters (markup.h escapes it where it is drawn)."""
    s = text.clean(s)
    return s[: limit - 1] + "…" if len(s) > limit else s


# --- the chart kit -----------------------------------------------------------------------------


@dataclass
class Line:
    """One series: points (x, y), None where a value is missing (the line breaks there)."""

    label: str | None
    xs: Sequence[float]
    ys: Sequence[float | None]
    colour: str
    dash: str | None = None
    markers: bool = False
    errors: Sequence[tuple[float, float] | None] = ()  # (low, high) per point: an error bar
    connect: bool = True


@dataclass
class Panel:
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    zero: bool = True  # the y axis starts at 0
    y_range: tuple[float, float] | None = None
    hlines: list[tuple[float, str, str, str | None]] = field(default_factory=list)  # y, colour, dash, label


@dataclass
class Mark:
    """A vertical line across every panel (the SIGTERM, the deadline)."""

    x: float
    colour: str
    dash: str | None
    label: str


def _num(v: float) -> str:
    return f"{v:.1f}"


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round values from lo to hi (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_text(v: float, step: float) -> str:
    """A tick's value with as many decimals as its step needs (9501, 9505, 9510; 0.05, 0.1)."""
    if abs(v) >= 1e6 or 0 < step < 1e-4:
        return f"{v:.3g}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{v:.{decimals}f}"


def _step(values: list[float]) -> float:
    return values[1] - values[0] if len(values) > 1 else 1.0


def _range(values: list[float], zero: bool) -> tuple[float, float]:
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    lo = min(lo, 0.0) if zero else lo
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return (lo if zero and lo == 0 else lo - pad), hi + pad


def _thin(xs: Sequence[float], ys: Sequence[Any]) -> tuple[list[float], list[Any]]:
    """Every k-th point when there are many (per-step events), and always the last."""
    if len(xs) <= MAX_PLOT_POINTS:
        return list(xs), list(ys)
    k = math.ceil(len(xs) / MAX_PLOT_POINTS)
    return list(xs[::k]) + [xs[-1]], list(ys[::k]) + [ys[-1]]


def _draw_line(line: Line, sx, sy) -> list[Markup]:
    xs, ys = _thin(line.xs, line.ys)
    parts, run = [], []
    for x, y in zip(xs, ys):
        if y is None or not math.isfinite(y):
            run.append(None)
            continue
        run.append((sx(x), sy(y)))
    if line.connect:
        segment: list[str] = []
        for point in run + [None]:
            if point is None:
                if len(segment) > 1:
                    points = " ".join(segment)
                    parts.append(
                        h(
                            "polyline",
                            points=points,
                            fill="none",
                            stroke=line.colour,
                            stroke_width="1.4",
                            stroke_dasharray=line.dash,
                        )
                    )
                segment = []
            else:
                segment.append(f"{_num(point[0])},{_num(point[1])}")
    for i, point in enumerate(run):
        if point is None:
            continue
        error = line.errors[i] if i < len(line.errors) else None
        if error is not None:
            x = _num(point[0])
            parts.append(h("line", x1=x, x2=x, y1=_num(sy(error[0])), y2=_num(sy(error[1])), stroke=line.colour))
        if line.markers or not line.connect:
            parts.append(h("circle", cx=_num(point[0]), cy=_num(point[1]), r="3", fill=line.colour))
    return parts


def _legend(items: list[tuple[str, str, str | None]], y: float) -> tuple[list[Markup], float]:
    """The legend's rows from `y` down, wrapped at the chart's width; and the y below its last row."""
    parts, x = [], LEFT
    for label, colour, dash in items:
        width = 30 + 7 * len(label)  # about 7 px a character at 12 px
        if x > LEFT and x + width > WIDTH - RIGHT:
            x, y = LEFT, y + 16
        line = h("line", x1=x, x2=x + 18, y1=_num(y - 4), y2=_num(y - 4), stroke=colour, stroke_dasharray=dash)
        parts += [line, h("text", label, x=x + 22, y=_num(y))]
        x += width
    return parts, y + 12


def chart(title: str, panels: list[Panel], xlabel: str, marks: Sequence[Mark] = (), x_range=None) -> Markup | None:
    """Panels stacked over one shared x axis, the marks across all of them, one legend on top."""
    points = [x for p in panels for line in p.lines for x, y in zip(line.xs, line.ys) if y is not None]
    xs = [*points, *(m.x for m in marks)]
    if not points:
        return None
    x0, x1 = x_range or (min(0.0, min(xs)), max(xs) * 1.02 if max(xs) > 0 else 1.0)
    if x1 <= x0:
        x1 = x0 + 1.0
    plot_w = WIDTH - LEFT - RIGHT

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    legend = [(m.label, m.colour, m.dash) for m in marks]
    for p in panels:
        legend += [(line.label, line.colour, line.dash) for line in p.lines if line.label]
        legend += [(label, colour, dash) for _, colour, dash, label in p.hlines if label]
    legend = list(dict.fromkeys(legend))  # GPU 0 in every panel is one entry
    parts: list[Any] = [h("text", title, x=LEFT, y="16", font_weight="600")]
    top = 22.0
    if legend:
        drawn, top = _legend(legend, 34.0)
        parts += drawn
    for p in panels:
        values = [y for line in p.lines for y in line.ys if y is not None and math.isfinite(y)]
        values += [e for line in p.lines for err in line.errors if err for e in err]
        values += [y for y, *_ in p.hlines]
        y0, y1 = p.y_range or _range(values, p.zero)

        def sy(y: float, y0=y0, y1=y1, top=top) -> float:
            return top + PANEL_H - (min(max(y, y0), y1) - y0) / (y1 - y0) * PANEL_H

        y_ticks = ticks(y0, y1, 4)
        for v in y_ticks:
            parts.append(h("line", x1=LEFT, x2=WIDTH - RIGHT, y1=_num(sy(v)), y2=_num(sy(v)), stroke=GRID))
            parts.append(h("text", tick_text(v, _step(y_ticks)), x=LEFT - 6, y=_num(sy(v) + 4), text_anchor="end"))
        parts.append(
            h(
                "text",
                p.ylabel,
                x="14",
                y=_num(top + PANEL_H / 2),
                transform=f"rotate(-90 14 {_num(top + PANEL_H / 2)})",
                text_anchor="middle",
            )
        )
        for y, colour, dash, _ in p.hlines:
            parts.append(
                h(
                    "line",
                    x1=LEFT,
                    x2=WIDTH - RIGHT,
                    y1=_num(sy(y)),
                    y2=_num(sy(y)),
                    stroke=colour,
                    stroke_dasharray=dash,
                )
            )
        for m in marks:
            parts.append(
                h(
                    "line",
                    x1=_num(sx(m.x)),
                    x2=_num(sx(m.x)),
                    y1=top,
                    y2=top + PANEL_H,
                    stroke=m.colour,
                    stroke_dasharray=m.dash,
                )
            )
        for line in p.lines:
            parts += _draw_line(line, sx, sy)
        parts.append(h("rect", x=LEFT, y=top, width=plot_w, height=PANEL_H, fill="none", stroke="#8c959f"))
        top += PANEL_H + GAP
    bottom = top - GAP
    x_ticks = ticks(x0, x1, 8)
    for v in x_ticks:
        parts.append(h("text", tick_text(v, _step(x_ticks)), x=_num(sx(v)), y=_num(bottom + 16), text_anchor="middle"))
    parts.append(h("text", xlabel, x=_num(LEFT + plot_w / 2), y=_num(bottom + 34), text_anchor="middle"))
    return svg(parts, WIDTH, bottom + 42, title)


def svg(parts: list[Any], width: float, height: float, label: str) -> Markup:
    return h(
        "svg",
        parts,
        class_="plot",
        role="img",
        aria_label=label,
        viewBox=f"0 0 {_num(width)} {_num(height)}",
        width=_num(width),
        font_size="12",
        fill=INK,
    )  # no xmlns: inline in HTML, an <svg> needs none, and the page names no outside address


def _deadline_marks(budget_s: float | None, sigterm_s: float | None) -> list[Mark]:
    marks = []
    if sigterm_s is not None:
        marks.append(Mark(sigterm_s, "#bc4c00", "5 3", f"SIGTERM ({sigterm_s:.1f} s)"))
    if budget_s is not None and budget_s > 0:
        marks.append(Mark(budget_s, RED, None, f"deadline ({budget_s:.0f} s)"))
    return marks


def _scaled(xs: Sequence[float], scale: float = 1.0) -> list[float | None]:
    return [None if math.isnan(x) else x * scale for x in xs]


# --- the report's plots --------------------------------------------------------------------------

TRAIN_TIME = "seconds since train start"


def plot_cpu(m: Metrics, budget_s: float | None, sigterm_s: float | None) -> Markup | None:
    cpu, rss = m.col("cpu_percent"), m.col("rss_bytes")
    if not m.t or (cpu is None and rss is None):
        return None
    few = len(m.t) <= 30  # dots when there are few samples: a run that ended in a second still shows
    panels = [
        Panel("CPU % (100 = 1 core)", [Line(None, m.t, _scaled(cpu), PALETTE[0], markers=few)] if cpu else []),
        Panel("RSS (GiB)", [Line(None, m.t, _scaled(rss, 1 / 2**30), PALETTE[1], markers=few)] if rss else []),
    ]
    title = "CPU and memory of the submission's process tree"
    return chart(title, panels, TRAIN_TIME, _deadline_marks(budget_s, sigterm_s))


def plot_gpu(m: Metrics, budget_s: float | None, sigterm_s: float | None) -> Markup | None:
    if not m.t or not m.gpu_indices:
        return None
    panels = []
    for key, ylabel, scale in (
        ("util", "utilization %", 1.0),
        ("power_w", "power (W)", 1.0),
        ("mem_used_bytes", "memory (GiB)", 1 / 2**30),
    ):
        lines = [
            Line(f"GPU {i}", m.t, _scaled(c, scale), PALETTE[n % len(PALETTE)], markers=len(m.t) <= 30)
            for n, i in enumerate(m.gpu_indices)
            if (c := m.col(f"gpu{i}_{key}")) is not None
        ]
        if lines:
            panels.append(Panel(ylabel, lines))
    return chart("GPU", panels, TRAIN_TIME, _deadline_marks(budget_s, sigterm_s)) if panels else None


def group_series(series: dict[str, tuple[list[float], list[float]]]) -> dict[str, list[str]]:
    """Panel title -> labels: losses together, accuracies together, lr alone; other fields
    (throughput, grad norm, ... different units) one panel each, the rest in one 'other' panel."""
    groups: dict[str, list[str]] = {}
    for label in series:
        groups.setdefault(group_of(label), []).append(label)
    out = {g: groups[g] for g in GROUP_ORDER[:3] if g in groups}
    other = groups.get("other", [])
    if len(other) <= MAX_OTHER_PANELS + 1:
        out.update({safe_label(label, 24): [label] for label in other})
    else:
        out.update({safe_label(label, 24): [label] for label in other[:MAX_OTHER_PANELS]})
        out["other"] = other[MAX_OTHER_PANELS:]
    return out


def plot_events(ev: Events, budget_s: float | None, sigterm_s: float | None) -> Markup | None:
    series = ev.series()
    if not series:
        return None
    panels, n = [], 0
    for gname, labels in group_series(series).items():
        lines = []
        for label in labels[:MAX_SERIES_PER_GROUP]:  # one colour per field across panels: one legend
            ts, xs = series[label]
            lines.append(Line(safe_label(label), ts, xs, PALETTE[n % len(PALETTE)], markers=len(xs) <= 60))
            n += 1
        panels.append(Panel(gname, lines, zero=False))
    return chart("The submission's own events", panels, TRAIN_TIME, _deadline_marks(budget_s, sigterm_s))


def plot_confusion(confusion: list[list[int]], classes: list[str]) -> Markup | None:
    n = len(confusion)
    if n == 0 or any(len(r) != n for r in confusion):
        return None
    cell, left, top = max(18, min(40, 400 // n)), 120, 30
    vmax = max(max(r) for r in confusion) or 1
    labels = [safe_label(c, 14) for c in classes] + [str(i) for i in range(len(classes), n)]
    parts: list[Any] = [h("text", "true class (rows) against predicted (columns)", x=left, y="16", font_weight="600")]
    for i in range(n):
        y = top + i * cell
        parts.append(h("text", labels[i], x=left - 6, y=_num(y + cell / 2 + 4), text_anchor="end"))
        for j in range(n):
            v = confusion[i][j]
            shade = v / vmax
            fill = f"rgb({round(255 - 246 * shade)},{round(255 - 150 * shade)},{round(255 - 37 * shade)})"
            x = left + j * cell
            parts.append(
                h("rect", h("title", f"{labels[i]} as {labels[j]}: {v}"), x=x, y=y, width=cell, height=cell, fill=fill)
            )
            colour = "#ffffff" if shade > 0.5 else INK
            size = "11" if n <= 12 else "8"
            parts.append(
                h(
                    "text",
                    str(v),
                    x=_num(x + cell / 2),
                    y=_num(y + cell / 2 + 4),
                    text_anchor="middle",
                    fill=colour,
                    font_size=size,
                )
            )
    bottom = top + n * cell
    for j in range(n):
        x = left + j * cell + cell / 2
        parts.append(
            h(
                "text",
                labels[j],
                x=_num(x),
                y=_num(bottom + 10),
                text_anchor="end",
                transform=f"rotate(-45 {_num(x)} {_num(bottom + 10)})",
            )
        )
    return svg(parts, left + n * cell + 20, bottom + 100, "confusion matrix")


def plot_series_accuracy(series: SeriesResult) -> Markup | None:
    if not series.repeats:
        return None
    xs, ys, errors, failed = [], [], [], []
    for i, r in enumerate(series.repeats, 1):
        if r.accuracy is None:
            failed.append(i)
            continue
        ci = accuracy_ci(r)
        xs.append(i)
        ys.append(100 * r.accuracy)
        errors.append((100 * ci[0], 100 * ci[1]) if ci else None)
    mean = 100 * series.accuracy_mean
    values = [*ys, *(e for err in errors if err for e in err), mean]
    lo, hi = min(values) - 2, max(values) + 2
    lines = [Line("scored (95% CI)", xs, ys, PALETTE[0], errors=errors, connect=False)]
    if failed:
        lines.append(Line("not scored", failed, [lo + 0.04 * (hi - lo)] * len(failed), RED, connect=False))
    panel = Panel("accuracy %", lines, zero=False, y_range=(lo, hi))
    panel.hlines.append((mean, GREEN, "5 3", f"mean {mean:.2f}% (not scored = 0)"))
    return chart("Accuracy per repeat", [panel], "repeat", x_range=(0.5, len(series.repeats) + 0.5))


def plot_curve(curve: Curve, budget_s: float | None, sigterm_s: float | None) -> Markup | None:
    """Accuracy on the curve set against the train phase's seconds (Wilson intervals, failed points
    red), the target and the deadline marked; the energy so far in a panel below where it was read."""
    points = sorted(curve.points, key=lambda p: p.seconds)
    if not points:
        return None
    scored = [p for p in points if p.accuracy is not None]
    failed = [p for p in points if p.accuracy is None]
    lines = [
        Line(
            "accuracy (curve set)",
            [p.seconds for p in scored],
            [100 * p.accuracy for p in scored],
            PALETTE[0],
            markers=True,
            errors=[(100 * (p.ci95_low or p.accuracy), 100 * (p.ci95_high or p.accuracy)) for p in scored],
        )
    ]
    if failed:
        lines.append(Line("predict failed", [p.seconds for p in failed], [2.0] * len(failed), RED, connect=False))
    accuracy = Panel("accuracy % (95% CI)", lines, y_range=(0.0, 100.0))
    accuracy.hlines.append((100 * curve.target, GREEN, "2 3", f"target {curve.target:.0%}"))
    panels = [accuracy]
    energy = [
        Line(label, xs, ys, colour, dash="5 3", markers=True)
        for label, colour, pairs in (
            (
                "GPU board energy",
                "#bc4c00",
                [(p.seconds, p.gpu_energy_j / 1000) for p in points if p.gpu_energy_j is not None],
            ),
            (
                "CPU package energy",
                PALETTE[1],
                [(p.seconds, p.cpu_energy_j / 1000) for p in points if p.cpu_energy_j is not None],
            ),
        )
        if pairs
        for xs, ys in [tuple(zip(*pairs))]
    ]
    if energy:
        panels.append(Panel("energy so far (kJ)", energy))
    xlabel = "seconds since train start (when the harness saw the checkpoint)"
    return chart("Accuracy against time, off the clock", panels, xlabel, _deadline_marks(budget_s, sigterm_s))
