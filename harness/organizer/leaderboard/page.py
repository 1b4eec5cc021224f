"""leaderboard.html: one self-contained page (inline CSS, an inline SVG of the per-seed scores, no
scripts); every value escaped by harness.formatting.html."""

from __future__ import annotations

import math
from pathlib import Path

from harness.formatting import fmt_kj, fmt_pct, fmt_s, html
from harness.model import Status
from harness.organizer.leaderboard.board import PENDING, Board
from harness.organizer.leaderboard.tables import (
    ci_text,
    curved,
    drift_runs,
    grouped_failures,
    ips_text,
    methods,
    options_line,
        seed_cell,
    status_text,
    target_header,
    tier_summary,
    tier_text,
    ties_text,
    to_target_cells,
)

PLOT_ROWS = 100  # the dot plot shows the top of the ranking; every entry's seeds are in the table and CSVs

# --- HTML -----------------------------------------------------------------------------------

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f6f7f9;margin:0}
main{max-width:1500px;margin:0 auto;padding:24px 28px 48px}
.wrap{overflow-x:auto}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.meta{color:#56627a;margin:0 0 16px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08);margin:6px 0 10px}
th,td{padding:6px 8px;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:12px;color:#39445a}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.ref td{background:#f3f7ff}
tr.tier td{border-top:2px solid #7d8aa3}
.rank{font-weight:700;font-size:17px}
.acc{font-weight:700;font-size:17px}
.entry{font-weight:600;overflow-wrap:anywhere}.path{color:#6b768c;font-size:12px;overflow-wrap:anywhere}
td.who{min-width:140px;max-width:240px}.small{display:block;font-size:11px;color:#a01b1b;font-weight:400}
.tag{display:inline-block;white-space:nowrap;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600;margin-left:4px}
.tag.ref{background:#dbe7ff;color:#1f4fb3}.tag.bad{background:#fde2e2;color:#a01b1b}
.tag.inc{background:#fff1cc;color:#7a5a00}.tag.ok{background:#dff5e3;color:#18692d}
.tag.st{white-space:normal}.fail{color:#a01b1b}.pending{color:#8a93a6;font-style:italic}
.note{color:#56627a;font-size:13px;max-width:1100px}
.warn{background:#fff6e0;border-left:4px solid #e0a800;padding:8px 12px;margin:6px 0}
svg text{font:12px system-ui,sans-serif;fill:#39445a}
"""


def short_path(path: str, parts: int = 2) -> str:
    pieces = Path(path).parts
    return path if len(pieces) <= parts + 1 else "…/" + "/".join(pieces[-parts:])


def _dot_plot(board: Board) -> str:
    """Per-seed scores (dots), mean (bar) and 95% t-interval (line), one row per entry (the first PLOT_ROWS)."""
    rows = [r for r in board.rows if r.mean is not None][:PLOT_ROWS]
    if not rows:
        return ""
    values = [x.accuracy for r in rows for x in r.runs if x.accuracy is not None]
    values += [v for r in rows if r.ci for v in (r.ci.low, r.ci.high) if v is not None]
    lo = max(0.0, math.floor(min(values) * 10) / 10)
    hi = min(1.0, math.ceil(max(values) * 10) / 10)
    if hi - lo < 0.1:
        hi = min(1.0, lo + 0.1)
        lo = hi - 0.1
    left, width, row_h, top = 230, 640, 30, 24
    height = top + row_h * len(rows) + 30

    def x(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / (hi - lo) * width

    parts = [f'<svg role="img" aria-label="per-seed accuracy" width="{left + width + 30}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    steps = int(round((hi - lo) / 0.05))
    for i in range(steps + 1):
        v = lo + i * (hi - lo) / steps
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top - 6}" y2="{height - 24}" stroke="#e3e6eb"/>')
        parts.append(f'<text x="{x(v):.1f}" y="{height - 8}" text-anchor="middle">{100 * v:.0f}%</text>')
    for i, r in enumerate(rows):
        y = top + i * row_h + row_h / 2
        label = f"#{r.rank} {r.id}"
        parts.append(f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{html(label, 34)}</text>')
        if r.ci and r.ci.low is not None:
            parts.append(f'<line x1="{x(r.ci.low):.1f}" x2="{x(r.ci.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         'stroke="#7d8aa3" stroke-width="2"/>')
        for run in r.runs:
            if run.accuracy is None:
                continue
            colour = "#c0392b" if run.status != Status.SCORED.value else "#2f6fdb"
            parts.append(f'<circle cx="{x(run.accuracy):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}" fill-opacity=".75">'
                         f'<title>seed {run.seed}: {html(seed_cell(run))}</title></circle>')
        parts.append(f'<line x1="{x(r.mean):.1f}" x2="{x(r.mean):.1f}" y1="{y - 9:.1f}" y2="{y + 9:.1f}" '
                     'stroke="#1d2430" stroke-width="3"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(board: Board) -> str:
    seeds = board.seeds
    head = ("<tr><th class=n>Rank<div class=path>tier</div></th><th>Entry</th><th class=n>Mean accuracy</th><th class=n>95% CI (t)</th>"
            + "".join(f"<th class=n>seed {html(s)}</th>" for s in seeds)
            + "<th class=n>Train time<div class=path>predict time</div></th><th class=n>GPU energy / run</th>"
            + (f"<th class=n>Time, GPU energy {html(target_header(board))}</th>" if curved(board) else "")
            + "<th>Within noise of</th><th>Status</th></tr>")
    body = []
    for r in board.rows:
        tags = ""
        if r.reference:
            tags += '<span class="tag ref">reference</span>'
        if r.invalid:
            tags += '<span class="tag bad">not gradable</span>'
        elif not r.complete:
            tags += '<span class="tag inc">incomplete</span>'
        cells = []
        for x in r.runs:
            cls = "n pending" if x.status == PENDING else ("n fail" if x.status != Status.SCORED.value else "n")
            title = f' title="{html(x.reason, 300)}"' if x.reason else ""
            if x.status in (Status.SCORED.value, PENDING):
                cells.append(f"<td class='{cls}'{title}>{html(seed_cell(x))}</td>")
            else:
                cells.append(f"<td class='{cls}'{title}>0<span class=small>{html(x.status.replace('_', ' '))}</span></td>")
        status_cls = "bad" if r.failures or r.invalid else ("inc" if not r.complete else "ok")
        row_cls = " ".join(c for c, on in (("ref", r.reference), ("tier", r.tier and r.tier > 1 and not r.within_noise))
                           if on)
        body.append(
            f"<tr class='{row_cls}'><td class='n rank'>{r.rank}<div class=path>tier {html(tier_text(r))}</div></td>"
            f"<td class=who><div class=entry>{html(r.id)}{tags}</div><div class=path title='{html(r.path)}'>{html(short_path(r.path))}</div></td>"
            f"<td class='n acc'>{html(fmt_pct(r.mean))}</td>"
            f"<td class=n>{html(ci_text(r.ci))}"
            f"<div class=path>Wilson pooled {html(ci_text(r.wilson))}</div></td>"
            + "".join(cells)
            + f"<td class=n>{html(fmt_s(r.mean_of('train_s')))}"
            f"<div class=path>predict {html(fmt_s(r.mean_of('predict_s')))}</div></td>"
            + f"<td class=n>{html(fmt_kj(r.mean_of('energy_j')))}</td>"
            + ("<td class=n>{}<div class=path>{}</div></td>".format(*map(html, to_target_cells(r))) if curved(board)
               else "")
            + f"<td>{html(ties_text(board, r))}</td><td><span class='tag st {status_cls}'>{html(status_text(r))}</span></td></tr>")
    sections = [f"<h1>Leaderboard</h1><p class=meta>{html(options_line(board))}<br>Generated {html(board.generated_at)}</p>",
                f"<div class=wrap><table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table></div>",
                f"<p class=note>{html(methods(board).replace('**', ''))}</p>"]
    if board.level is not None:
        sections.append("<h2>Tiers</h2><ul>" + "".join(f"<li>{html(line)}</li>" for line in tier_summary(board))
                        + "</ul>")
    plot = _dot_plot(board)
    if plot:
        shown = min(PLOT_ROWS, sum(1 for r in board.rows if r.mean is not None))
        sections.append("<h2>Per-seed scores</h2><p class=note>Dots: seeds (red: failed, counted as 0); "
                        "black bar: mean; grey line: 95% t-interval."
                        + (f" The first {shown} entries; every seed is in the table and in runs.csv."
                           if shown == PLOT_ROWS else "") + "</p>" + plot)
    if board.warnings:
        sections.append("<h2>Warnings</h2>" + "".join(f"<div class=warn>{html(w)}</div>" for w in board.warnings))
    failures = grouped_failures(board)
    if failures:
        sections.append("<h2>Failed runs (counted as 0)</h2><table><tr><th>Entry</th><th>Seeds</th><th>Status</th>"
                        "<th>Reason</th></tr>" + "".join(
                            f"<tr><td>{html(entry)}</td><td>{html(', '.join(map(str, seeds_)))}</td><td>{html(status)}</td>"
                            f"<td>{html(reason, 400)}</td></tr>" for entry, seeds_, status, reason in failures) + "</table>")
    drift = drift_runs(board)
    if drift:
        sections.append("<h2>Machine drift (reference entry, in the order it ran)</h2><table><tr><th>Started</th>"
                        "<th class=n>Seed</th><th class=n>Accuracy</th><th class=n>Train time</th>"
                        "<th class=n>Training images/s</th></tr>" + "".join(
                            f"<tr><td>{html(x.started_at)}</td><td class=n>{x.seed}</td><td class=n>{html(seed_cell(x))}</td>"
                            f"<td class=n>{html(fmt_s(x.train_s))}</td><td class=n>{html(ips_text(x.images_per_s))}</td></tr>"
                            for x in drift) + "</table>")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>Leaderboard</title><style>{CSS}</style></head><body><main>"
            + "".join(sections) + "</main></body></html>\n")
