"""report.html: one self-contained page (inline CSS, plots as data: URIs, no scripts), rendered
from the rows of harness.report.rows. Every value is escaped here (harness.formatting.html);
a section that fails renders as a note saying so, never as a missing report."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Optional, Sequence

from harness import text
from harness.formatting import fmt_interval, fmt_pct
from harness.formatting import html as e
from harness.model import PhaseResult, SeriesResult, Status
from harness.report import plots
from harness.report.curve import CURVE_HEADERS, CURVE_NUMERIC, curve_rows, fingerprint_rows, point_rows, reproduction_lines
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


# --- pieces --------------------------------------------------------------------------------------


def badge(value: str) -> str:
    cls = re.sub(r"[^a-z_]", "", value.lower())
    return f'<span class="badge b-{cls}">{e(value)}</span>'


def cell(v: Any) -> str:
    """One value of a row as HTML."""
    if isinstance(v, Badge):
        return badge(v.value) + (f" {e(v.text)}" if v.text else "")
    if isinstance(v, Code):
        return f"<code>{e(v)}</code>"
    if isinstance(v, RepeatLink):
        return f'<a href="{e(url_path(v.dir))}/report.html">{e(v.dir)}</a>'
    return e(v)


def kv_table(rows: Iterable[Row]) -> str:
    body = "".join(f"<tr><th>{e(k)}</th><td>{cell(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def grid(headers: Sequence[str], rows: Iterable[Sequence[Any]], num: Sequence[int] = (),
         raw: Sequence[int] = ()) -> str:
    """A table of values (escaped here; `raw` columns are HTML already); `num` columns right-aligned."""
    def attr(i: int) -> str:
        return ' class="num"' if i in num else ""

    head = "".join(f"<th{attr(i)}>{e(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{attr(i)}>{c if i in raw else cell(c)}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<div class="tw"><table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def img(uri: Optional[str], alt: str) -> str:
    return f'<img class="plot" alt="{e(alt)}" src="{uri}">' if uri else ""


def pre(lines: Sequence[str]) -> str:
    return "<pre>" + text.html_lines(list(lines), LOG_LINE_CHARS) + "</pre>"


def sub(sentence: str) -> str:
    return f'<p class="sub">{e(sentence)}</p>'


def warnings_box(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{e(w)}</li>" for w in warnings)
    return f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>'


def guarded(title: str, fn: Callable[[], str]) -> str:
    """A section that fails renders as a note; a report never dies of one bad input."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        return (f'<section><h2>{e(title)}</h2><div class="err">This section could not be '
                f"rendered: {e(type(exc).__name__)}: {e(exc, 300)}</div></section>")


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>{body}"
        "<footer>generated by haet-harness</footer></main></body></html>\n"
    )


def _plot(fn: Callable[[], Optional[str]], alt: str) -> str:
    try:
        return img(fn(), alt)
    except Exception as exc:  # noqa: BLE001 - a plot that fails is a note, the rest of the section stays
        return f'<div class="err">plot failed: {e(type(exc).__name__)}: {e(exc, 300)}</div>'


def _status(status: str, reason: str) -> str:
    return badge(status) + (f' <span class="sub">{e(reason)}</span>' if reason else "")


# --- one run -------------------------------------------------------------------------------------


def _headline(c: RunFiles) -> str:
    r = c.result
    facts = []
    if r.correct is not None and r.total is not None:
        facts.append(f"{r.correct} / {r.total} correct")
    ci = accuracy_ci(r)
    if ci is not None and r.accuracy is not None:
        facts.append(f"95% CI (Wilson) {fmt_interval(*ci)}")
    hero = (f'<div class="hero"><div><div class="big">{e(fmt_pct(r.accuracy) if r.accuracy is not None else "not scored")}'
            f'</div><div class="sub">{e(" · ".join(facts))}</div></div>'
            f"<div>{_status(val(r.status), r.reason)}</div></div>")
    return (f'<header class="top"><h1>{e(r.submission.name)} <span class="sub">· HAET run report</span></h1>'
            '<nav><a href="#phases">phases</a><a href="#resources">resources</a>'
            '<a href="#events">events</a><a href="#score">score</a><a href="#environment">environment</a></nav>'
            f"</header><section>{hero}{warnings_box(all_warnings(r))}{kv_table(headline_rows(r))}</section>")


