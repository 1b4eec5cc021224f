"""The leaderboard as text: the cells every output shares, leaderboard.md, leaderboard.csv,
runs.csv and the console table. Entry text is escaped by harness.formatting's writers
(`md_table`, `md`, `text_table`); CSV keeps it as it is behind a formula guard."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

from harness import text
from harness.formatting import DASH, fmt_digest, fmt_interval, fmt_kj, fmt_pct, fmt_s, md, md_table, text_table
from harness.model import Status
from harness.organizer import stats
from harness.organizer.leaderboard.board import Board
from harness.organizer.leaderboard.rows import FAILED_STATUSES, PENDING, Row, SeedRun

# --- cells every output shares -------------------------------------------------------------


def ci_text(interval: stats.Interval | tuple[float, float] | None) -> str:
    """A 95% interval of accuracy, one decimal: '79.6–83.4%'."""
    if interval is None:
        return DASH
    low, high = (interval.low, interval.high) if isinstance(interval, stats.Interval) else interval
    return fmt_interval(low, high, 1)


def seed_cell(run: SeedRun | None) -> str:
    if run is None:  # a seed this entry did not get (grade --until-resolved)
        return DASH
    if run.status == PENDING:
        return PENDING
    if run.status == Status.SCORED.value:
        return fmt_pct(run.accuracy, 1)
    return f"0 ({run.status.replace('_', ' ')})"


def ties_text(board: Board, row: Row) -> str:
    """The entry this one is within noise of (the head of its tier) and the test's one-sided p-value,
    or 'none'; '—' without tiers."""
    if row.tier is None:
        return DASH
    if not row.within_noise or row.versus is None:
        return "none"
    return f"#{board.rank_of(row.versus)} {row.versus}" + ("" if row.p is None else f" (p {p_text(row.p)})")


def tier_text(row: Row) -> str:
    return DASH if row.tier is None else str(row.tier)


def tier_summary(board: Board) -> list[str]:
    """One line per tier: its ranks, its size, and why its head is separable from the tier above."""
    sizes = Counter(r.tier for r in board.rows if r.tier is not None)
    lines = []
    for r in board.rows:
        if r.tier is None or r.within_noise or (r.versus is None and lines):
            continue
        line = f"Tier {r.tier} ({sizes[r.tier]} entr{'y' if sizes[r.tier] == 1 else 'ies'}): from #{r.rank} {r.id}"
        if r.versus is not None:
            line += f", separable from #{board.rank_of(r.versus)} {r.versus}: {r.why}"
        lines.append(line)
    return lines


def status_text(row: Row) -> str:
    if row.invalid:
        return "not gradable"
    done = len(row.finished)
    out = "complete" if row.complete else f"incomplete ({done}/{len(row.runs)} seeds)"
    if row.failures:
        out += f", {row.failures} failed"
    return out


def source_text(row: Row) -> str:
    """The archive's or the commit's digest, shortened: 'zip 3f2a9b1c0d4e'; '—' for a folder."""
    return ", ".join(f"{kind} {fmt_digest(digest)}" for kind, digest in row.sources) or DASH


def curved(board: Board) -> bool:
    """The grading ran with --curve: the board shows time and energy to the target."""
    return board.options.get("curve") is True


def target_header(board: Board) -> str:
    target = board.options.get("target")
    return f"to {target:.0%}" if isinstance(target, (int, float)) else "to target"


def to_target_cells(row: Row) -> list[str]:
    """Mean time and GPU board energy to the target over the seeds; '—' unless every seed reached it."""
    return [fmt_s(row.mean_to_target("time_to_target_s")), fmt_kj(row.mean_to_target("energy_to_target_j"), DASH)]


RANKED_BY = {
    "accuracy": "Ranked by mean top-1 accuracy over the shared seeds; a failed seed counts as 0.",
    "time-to-target": "Ranked by the mean time to reach the target accuracy on the off-clock curve (--curve); an "
    "entry that missed it on a seed ranks after those that reached it on every seed, by accuracy.",
    "energy-to-target": "Ranked by the mean GPU board energy to reach the target accuracy on the off-clock curve "
    "(--curve); an entry that missed it on a seed ranks after those that reached it on every "
    "seed, by accuracy.",
}


def methods(board: Board) -> str:
    m = max(1, sum(1 for r in board.rows if r.mean is not None) - 1)
    tiers = NO_TIERS if board.level is None else METHODS.format(level=f"{board.level:.3g}", m=m)
    return " ".join([RANKED_BY[board.rank_by], *([CURVE_NOTE] if curved(board) else []), tiers])


def _num(x: float | None, fmt: str = "{:.6f}") -> str:
    return "" if x is None else fmt.format(x)


# --- Markdown ---------------------------------------------------------------------------


def options_line(board: Board) -> str:
    o = board.options
    return (
        f"data {o.get('data')}"
        + (f", held-out {o.get('eval_data')}" if o.get("eval_data") else "")
        + f"; budget {o.get('budget'):g} s"
        + (f", predict {o.get('predict_budget'):g} s" if isinstance(o.get("predict_budget"), (int, float)) else "")
        + (" (--strict-predict)" if o.get("strict_predict") else "")
        + f"; {o.get('train_per_class')} train / {o.get('eval_per_class')} "
        f"held-out images per class; seeds {', '.join(map(str, board.seeds))}; runner {o.get('runner')}; "
        f"device {o.get('device')}"
    )


CURVE_NOTE = (
    "Time and GPU board energy to the target: at the first snapshot of the checkpoints at or above it, "
    "predicted off the clock on a curve set apart from the held-out images (mean over seeds; — unless "
    "every seed reached it). The official score is the final accuracy."
)
METHODS = (
    "**95% CI**: Student-t interval of the mean across seeds (mean ± t(0.975, n−1)·sd/√n, clamped to 0–100%). "
    "**Pooled Wilson**: binomial interval over all held-out predictions together (ignores training noise). "
    "**Tier**, **Within noise of**: going down the ranking, each entry is compared once with the head of its tier "
    "(tier 1: the leader) and starts the next tier if it is separable from it: it failed a seed the head scored, "
    "or, on the seeds both scored, a one-sided paired t-test rejects at {level} (0.05 over the {m} comparisons, "
    "Bonferroni). Equal scores share a rank and a tier."
)
NO_TIERS = "No tiers: they compare accuracies, and this board is ranked by something else."


def render_md(board: Board) -> str:
    seeds = board.seeds
    out = ["# Leaderboard", "", md(options_line(board)), "", f"Generated {md(board.generated_at)}.", ""]
    headers = [
        "Rank",
        "Tier",
        "Entry",
        "Mean accuracy",
        "95% CI (t)",
        *[f"seed {s}" for s in seeds],
        "Train time (mean)",
        "Predict time (mean)",
        "GPU energy / run",
        *([f"Time {target_header(board)}", f"GPU energy {target_header(board)}"] if curved(board) else []),
        "Within noise of",
        "Status",
        "Source",
    ]
    rows = []
    for r in board.rows:
        name = r.label + (" (reference)" if r.reference else "")
        rows.append(
            [
                str(r.rank),
                tier_text(r),
                name,
                fmt_pct(r.mean),
                ci_text(r.ci),
                *[seed_cell(r.run_at(s)) for s in seeds],
                fmt_s(r.mean_of("train_s")),
                fmt_s(r.mean_of("predict_s")),
                fmt_kj(r.mean_of("energy_j")),
                *(to_target_cells(r) if curved(board) else []),
                ties_text(board, r),
                status_text(r),
                source_text(r),
            ]
        )
    numeric = 5 + len(seeds) + (5 if curved(board) else 3)
    out += [md_table(headers, rows, right=(0, 1, 3, *range(5, numeric))), "", methods(board), ""]
    if board.level is not None:
        out += ["## Tiers", ""] + [f"- {md(line)}" for line in tier_summary(board)] + [""]
    if board.seeds_note:
        out += ["## Seeds", "", md(board.seeds_note), ""] + [f"- {md(r.id)}: {md(r.seeds_why)}" for r in board.rows]
        out += [""]
    if board.warnings:
        out += ["## Warnings", ""] + [f"- {md(w)}" for w in board.warnings] + [""]
    failures = grouped_failures(board)
    if failures:
        out += ["## Failed runs (counted as 0)", ""]
        out += [
            f"- {md(entry)} seed{'s' if len(seeds_) > 1 else ''} {', '.join(map(str, seeds_))}: {md(status)}: "
            f"{md(reason, 300)}"
            for entry, seeds_, status, reason in failures
        ] + [""]
    drift = drift_runs(board)
    if drift:
        out += [
            "## Machine drift (reference entry, in the order it ran)",
            "",
            md_table(
                ["Started", "Seed", "Accuracy", "Train time", "Training images/s"],
                [
                    [x.started_at or "—", str(x.seed), seed_cell(x), fmt_s(x.train_s), ips_text(x.images_per_s)]
                    for x in drift
                ],
                right=(1, 2, 3, 4),
            ),
            "",
        ]
    out += ["## Entries", ""] + [
        f"- {md(r.id)}: {md(r.path)}" + (f" — not gradable: {md(r.invalid)}" if r.invalid else "") for r in board.rows
    ]
    return "\n".join(out) + "\n"


def p_text(p: float | None) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def ips_text(x: float | None) -> str:
    return DASH if x is None else f"{x:,.0f}"


def grouped_failures(board: Board) -> list[tuple[str, list[int], str, str]]:
    """(entry, seeds, status, reason) for failed runs, seeds with the same failure together."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for r in board.rows:
        for x in r.runs:
            if x.status in FAILED_STATUSES:
                groups.setdefault((r.id, x.status, x.reason), []).append(x.seed)
    return [(entry, seeds, status, reason) for (entry, status, reason), seeds in groups.items()]


