"""leaderboard.html: one self-contained page (harness.markup: its skeleton and stylesheet), with an
inline SVG of the per-seed scores; no scripts, and no entry text becomes a link. Markup is built
with harness.markup, which escapes every value that is not markup it built."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness import text
from harness.formatting import fmt_kj, fmt_pct, fmt_s
from harness.markup import Markup, escape, h, page, table, warnings_box
from harness.model import Status
from harness.organizer.leaderboard.board import Board
from harness.organizer.leaderboard.rows import PENDING, Row, SeedRun
from harness.organizer.leaderboard.tables import (
    ci_text,
    curved,
    drift_runs,
    grouped_failures,
    ips_text,
    methods,
    options_line,
    seed_cell,
    source_text,
    status_text,
    target_header,
    tier_summary,
    tier_text,
    ties_text,
    to_target_cells,
)

PLOT_ROWS = 100  # the dot plot shows the top of the ranking; every entry's seeds are in the table and CSVs


def short_path(path: str, parts: int = 2) -> str:
    pieces = Path(path).parts
    return path if len(pieces) <= parts + 1 else "…/" + "/".join(pieces[-parts:])


def minor(*content: Any) -> Markup:
    """A second, smaller line under a cell's value."""
    return h("div", content, class_="minor")


def _dot_plot(board: Board) -> Markup | None:
    """Per-seed scores (dots), mean (bar) and 95% t-interval (line), one row per entry (the first PLOT_ROWS)."""
    rows = [r for r in board.rows if r.mean is not None][:PLOT_ROWS]
    if not rows:
        return None
    values = [x.accuracy for r in rows for x in r.runs if x.accuracy is not None]
    values += [v for r in rows if r.ci for v in (r.ci.low, r.ci.high) if v is not None]
    lo = max(0.0, math.floor(min(values) * 10) / 10)
    hi = min(1.0, math.ceil(max(values) * 10) / 10)
    if hi - lo < 0.1:
        hi = min(1.0, lo + 0.1)
        lo = hi - 0.1
    left, width, row_h, top = 230, 640, 30, 24
    height = top + row_h * len(rows) + 30

    def x(v: float) -> str:
        return f"{left + (min(max(v, lo), hi) - lo) / (hi - lo) * width:.1f}"

    def line(x1: str, x2: str, y1: float, y2: float, colour: str, stroke_width: int = 1) -> Markup:
        return h(
            "line",
            x1=x1,
            x2=x2,
            y1=f"{y1:.1f}",
            y2=f"{y2:.1f}",
            stroke=colour,
            stroke_width=stroke_width if stroke_width != 1 else None,
        )

    parts = []
    steps = int(round((hi - lo) / 0.05))
    for i in range(steps + 1):
        v = lo + i * (hi - lo) / steps
        parts += [
            line(x(v), x(v), top - 6, height - 24, "#d8dee4"),
            h("text", f"{100 * v:.0f}%", x=x(v), y=height - 8, text_anchor="middle"),
        ]
    for i, r in enumerate(rows):
        y = top + i * row_h + row_h / 2
        parts.append(h("text", escape(f"#{r.rank} {r.id}", 34), x=left - 10, y=f"{y + 4:.1f}", text_anchor="end"))
        if r.ci and r.ci.low is not None:
            parts.append(line(x(r.ci.low), x(r.ci.high), y, y, "#8c959f", 2))
        for run in r.runs:
            if run.accuracy is not None:
                colour = "#cf222e" if run.status != Status.SCORED.value else "#0969da"
                parts.append(
                    h(
                        "circle",
                        h("title", f"seed {run.seed}: {seed_cell(run)}"),
                        cx=x(run.accuracy),
                        cy=f"{y:.1f}",
                        r="4.5",
                        fill=colour,
                        fill_opacity=".75",
                    )
                )
        parts.append(line(x(r.mean), x(r.mean), y - 9, y + 9, "#1f2328", 3))
    return h(
        "svg",
        parts,
        role="img",
        aria_label="per-seed accuracy",
        width=left + width + 30,
        height=height,
        xmlns="http://www.w3.org/2000/svg",
    )


def _seed(x: SeedRun | None) -> Markup:
    if x is None:  # a seed this entry did not get (grade --until-resolved)
        return h("td", seed_cell(x), class_="num")
    title = text.clean(x.reason, 300) if x.reason else None
    if x.status in (Status.SCORED.value, PENDING):
        return h("td", seed_cell(x), class_="num pending" if x.status == PENDING else "num", title=title)
    return h("td", "0", minor(x.status.replace("_", " ")), class_="num fail", title=title)