def _phase(c: RunFiles, phase: PhaseResult) -> str:
    out = f"<h3>{e(phase.phase.capitalize())}</h3>{kv_table(phase_rows(phase))}"
    checkpoints, more = checkpoint_rows(phase)
    if checkpoints:
        out += "<h3>Checkpoints</h3>" + grid(["name", "size", "sha256"], checkpoints, num=(1,))
        if more > 0:
            out += sub(f"and {more} more file(s)")
    failed = phase_failed(c.result, phase)
    tail = log_tail(c.run_dir, phase)
    if tail and failed:
        out += f"<h3>Last lines of {e(phase.phase)}.log</h3>{pre(tail)}"
    elif tail:
        out += f"<details><summary>last lines of {e(phase.phase)}.log</summary>{pre(tail)}</details>"
    elif failed:
        out += sub(f"{phase.phase}.log is empty.")
    return out


def _phases(c: RunFiles) -> str:
    return (f'<section id="phases"><h2>Phases</h2><div class="cols"><div>{_phase(c, c.result.train)}'
            f"</div><div>{_phase(c, c.result.predict)}</div></div></section>")


def _resources(c: RunFiles) -> str:
    mon, m = c.result.monitor, c.metrics
    parts = [warnings_box(list(mon.warnings or [])), kv_table(resource_rows(c))]
    if m is None or not m.t:
        parts.append(sub("metrics.csv is missing or has no samples; no resource plots."))
    else:
        if m.skipped_rows:
            parts.append(sub(f"{m.skipped_rows} malformed row(s) of metrics.csv skipped."))
        parts.append(_plot(lambda: plots.plot_cpu(m, c.budget_s, c.sigterm_s), "CPU and RSS over time"))
    parts += [f'<div class="note">{e(note)}</div>' for note in gpu_notes(c.result)]
    if mon.gpus:
        parts.append(grid(GPU_HEADERS, [gpu_row(g) for g in mon.gpus], num=GPU_NUMERIC))
    if mon.gpus is not None and m is not None and m.t:
        parts.append(_plot(lambda: plots.plot_gpu(m, c.budget_s, c.sigterm_s), "GPU over time"))
    return f'<section id="resources"><h2>Resources</h2>{"".join(parts)}</section>'


def _events(c: RunFiles) -> str:
    ev = c.events
    parts = [f"<p>{e(event_summary(ev))}</p>" if ev.events else sub(event_summary(ev))]
    if ev.events:
        parts.append(_plot(lambda: plots.plot_events(ev, c.budget_s, c.sigterm_s), "the submission's curves"))
        stats = event_stats(ev)
        if stats:
            parts.append(grid(EVENT_STATS_HEADERS, stats, num=(2, 3, 4, 5)))
    parts += [sub(note) for note in event_notes(ev)]
    if ev.events:
        parts.append("<h3>Last event</h3>" + kv_table(last_event_rows(ev)))
    return f'<section id="events"><h2>Training curves (the submission\'s events)</h2>{"".join(parts)}</section>'


def _score(c: RunFiles) -> str:
    s = c.result.score
    if s is None:
        return f'<section id="score"><h2>Score</h2>{sub(not_scored_text(c.result))}</section>'
    table = grid(["class", "correct", "total", "accuracy", ""], [
        [name, corr, tot, fmt_pct(acc, 1), f'<span class="bar" style="width:{int(round(100 * (acc or 0)))}px"></span>']
        for name, corr, tot, acc in per_class_rows(c.result)], num=(1, 2, 3), raw=(4,))
    confusion = _plot(lambda: plots.plot_confusion(s.confusion, class_names(c.result, len(s.confusion))),
                      "confusion matrix")
    return (f'<section id="score"><h2>Score</h2><p>{e(accuracy_text(c.result))}</p>'
            f'<div class="cols"><div><h3>Confusion matrix</h3>{confusion}</div>'
            f"<div><h3>Per-class accuracy</h3>{table}</div></div></section>")


