"""The report's plots: PNGs drawn with matplotlib's Agg canvas (no pyplot, no global backend
state), returned as base64 `data:` URIs so that the HTML is one file with no external assets.

Labels come from the submission (event names, class folders): they are cleaned and made
mathtext-safe before matplotlib sees them.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from harness import text
from harness.model import Curve, SeriesResult
from harness.report.read import Events, Metrics
from harness.report.rows import accuracy_ci, group_of

DPI = 100
MAX_SERIES_PER_GROUP = 10
MAX_PLOT_POINTS = 4000
MAX_OTHER_PANELS = 3
GROUP_ORDER = ("loss", "accuracy", "learning rate", "other")


def safe_label(s: Any, limit: int = 40) -> str:
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


def _nan_to_none(xs: Sequence[float], scale: float = 1.0) -> list[float | None]:
    return [None if math.isnan(x) else x * scale for x in xs]


def _mark_deadline(ax, budget_s: float | None, sigterm_s: float | None, label: bool) -> None:
    if sigterm_s is not None:
        ax.axvline(sigterm_s, color="#bc4c00", ls="--", lw=1, label=f"SIGTERM ({sigterm_s:.1f} s)" if label else None)
    if budget_s is not None and budget_s > 0:
        ax.axvline(budget_s, color="#cf222e", ls="-", lw=1.2, label=f"deadline ({budget_s:.0f} s)" if label else None)
    # the x range always shows the deadline, however early the run ended
    lim = ax.dataLim
    lo = min(0.0, lim.x0) if math.isfinite(lim.x0) else 0.0
    hi = max([v for v in (budget_s, sigterm_s, lim.x1 if math.isfinite(lim.x1) else None) if v] or [1.0])
    ax.set_xlim(lo, hi * 1.02)


def _top_legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles,
            labels,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncol=min(len(handles), 5),
            fontsize=8,
            frameon=False,
            borderaxespad=0.2,
        )


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


def plot_cpu(m: Metrics, budget_s: float | None, sigterm_s: float | None) -> str | None:
    cpu, rss = m.col("cpu_percent"), m.col("rss_bytes")
    if not m.t or (cpu is None and rss is None):
        return None
    fig = _new_figure(10, 4.6)
    axes = fig.subplots(2, 1, sharex=True)
    if cpu is not None:
        axes[0].plot(m.t, _nan_to_none(cpu), color="#0969da", lw=1.2, **_markers(len(m.t)))
    _style(axes[0], "CPU %  (100 = 1 core)", zero=True)
    if rss is not None:
        axes[1].plot(m.t, _nan_to_none(rss, 1 / 2**30), color="#8250df", lw=1.2, **_markers(len(m.t)))
    _style(axes[1], "RSS (GiB)", zero=True)
    for i, ax in enumerate(axes):
        _mark_deadline(ax, budget_s, sigterm_s, label=i == 0)
    _top_legend(axes[0])
    axes[1].set_xlabel("seconds since train start")
    axes[0].set_title("CPU and memory of the submission's process tree", fontsize=11, loc="left")
    fig.tight_layout()
    return _png_data_uri(fig)


def plot_gpu(m: Metrics, budget_s: float | None, sigterm_s: float | None) -> str | None:
    if not m.t or not m.gpu_indices:
        return None
    panels = [
        ("util", "utilization %", 1.0),
        ("power_w", "power (W)", 1.0),
        ("mem_used_bytes", "memory used (GiB)", 1 / 2**30),
    ]
    present = [p for p in panels if any(m.col(f"gpu{i}_{p[0]}") is not None for i in m.gpu_indices)]
    if not present:
        return None
    fig = _new_figure(10, 1.9 * len(present) + 0.6)
    axes = fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, ylabel, scale) in zip(axes, present):
        for i in m.gpu_indices:
            c = m.col(f"gpu{i}_{key}")
            if c is not None:
                ax.plot(m.t, _nan_to_none(c, scale), lw=1.2, label=f"GPU {i}", **_markers(len(m.t)))
        _style(ax, ylabel, zero=True)
        _mark_deadline(ax, budget_s, sigterm_s, label=ax is axes[0])
    _top_legend(axes[0])
    axes[-1].set_xlabel("seconds since train start")
    axes[0].set_title("GPU", fontsize=11, loc="left")
    fig.tight_layout()
    return _png_data_uri(fig)


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


def plot_events(ev: Events, budget_s: float | None, sigterm_s: float | None) -> str | None:
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
            ax.plot(ts, xs, lw=1.3, marker="o" if len(xs) <= 60 else None, ms=3, label=safe_label(label))
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


def plot_confusion(confusion: list[list[int]], classes: list[str]) -> str | None:
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
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=8 if n <= 12 else 6,
                color="white" if v > vmax / 2 else "#1f2328",
            )
    labels = [safe_label(c, 14) for c in classes]
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _png_data_uri(fig)


def plot_series_accuracy(series: SeriesResult) -> str | None:
    if not series.repeats:
        return None
    fig = _new_figure(9, 2.8)
    ax = fig.subplots()
    scored = [r for r in series.repeats if r.accuracy is not None]
    cis = [c for r in scored if (c := accuracy_ci(r)) is not None]
    lows = [100 * c[0] for c in cis] + [100 * r.accuracy for r in scored]
    highs = [100 * c[1] for c in cis] + [100 * r.accuracy for r in scored]
    bottom, top = (min(lows) - 2, max(highs) + 2) if lows else (0.0, 100.0)
    ax.set_ylim(bottom, top)
    for i, r in enumerate(series.repeats, 1):
        if r.accuracy is None:
            ax.plot([i], [bottom + 0.04 * (top - bottom)], "x", color="#cf222e", ms=9)
            ax.annotate(
                "not scored",
                (i, bottom + 0.04 * (top - bottom)),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
                color="#cf222e",
            )
            continue
        ci = accuracy_ci(r)
        if ci is not None:
            ax.errorbar(
                [i],
                [100 * r.accuracy],
                yerr=[[100 * (r.accuracy - ci[0])], [100 * (ci[1] - r.accuracy)]],
                fmt="o",
                color="#0969da",
                capsize=4,
            )
        else:
            ax.plot([i], [100 * r.accuracy], "o", color="#0969da")
    ax.axhline(
        100 * series.accuracy_mean,
        color="#1a7f37",
        ls="--",
        lw=1,
        label=f"mean {100 * series.accuracy_mean:.2f}% (not scored = 0)",
    )
    ax.set_xticks(range(1, len(series.repeats) + 1))
    ax.set_xlim(0.5, len(series.repeats) + 0.5)
    ax.set_xlabel("repeat")
    ax.set_ylabel("accuracy % (95% CI)")
    ax.grid(True, alpha=0.3)
    _top_legend(ax)
    fig.tight_layout()
    return _png_data_uri(fig)


def plot_curve(curve: Curve, budget_s: float | None, sigterm_s: float | None) -> str | None:
    """Accuracy on the curve set against the train phase's seconds (Wilson intervals, failed points
    as red crosses), the target and the deadline marked; energy so far on a second axis."""
    points = sorted(curve.points, key=lambda p: p.seconds)
    if not points:
        return None
    fig = _new_figure(10, 3.8)
    ax = fig.subplots()
    scored = [p for p in points if p.accuracy is not None]
    if scored:
        ax.errorbar(
            [p.seconds for p in scored],
            [100 * p.accuracy for p in scored],
            yerr=[
                [100 * (p.accuracy - (p.ci95_low or p.accuracy)) for p in scored],
                [100 * ((p.ci95_high or p.accuracy) - p.accuracy) for p in scored],
            ],
            fmt="-o",
            ms=4,
            lw=1.4,
            capsize=3,
            color="#0969da",
            label="accuracy (curve set)",
        )
    failed = [p for p in points if p.accuracy is None]
    if failed:
        ax.plot([p.seconds for p in failed], [2.0] * len(failed), "x", ms=9, color="#cf222e", label="predict failed")
    ax.axhline(100 * curve.target, color="#1a7f37", ls=":", lw=1, label=f"target {curve.target:.0%}")
    _style(ax, "accuracy %  (95% CI)")
    ax.set_ylim(0, 100)
    _mark_deadline(ax, budget_s, sigterm_s, label=True)
    energy = [(p.seconds, p.gpu_energy_j, p.cpu_energy_j) for p in points]
    gpu = [(t, j / 1000) for t, j, _ in energy if j is not None]
    cpu = [(t, j / 1000) for t, _, j in energy if j is not None]
    if gpu or cpu:
        twin = ax.twinx()
        for series, label, colour in ((gpu, "GPU board energy", "#bc4c00"), (cpu, "CPU package energy", "#8250df")):
            if series:
                twin.plot(*zip(*series), "--s", ms=3, lw=1, color=colour, label=label)
        twin.set_ylabel("energy so far (kJ)")
        twin.set_ylim(bottom=0)
        handles, labels = twin.get_legend_handles_labels()
        for h, lab in zip(handles, labels):
            ax.plot([], [], "--s", ms=3, lw=1, color=h.get_color(), label=lab)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize=8, frameon=False)
    ax.set_xlabel("seconds since train start (when the harness saw the checkpoint)")
    ax.set_title("Accuracy against time, off the clock", fontsize=11, loc="left")
    fig.tight_layout()
    return _png_data_uri(fig)
