"""The console summary at the end of a run or a series: plain text, every cell cleaned
(harness.text.clean through harness.formatting.text_table), so nothing the submission
wrote reaches the operator's terminal as a control sequence."""

from __future__ import annotations

from harness import text
from harness.formatting import CELL_CHARS, DASH, fmt_bytes, fmt_energy, fmt_num, fmt_pct, gpu_energy_j, text_table
from harness.model import RunResult, SeriesResult
from harness.report.curve import curve_line, reproduction_lines
from harness.report.rows import (
    accuracy_text,
    all_warnings,
    ci_text,
    compute_text,
    mean_std_text,
    series_warnings,
    signals_text,
    val,
)


def _clean(s: object) -> str:
    return text.clean(s, CELL_CHARS)


def _run_summary(r: RunResult) -> str:
    mon = r.monitor
    rows = [
        ("status", val(r.status) + (f": {r.reason}" if r.reason else "")),
        ("accuracy", accuracy_text(r)),
        (
            "train",
            f"{val(r.train.outcome)}  {r.train.seconds:.1f} s / {r.train.budget_s:.0f} s budget"
            + (f"  ({signals_text(r.train)})" if r.train.signals else ""),
        ),
        (
            "predict",
            f"{val(r.predict.outcome)}  {r.predict.seconds:.1f} s / {r.predict.budget_s:.0f} s budget"
            f"  ({compute_text(r.predict)})",
        ),
        (
            "cpu",
            f"mean {fmt_num(mon.cpu_percent_mean, '{:.0f}', '%')}  max "
            f"{fmt_num(mon.cpu_percent_max, '{:.0f}', '%')}  peak RSS {fmt_bytes(mon.rss_peak_bytes)}",
        ),
    ]
    if mon.gpus is None:
        rows.append(("gpu", "no GPU"))
    elif not mon.gpus:
        rows.append(("gpu", mon.gpu_note or "no GPU samples"))
    for g in mon.gpus or []:
        rows.append(
            (
                f"gpu{g.index}",
                f"util mean {fmt_num(g.util_mean, '{:.0f}', '%')} max "
                f"{fmt_num(g.util_max, '{:.0f}', '%')}  peak mem "
                f"{fmt_bytes(g.memory_used_peak_bytes)}  energy {fmt_energy(g.energy_j)}",
            )
        )
    if r.curve:
        rows.append(("curve", curve_line(r.curve)))
    rows += [("reproduces" if i == 0 else "", line) for i, line in enumerate(reproduction_lines(r))]
    warnings = all_warnings(r)
    rows.append(("warnings", warnings[0] if warnings else "none"))
    rows += [("", w) for w in warnings[1:]]
    return _clean(f"{r.submission.name} · run {r.run_id}") + "\n" + text_table(None, rows) + "\n"


def _series_summary(s: SeriesResult) -> str:
    rows = []
    for i, r in enumerate(s.repeats, 1):
        energy = gpu_energy_j(r.monitor)
        rows.append(
            [
                i,
                r.seed,
                val(r.status),
                fmt_pct(r.accuracy) if r.accuracy is not None else DASH,
                f"{r.correct}/{r.total}" if r.correct is not None else DASH,
                ci_text(r),
                val(r.train.outcome),
                f"{r.train.seconds:.1f}",
                f"{energy:,.0f} J" if energy is not None else ("no GPU" if r.monitor.gpus is None else DASH),
            ]
        )
    table = text_table(
        ["#", "seed", "status", "accuracy", "correct", "95% CI", "train", "train s", "GPU energy"],
        rows,
        right=(0, 1, 3, 4, 7, 8),
    )
    out = (
        f"{_clean(s.submission.name)} · series {_clean(s.run_id)} · {val(s.status)}"
        + (f": {_clean(s.reason)}" if s.reason else "")
        + "\n"
    )
    out += table + "\n" + f"mean ± std: {mean_std_text(s)}\n"
    for r in s.repeats[:1]:
        out += "".join(f"{_clean(line)}\n" for line in reproduction_lines(r))
    warnings = series_warnings(s)
    if warnings:
        out += "warnings:\n" + "".join(f"  {_clean(w)}\n" for w in warnings)
    return out


def summary_table(result: RunResult | SeriesResult) -> str:
    """A plain-text table for the console at the end of a run (or of a series of repeats)."""
    if isinstance(result, SeriesResult):
        return _series_summary(result)
    return _run_summary(result)