def drift_runs(board: Board) -> list[SeedRun]:
    runs = [x for r in board.rows if r.reference for x in r.runs if x.started_at]
    return sorted(runs, key=lambda x: x.started_at or "")


# --- CSV ------------------------------------------------------------------------------------


def _cell(x: Any) -> str:
    """A CSV cell: the text as it is (UTF-8-safe), a leading formula character guarded with a quote."""
    value = "" if x is None else text.utf8(x)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(value) else value


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _at(row: Row, seed: int, attr: str) -> float | None:
    run = row.run_at(seed)
    return None if run is None else getattr(run, attr)


def render_csv(board: Board) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    seeds = board.seeds
    w.writerow(
        [
            "rank",
            "entry",
            "reference",
            "status",
            "accuracy_mean",
            "ci95_low_t",
            "ci95_high_t",
            "accuracy_std",
            "wilson_low_pooled",
            "wilson_high_pooled",
            "seeds_finished",
            "seeds_failed",
            *[f"accuracy_seed_{s}" for s in seeds],
            "train_seconds_mean",
            *[f"train_seconds_seed_{s}" for s in seeds],
            "predict_seconds_mean",
            *[f"predict_seconds_seed_{s}" for s in seeds],
            "gpu_energy_j_mean",
            *[f"gpu_energy_j_seed_{s}" for s in seeds],
            "time_to_target_s_mean",
            "gpu_energy_to_target_j_mean",
            *[f"time_to_target_s_seed_{s}" for s in seeds],
            "within_noise_of",
            "tier",
            "compared_with",
            "p_one_sided",
            "tier_reason",
            "path",
            "seeds",
            "seeds_why",
            "source_kind",
            "source_digest",
        ]
    )
    for r in board.rows:
        w.writerow(
            [
                r.rank,
                _cell(r.id),
                int(r.reference),
                _cell(status_text(r)),
                _num(r.mean),
                _num(r.ci.low if r.ci else None),
                _num(r.ci.high if r.ci else None),
                _num(r.std),
                _num(r.wilson[0] if r.wilson else None),
                _num(r.wilson[1] if r.wilson else None),
                len(r.finished),
                r.failures,
                *[_num(_at(r, s, "accuracy")) for s in seeds],
                _num(r.mean_of("train_s"), "{:.3f}"),
                *[_num(_at(r, s, "train_s"), "{:.3f}") for s in seeds],
                _num(r.mean_of("predict_s"), "{:.3f}"),
                *[_num(_at(r, s, "predict_s"), "{:.3f}") for s in seeds],
                _num(r.mean_of("energy_j"), "{:.1f}"),
                *[_num(_at(r, s, "energy_j"), "{:.1f}") for s in seeds],
                _num(r.mean_to_target("time_to_target_s"), "{:.3f}"),
                _num(r.mean_to_target("energy_to_target_j"), "{:.1f}"),
                *[_num(_at(r, s, "time_to_target_s"), "{:.3f}") for s in seeds],
                _cell(r.versus if r.within_noise else ""),
                _num(r.tier, "{}"),
                _cell(r.versus or ""),
                _num(r.p, "{:.3g}"),
                _cell(r.why),
                _cell(r.path),
                len(r.runs),
                _cell(r.seeds_why),
                _cell(" ".join(dict.fromkeys(kind for kind, _ in r.sources))),
                _cell(" ".join(digest for _, digest in r.sources)),
            ]
        )
    return buf.getvalue()