def _curve(c: RunFiles) -> str:
    curve = c.result.curve
    if curve is None:
        return ""
    parts = [kv_table(curve_rows(curve)),
             _plot(lambda: plots.plot_curve(curve, c.budget_s, c.sigterm_s), "accuracy against time"),
             grid(CURVE_HEADERS, point_rows(curve), num=CURVE_NUMERIC)]
    parts += [sub(note) for note in curve.notes]
    return f'<section id="curve"><h2>Accuracy against time and energy (curve.csv)</h2>{"".join(parts)}</section>'


def _environment(c: RunFiles) -> str:
    r = c.result
    lines = reproduction_lines(r)
    reproduced = f'<div class="note">{e(lines[0])}{"".join(f"<br>{e(x)}" for x in lines[1:])}</div>' if lines else ""
    return (f'<section id="environment"><h2>Environment, data and submission</h2>{reproduced}<div class="cols">'
            f"<div><h3>Environment</h3>{kv_table(env_rows(r) + fingerprint_rows(r))}</div>"
            f"<div><h3>Data</h3>{kv_table(data_rows(r))}<h3>Submission</h3>{kv_table(submission_rows(r))}</div>"
            "</div></section>")


def render_run(c: RunFiles) -> str:
    body = "".join(guarded(title, lambda fn=fn: fn(c)) for title, fn in [
        ("Headline", _headline), ("Phases", _phases), ("Resources", _resources),
        ("Training curves", _events), ("Score", _score), ("Curve", _curve), ("Environment", _environment)])
    return page(f"{c.result.submission.name} · {c.result.run_id}", body)


# --- a series of repeats ----------------------------------------------------------------------------


def render_series(series: SeriesResult, rows: list[list[Any]]) -> str:
    def headline() -> str:
        scored = sum(1 for r in series.repeats if r.status == Status.SCORED)
        hero = (f'<div class="hero"><div><div class="big">{e(fmt_pct(series.accuracy_mean))}'
                f' <span class="sub" style="font-size:20px">± {e(fmt_pct(series.accuracy_std))}</span></div>'
                f'<div class="sub">mean ± std over {len(series.repeats)} repeats; {scored} scored '
                "(a repeat that did not score counts as 0)</div></div>"
                f"<div>{_status(val(series.status), series.reason)}</div></div>")
        return (f'<header class="top"><h1>{e(series.submission.name)} <span class="sub">· HAET series report'
                f"</span></h1></header><section>{hero}{warnings_box(series_warnings(series))}"
                f"{kv_table(series_rows(series))}</section>")

    def repeats() -> str:
        table = grid(REPEAT_HEADERS, rows, num=REPEAT_NUMERIC)
        return (f'<section id="repeats"><h2>Repeats</h2>{table}'
                f'{_plot(lambda: plots.plot_series_accuracy(series), "accuracy per repeat")}</section>')

    def environment() -> str:
        if not series.repeats:
            return ""
        r0 = series.repeats[0]
        return ('<section id="environment"><h2>Environment and data (first repeat)</h2><div class="cols">'
                f"<div><h3>Environment</h3>{kv_table(env_rows(r0))}</div>"
                f"<div><h3>Data</h3>{kv_table(data_rows(r0, per_seed=False))}"
                f"<h3>Submission</h3>{kv_table(submission_rows(r0))}</div></div></section>")

    body = "".join(guarded(title, fn) for title, fn in [
        ("Headline", headline), ("Repeats", repeats), ("Environment", environment)])
    return page(f"{series.submission.name} · {series.run_id}", body)



def unreadable(reason: str) -> str:
    """The report of a run whose result.json does not parse into the model."""
    return page("HAET run report", '<header class="top"><h1>HAET run report</h1></header><section>'
                f'<div class="err">This run has no readable result: {e(reason)}</div></section>')