def _row(board: Board, r: Row) -> Markup:
    tags = [h("span", "reference", class_="tag ref")] if r.reference else []
    if r.invalid:
        tags.append(h("span", "not gradable", class_="tag bad"))
    elif not r.complete:
        tags.append(h("span", "incomplete", class_="tag inc"))
    status = "bad" if r.failures or r.invalid else ("inc" if not r.complete else "ok")
    row_class = " ".join(
        c for c, on in (("ref", r.reference), ("tier", r.tier and r.tier > 1 and not r.within_noise)) if on
    )
    to_target = None
    if curved(board):
        time_to, energy_to = to_target_cells(r)
        to_target = h("td", time_to, minor(energy_to), class_="num")
    return h(
        "tr",
        h("td", r.rank, minor(f"tier {tier_text(r)}"), class_="num rank"),
        h(
            "td",
            h("div", r.id, tags, class_="entry"),
            h("div", short_path(r.path), class_="minor", title=r.path),
            # the archive's or the commit's digest, whole on hover; a folder has none: no line
            h("div", source_text(r), class_="minor", title=" ".join(d for _, d in r.sources)) if r.sources else None,
            class_="who",
        ),
        h("td", fmt_pct(r.mean), class_="num acc"),
        h("td", ci_text(r.ci), minor(f"Wilson pooled {ci_text(r.wilson)}"), class_="num"),
        [_seed(r.run_at(s)) for s in board.seeds],
        h("td", fmt_s(r.mean_of("train_s")), minor(f"predict {fmt_s(r.mean_of('predict_s'))}"), class_="num"),
        h("td", fmt_kj(r.mean_of("energy_j")), class_="num"),
        to_target,
        h("td", ties_text(board, r)),
        h("td", h("span", status_text(r), class_=f"tag st {status}")),
        class_=row_class or None,
    )


def _ranking(board: Board) -> Markup:
    def num(*content: Any) -> Markup:
        return h("th", content, class_="num")

    head = h(
        "tr",
        num("Rank", minor("tier")),
        h("th", "Entry"),
        num("Mean accuracy"),
        num("95% CI (t)"),
        [num(f"seed {s}") for s in board.seeds],
        num("Train time", minor("predict time")),
        num("GPU energy / run"),
        num(f"Time, GPU energy {target_header(board)}") if curved(board) else None,
        h("th", "Within noise of"),
        h("th", "Status"),
    )
    rows = h("table", h("thead", head), h("tbody", [_row(board, r) for r in board.rows]), class_="grid board")
    return h(
        "section",
        warnings_box(board.warnings),
        h("div", rows, class_="tw"),
        h("p", methods(board).replace("**", ""), class_="sub"),
    )


def render_html(board: Board) -> str:
    sections = [
        h(
            "header",
            h("h1", "Leaderboard"),
            h("p", options_line(board), h("br"), f"Generated {board.generated_at}", class_="sub"),
            class_="top",
        ),
        _ranking(board),
    ]
    if board.level is not None:
        sections.append(h("section", h("h2", "Tiers"), h("ul", [h("li", line) for line in tier_summary(board)])))
    if board.seeds_note:
        seeds = h("ul", [h("li", f"{r.id}: {r.seeds_why}") for r in board.rows])
        sections.append(h("section", h("h2", "Seeds"), h("p", board.seeds_note, class_="sub"), seeds))
    plot = _dot_plot(board)
    if plot:
        shown = min(PLOT_ROWS, sum(1 for r in board.rows if r.mean is not None))
        legend = "Dots: seeds (red: failed, counted as 0); black bar: mean; grey line: 95% t-interval." + (
            f" The first {shown} entries; every seed is in the table and in runs.csv." if shown == PLOT_ROWS else ""
        )
        sections.append(h("section", h("h2", "Per-seed scores"), h("p", legend, class_="sub"), plot))
    failures = grouped_failures(board)
    if failures:
        sections.append(
            h(
                "section",
                h("h2", "Failed runs (counted as 0)"),
                table(
                    ["Entry", "Seeds", "Status", "Reason"],
                    [
                        [entry, ", ".join(map(str, seeds)), status, escape(reason, 400)]
                        for entry, seeds, status, reason in failures
                    ],
                ),
            )
        )
    drift = drift_runs(board)
    if drift:
        sections.append(
            h(
                "section",
                h("h2", "Machine drift (reference entry, in the order it ran)"),
                table(
                    ["Started", "Seed", "Accuracy", "Train time", "Training images/s"],
                    [[x.started_at, x.seed, seed_cell(x), fmt_s(x.train_s), ips_text(x.images_per_s)] for x in drift],
                    numeric=(1, 2, 3, 4),
                ),
            )
        )
    return page("Leaderboard", sections, wide=True)