def render_runs_csv(board: Board) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "entry",
            "seed",
            "status",
            "accuracy_counted",
            "correct",
            "total",
            "train_outcome",
            "train_seconds",
            "predict_seconds",
            "predict_cpu_seconds",
            "gpu_energy_j",
            "training_images_per_s",
            "started_at",
            "data_sha256",
            "submission_sha256",
            "source_kind",
            "source_digest",
            "reason",
            "run_dir",
            "node",
            "slurm_job",
            "slurm_state",
            "attempts",
        ]
    )
    for r in board.rows:
        for x in r.runs:
            w.writerow(
                [
                    _cell(r.id),
                    x.seed,
                    x.status,
                    _num(x.accuracy),
                    _num(x.correct, "{}"),
                    _num(x.total, "{}"),
                    x.train_outcome or "",
                    _num(x.train_s, "{:.3f}"),
                    _num(x.predict_s, "{:.3f}"),
                    _num(x.predict_cpu_s, "{:.2f}"),
                    _num(x.energy_j, "{:.1f}"),
                    _num(x.images_per_s, "{:.1f}"),
                    x.started_at or "",
                    x.data_sha256 or "",
                    x.sha256 or "",
                    _cell(x.source_kind or ""),
                    _cell(x.source_digest or ""),
                    _cell(x.reason),
                    _cell(x.directory),
                    _cell(x.node or ""),
                    _cell(x.job_id or ""),
                    _cell(x.slurm_state or ""),
                    _num(x.attempts, "{}"),
                ]
            )
    return buf.getvalue()


# --- console -------------------------------------------------------------------------------


def console_table(board: Board) -> str:
    headers = ["#", "tier", "entry", "mean", "95% CI (t)", "seeds", "train s", "predict s", "within noise of"]
    rows = [
        [
            text.clean(c, 200)
            for c in (
                str(r.rank),
                tier_text(r),
                r.label + (" (ref)" if r.reference else ""),
                fmt_pct(r.mean),
                ci_text(r.ci),
                " ".join(seed_cell(x).split(" ")[0] for x in r.runs),
                fmt_s(r.mean_of("train_s")),
                fmt_s(r.mean_of("predict_s")),
                ties_text(board, r),
            )
        ]
        for r in board.rows
    ]
    return "\n".join([text_table(headers, rows, rule=False)] + [f"warning: {text.clean(w)}" for w in board.warnings])
