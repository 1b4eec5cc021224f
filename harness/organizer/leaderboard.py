"""The leaderboard of a grading directory: `leaderboard.md`, `.csv`, `.html` and `runs.csv`.

Built from the files alone (grading.json, <entry>/entry.json, <entry>/seed-<k>/result.json),
so it can be rebuilt at any time, also while a grading is still running.

Scores: a seed that failed in any way (crash, no checkpoint, invalid predictions,
an entry that is not gradable at all) counts as accuracy 0, as in the competition;
a seed not yet run is `pending` and left out (the entry is marked incomplete).
Ranking by the mean over seeds. Statistics: see harness/stats.py.
  * 95% interval: Student-t interval of the mean across seeds (main figure);
    pooled Wilson interval over all held-out predictions (secondary, CSV and HTML).
  * "Within noise of": a two-sided paired t-test on the per-seed differences over
    the seeds both entries finished, p >= 0.05 (no multiple-comparison correction).
Everything a submission controls (names, paths, reasons, log lines) is escaped by the one
escaping module, harness.text: `text.html` in HTML, `text.md` in Markdown, and in CSV the
text as it is (lone surrogates replaced) behind a formula guard. Every run is read on its
own: a result.json of an unexpected shape is that seed's failure with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from harness import events as events_mod
from harness import text
from harness.errors import UsageError
from harness.organizer import stats
from harness.files import atomic_write_bytes
from harness.scoring import wilson_interval

ALPHA = 0.05
MAX_JSON_BYTES = 16 * 2**20  # a result.json bigger than this is not read (the harness writes a few KiB)
MAX_EVENTS_BYTES = 32 * 2**20  # events.jsonl read for the throughput, at most
CELL_CHARS = 2000  # any one escaped value, at most
FAILED_STATUSES = ("failed", "invalid_predictions", "invalid_entry", "harness_error")


@dataclass
class SeedRun:
    seed: int
    status: str  # scored | failed | invalid_predictions | invalid_entry | harness_error | pending
    accuracy: Optional[float] = None  # the counted value: 0.0 for failures, None when pending
    correct: Optional[int] = None
    total: Optional[int] = None
    train_s: Optional[float] = None
    train_outcome: Optional[str] = None
    energy_j: Optional[float] = None
    images_per_s: Optional[float] = None
    started_at: Optional[str] = None
    reason: str = ""
    directory: str = ""
    index_hash: Optional[str] = None
    sha256: Optional[str] = None
    isolated: bool = True  # False: the entry ran on the organizer's host (--runner local)
    heldout_public: bool = False  # the held-out images were a published split
    build_network: bool = False  # the entry's own Dockerfile was built with the network

    @property
    def finished(self) -> bool:
        return self.status != "pending"


@dataclass
class Row:
    id: str
    path: str
    reference: bool
    invalid: Optional[str]
    runs: list[SeedRun]
    rank: int = 0
    mean: Optional[float] = None
    ci: Optional[stats.Interval] = None
    std: Optional[float] = None
    wilson: Optional[tuple[float, float]] = None
    tied_with: list[str] = field(default_factory=list)

    @property
    def finished(self) -> list[SeedRun]:
        return [r for r in self.runs if r.finished]

    @property
    def complete(self) -> bool:
        return all(r.finished for r in self.runs)

    @property
    def failures(self) -> int:
        return sum(1 for r in self.runs if r.status in FAILED_STATUSES)

    def mean_of(self, attr: str) -> Optional[float]:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return sum(values) / len(values) if values else None


@dataclass
class Board:
    out: str
    options: dict
    seeds: list[int]
    rows: list[Row]
    pvalues: dict[tuple[str, str], Optional[float]]
    warnings: list[str]
    generated_at: str


# --- reading ------------------------------------------------------------------------


def _read_json(path: Path) -> Optional[dict]:
    """A JSON object from a file of at most MAX_JSON_BYTES, or None (missing, too big, not an object)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            return None
        obj = json.loads(data)
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError, RecursionError):
        return None


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _float(x: Any) -> Optional[float]:
    """A finite number from a result field of any shape, else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        x = float(x)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def _int(x: Any) -> Optional[int]:
    v = _float(x)
    return int(v) if v is not None else None


def _str(x: Any, limit: int = 1000) -> Optional[str]:
    return None if x is None else text.utf8(text.cut(str(x), limit))


def training_throughput(run_dir: Path, train_count: Optional[int]) -> Optional[float]:
    """Training images per second from the submission's own epoch events: epochs x images / time.

    events.jsonl is read line by line, at most MAX_EVENTS_BYTES, each line parsed under the
    bounds of harness.events."""
    if not train_count:
        return None
    best = None
    try:
        with open(run_dir / "events.jsonl", "rb") as f:
            read = 0
            while read <= MAX_EVENTS_BYTES and (line := f.readline(events_mod.MAX_LINE + 1)):
                read += len(line)
                try:
                    event = events_mod.parse_event(line.strip())
                except Exception:  # noqa: BLE001 - a line that is not a kept event is skipped
                    continue
                epoch, t = _float(event.get("epoch")), _float(event.get("t_s"))
                if epoch is not None and t is not None and t > 0 and epoch > 0:
                    best = (epoch, t)
    except OSError:
        return None
    if best is None:
        return None
    return best[0] * train_count / best[1]


def gpu_energy(result: dict) -> Optional[float]:
    gpus = _dict(result.get("monitor")).get("gpus")
    values = [_float(g.get("energy_j")) for g in (gpus if isinstance(gpus, list) else []) if isinstance(g, dict)]
    values = [v for v in values if v is not None]
    return float(sum(values)) if values else None


def seed_run(directory: Path, seed: int, invalid: Optional[str], default_total: int) -> SeedRun:
    """One seed of one entry from its files; a result.json of an unexpected shape is a failed
    seed (harness_error) with the reason, never an exception."""
    try:
        return _seed_run(directory, seed, invalid, default_total)
    except Exception as exc:  # noqa: BLE001 - one unreadable run must not stop the leaderboard
        return SeedRun(seed, "harness_error", 0.0, 0, default_total, directory=str(directory),
                       reason=f"its result.json could not be read ({type(exc).__name__}: {text.clean(exc, 200)})")


def _seed_run(directory: Path, seed: int, invalid: Optional[str], default_total: int) -> SeedRun:
    if invalid:
        return SeedRun(seed, "invalid_entry", 0.0, 0, default_total, reason=f"not gradable: {invalid}")
    result = _read_json(directory / "result.json")
    if result is not None and result.get("status") not in (None, "interrupted"):
        status = text.clean(result["status"], 40)
        accuracy = _float(result.get("accuracy"))
        scored = status == "scored" and accuracy is not None
        data = _dict(result.get("data"))
        train = _dict(result.get("train"))
        return SeedRun(
            seed=seed,
            status=status,
            accuracy=accuracy if scored and accuracy is not None else 0.0,
            correct=(_int(result.get("correct")) or 0) if scored else 0,
            total=_int(result.get("total")) or _int(data.get("eval_count")) or default_total,
            train_s=_float(train.get("seconds")),
            train_outcome=_str(train.get("outcome"), 40),
            energy_j=gpu_energy(result),
            images_per_s=training_throughput(directory, _int(data.get("train_count"))),
            started_at=_str(result.get("started_at"), 40),
            reason=_str(result.get("reason") or "") or "",
            directory=str(directory),
            index_hash=_str(data.get("index_hash"), 100),
            sha256=_str(_dict(result.get("submission")).get("sha256"), 100),
            isolated=_dict(result.get("environment")).get("isolated") is not False,
            heldout_public=data.get("heldout_public") is True,
            build_network=_dict(result.get("build")).get("network") is True,
        )
    error = _read_json(directory / "harness-error.json")
    if error is not None and result is None:
        tail = error.get("log_tail")
        last = tail[-1] if isinstance(tail, list) and tail else ""
        return SeedRun(seed, "harness_error", 0.0, 0, default_total, directory=str(directory),
                       reason=f"the harness failed (exit {_str(error.get('exit_code'), 20)}): {_str(last, 500)}")
    return SeedRun(seed, "pending", directory=str(directory))


def verdict_warnings(rows: list[Row]) -> list[str]:
    """What weakens trust in these scores, said on the leaderboard itself."""
    def entries(flag) -> str:
        ids = sorted({row.id for row in rows for r in row.runs if r.finished and flag(r)})
        return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")

    found = []
    if names := entries(lambda r: not r.isolated):
        found.append(f"not isolated: {names} ran on the organizer's host (--runner local), where an entry can read "
                     "and write what the harness can")
    if names := entries(lambda r: r.build_network):
        found.append(f"networked build: {names} built their own Dockerfile with the network (--build-network), "
                     "untimed")
    if entries(lambda r: r.heldout_public):
        found.append("the held-out images are a public split (CIFAR-10's test set): an entry can carry their labels; "
                     "grade a real competition with --eval-data and a secret set")
    return found


def build(out: Path) -> Board:
    out = Path(out)
    plan = _read_json(out / "grading.json")
    if plan is None:
        raise ValueError(f"{out} is not a grading directory (no grading.json)")
    options = _dict(plan.get("options"))
    seeds = [s for s in (plan.get("seeds") if isinstance(plan.get("seeds"), list) else []) if _int(s) is not None]
    default_total = (_int(options.get("eval_per_class")) or 100) * 10
    rows = []
    warnings = []
    for e in plan.get("entries") if isinstance(plan.get("entries"), list) else []:
        if not isinstance(e, dict) or not isinstance(e.get("id"), str) or not e["id"]:
            warnings.append(f"grading.json lists an entry without an id ({text.clean(e, 100)}); left out")
            continue
        info = _read_json(out / e["id"] / "entry.json") or {}
        invalid = _str(info.get("invalid"))
        runs = [seed_run(out / e["id"] / f"seed-{s}", s, invalid, default_total) for s in seeds]
        rows.append(Row(e["id"], str(e.get("path", "")), bool(e.get("reference")), invalid, runs))

    for row in rows:
        done = row.finished
        values = [r.accuracy for r in done]
        row.ci = stats.t_interval(values)
        if row.ci.low is not None:  # accuracy is bounded: the interval is clamped to 0..100%
            row.ci.low, row.ci.high = max(0.0, row.ci.low), min(1.0, row.ci.high)
        row.mean = row.ci.mean if values else None
        row.std = (math.sqrt(sum((v - row.mean) ** 2 for v in values) / (len(values) - 1))
                   if len(values) > 1 else None)
        correct = sum(r.correct or 0 for r in done)
        total = sum(r.total or 0 for r in done)
        row.wilson = wilson_interval(correct, total) if total else None
        digests = {r.sha256 for r in done if r.sha256}
        if len(digests) > 1:
            warnings.append(f"{row.id}: its files changed between seeds ({len(digests)} different versions graded)")
    for seed_index, seed in enumerate(seeds):
        hashes = {r.runs[seed_index].index_hash for r in rows if r.runs[seed_index].index_hash}
        if len(hashes) > 1:
            warnings.append(f"seed {seed}: the entries were not graded on the same images (data changed?); "
                            "the comparison for this seed is not paired")

    warnings += verdict_warnings(rows)
    rows.sort(key=lambda r: (r.mean is None, -(r.mean or 0.0), r.id))
    for i, row in enumerate(rows, start=1):
        row.rank = i
    pvalues: dict[tuple[str, str], Optional[float]] = {}
    for a in rows:
        for b in rows:
            if a is b:
                continue
            pairs = [(x.accuracy, y.accuracy) for x, y in zip(a.runs, b.runs) if x.finished and y.finished]
            test = stats.paired_t_test([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None
            p = test.p if test else None
            pvalues[(a.id, b.id)] = p
            if a.mean is not None and b.mean is not None and (p is None or p >= ALPHA):
                a.tied_with.append(b.id)
    import datetime as dt

    return Board(str(out), options, seeds, rows, pvalues, warnings,
                 dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


# --- formatting helpers -------------------------------------------------------------


def pct(x: Optional[float], digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def ci_text(low: Optional[float], high: Optional[float]) -> str:
    return "—" if low is None or high is None else f"{100 * low:.1f}–{100 * high:.1f}%"


def seconds(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:.1f} s"


def energy(x: Optional[float]) -> str:
    return "n/a (no GPU)" if x is None else f"{x / 1000:.2f} kJ"


def seed_cell(run: SeedRun) -> str:
    if run.status == "pending":
        return "pending"
    if run.status == "scored":
        return pct(run.accuracy, 1)
    return f"0 ({run.status.replace('_', ' ')})"


def ties_text(board: Board, row: Row) -> str:
    ranks = {r.id: r.rank for r in board.rows}
    tied = sorted(row.tied_with, key=lambda i: ranks[i])
    return ", ".join(f"#{ranks[i]} {i}" for i in tied) if tied else "none"


def status_text(row: Row) -> str:
    if row.invalid:
        return "not gradable"
    done = len(row.finished)
    text = "complete" if row.complete else f"incomplete ({done}/{len(row.runs)} seeds)"
    if row.failures:
        text += f", {row.failures} failed"
    return text


def _num(x: Optional[float], fmt: str = "{:.6f}") -> str:
    return "" if x is None else fmt.format(x)


# --- Markdown ---------------------------------------------------------------------------


def md(x: Any, limit: int = CELL_CHARS) -> str:
    """Any text for Markdown (harness.text.md): one clean line, no raw HTML, no broken tables."""
    return text.md(x, limit)


def _md_table(headers: list[Any], rows: list[list[Any]], right: tuple[int, ...] = ()) -> str:
    """A table of plain values: every header and cell is escaped here."""
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(md(c) for c in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def options_line(board: Board) -> str:
    o = board.options
    return (f"data {o.get('data')}" + (f", held-out {o.get('eval_data')}" if o.get("eval_data") else "")
            + f"; budget {o.get('budget'):g} s; {o.get('train_per_class')} train / {o.get('eval_per_class')} "
            f"held-out images per class; seeds {', '.join(map(str, board.seeds))}; runner {o.get('runner')}; "
            f"device {o.get('device')}")


METHODS = (
    "Ranked by mean top-1 accuracy over the shared seeds; a failed seed counts as 0. "
    "**95% CI**: Student-t interval of the mean across seeds (mean ± t(0.975, n−1)·sd/√n, clamped to 0–100%). "
    "**Pooled Wilson**: binomial interval over all held-out predictions together (ignores training noise). "
    "**Within noise of**: two-sided paired t-test on per-seed differences (same training images and held-out "
    "images per seed), p ≥ 0.05, no multiple-comparison correction."
)


def render_md(board: Board) -> str:
    seeds = board.seeds
    out = ["# Leaderboard", "", md(options_line(board)), "", f"Generated {md(board.generated_at)}.", ""]
    headers = ["Rank", "Entry", "Mean accuracy", "95% CI (t)", *[f"seed {s}" for s in seeds],
               "Train time (mean)", "GPU energy / run", "Within noise of", "Status"]
    rows = []
    for r in board.rows:
        name = r.id + (" (reference)" if r.reference else "")
        rows.append([str(r.rank), name, pct(r.mean), ci_text(r.ci.low if r.ci else None, r.ci.high if r.ci else None),
                     *[seed_cell(x) for x in r.runs], seconds(r.mean_of("train_s")), energy(r.mean_of("energy_j")),
                     ties_text(board, r), status_text(r)])
    out += [_md_table(headers, rows, right=(0, 2, *range(4, 4 + len(seeds) + 2))), "", METHODS, ""]
    if board.warnings:
        out += ["## Warnings", ""] + [f"- {md(w)}" for w in board.warnings] + [""]
    if len(board.rows) > 1:
        out += ["## Paired t-test p-values", "",
                _md_table(["", *[r.id for r in board.rows]],
                          [[a.id, *["—" if a is b else _p(board.pvalues.get((a.id, b.id))) for b in board.rows]]
                           for a in board.rows]), ""]
    failures = grouped_failures(board)
    if failures:
        out += ["## Failed runs (counted as 0)", ""]
        out += [f"- {md(entry)} seed{'s' if len(seeds_) > 1 else ''} {', '.join(map(str, seeds_))}: {md(status)}: "
                f"{md(reason, 300)}" for entry, seeds_, status, reason in failures] + [""]
    drift = drift_runs(board)
    if drift:
        out += ["## Machine drift (reference entry, in the order it ran)", "",
                _md_table(["Started", "Seed", "Accuracy", "Train time", "Training images/s"],
                          [[x.started_at or "—", str(x.seed), seed_cell(x), seconds(x.train_s), _ips(x.images_per_s)]
                           for x in drift], right=(1, 2, 3, 4)), ""]
    out += ["## Entries", ""] + [f"- {md(r.id)}: {md(r.path)}" + (f" — not gradable: {md(r.invalid)}" if r.invalid else "")
                                 for r in board.rows]
    return "\n".join(out) + "\n"


def _p(p: Optional[float]) -> str:
    return "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _ips(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:,.0f}"


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


def render_csv(board: Board) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    seeds = board.seeds
    w.writerow(["rank", "entry", "reference", "status", "accuracy_mean", "ci95_low_t", "ci95_high_t", "accuracy_std",
                "wilson_low_pooled", "wilson_high_pooled", "seeds_finished", "seeds_failed",
                *[f"accuracy_seed_{s}" for s in seeds], "train_seconds_mean",
                *[f"train_seconds_seed_{s}" for s in seeds], "gpu_energy_j_mean",
                *[f"gpu_energy_j_seed_{s}" for s in seeds], "within_noise_of", "path"])
    for r in board.rows:
        w.writerow([r.rank, _cell(r.id), int(r.reference), _cell(status_text(r)), _num(r.mean),
                    _num(r.ci.low if r.ci else None), _num(r.ci.high if r.ci else None), _num(r.std),
                    _num(r.wilson[0] if r.wilson else None), _num(r.wilson[1] if r.wilson else None),
                    len(r.finished), r.failures, *[_num(x.accuracy) for x in r.runs], _num(r.mean_of("train_s"), "{:.3f}"),
                    *[_num(x.train_s, "{:.3f}") for x in r.runs], _num(r.mean_of("energy_j"), "{:.1f}"),
                    *[_num(x.energy_j, "{:.1f}") for x in r.runs], _cell(";".join(r.tied_with)), _cell(r.path)])
    return buf.getvalue()


def render_runs_csv(board: Board) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["entry", "seed", "status", "accuracy_counted", "correct", "total", "train_outcome", "train_seconds",
                "gpu_energy_j", "training_images_per_s", "started_at", "index_hash", "submission_sha256", "reason",
                "run_dir"])
    for r in board.rows:
        for x in r.runs:
            w.writerow([_cell(r.id), x.seed, x.status, _num(x.accuracy), _num(x.correct, "{}"), _num(x.total, "{}"),
                        x.train_outcome or "", _num(x.train_s, "{:.3f}"), _num(x.energy_j, "{:.1f}"),
                        _num(x.images_per_s, "{:.1f}"), x.started_at or "", x.index_hash or "", x.sha256 or "",
                        _cell(x.reason), _cell(x.directory)])
    return buf.getvalue()


# --- HTML -----------------------------------------------------------------------------------

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f6f7f9;margin:0}
main{max-width:1500px;margin:0 auto;padding:24px 28px 48px}
.wrap{overflow-x:auto}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.meta{color:#56627a;margin:0 0 16px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08);margin:6px 0 10px}
th,td{padding:7px 10px;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:13px;color:#39445a;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.ref td{background:#f3f7ff}
.rank{font-weight:700;font-size:17px}
.acc{font-weight:700;font-size:17px}
.entry{font-weight:600;min-width:190px;white-space:nowrap}.path{color:#6b768c;font-size:12px;overflow-wrap:anywhere}
td.who{min-width:200px;max-width:320px}.small{display:block;font-size:11px;color:#a01b1b;font-weight:400}
.tag{display:inline-block;white-space:nowrap;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600;margin-left:4px}
.tag.ref{background:#dbe7ff;color:#1f4fb3}.tag.bad{background:#fde2e2;color:#a01b1b}
.tag.inc{background:#fff1cc;color:#7a5a00}.tag.ok{background:#dff5e3;color:#18692d}
.tag.st{white-space:normal}.fail{color:#a01b1b}.pending{color:#8a93a6;font-style:italic}
.note{color:#56627a;font-size:13px;max-width:1100px}
.warn{background:#fff6e0;border-left:4px solid #e0a800;padding:8px 12px;margin:6px 0}
svg text{font:12px system-ui,sans-serif;fill:#39445a}
"""


def h(x: Any, limit: int = CELL_CHARS) -> str:
    """Any text for HTML (harness.text.html): cleaned, cut, escaped."""
    return text.html(x, limit)


def short_path(path: str, parts: int = 2) -> str:
    pieces = Path(path).parts
    return path if len(pieces) <= parts + 1 else "…/" + "/".join(pieces[-parts:])


def _dot_plot(board: Board) -> str:
    """Per-seed scores (dots), mean (bar) and 95% t-interval (line), one row per entry."""
    rows = [r for r in board.rows if r.mean is not None]
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
        parts.append(f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{h(label, 34)}</text>')
        if r.ci and r.ci.low is not None:
            parts.append(f'<line x1="{x(r.ci.low):.1f}" x2="{x(r.ci.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         'stroke="#7d8aa3" stroke-width="2"/>')
        for run in r.runs:
            if run.accuracy is None:
                continue
            colour = "#c0392b" if run.status != "scored" else "#2f6fdb"
            parts.append(f'<circle cx="{x(run.accuracy):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}" fill-opacity=".75">'
                         f'<title>seed {run.seed}: {h(seed_cell(run))}</title></circle>')
        parts.append(f'<line x1="{x(r.mean):.1f}" x2="{x(r.mean):.1f}" y1="{y - 9:.1f}" y2="{y + 9:.1f}" '
                     'stroke="#1d2430" stroke-width="3"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(board: Board) -> str:
    seeds = board.seeds
    head = ("<tr><th class=n>Rank</th><th>Entry</th><th class=n>Mean accuracy</th><th class=n>95% CI (t)</th>"
            + "".join(f"<th class=n>seed {h(s)}</th>" for s in seeds)
            + "<th class=n>Train time</th><th class=n>GPU energy / run</th><th>Within noise of</th><th>Status</th></tr>")
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
            cls = "n pending" if x.status == "pending" else ("n fail" if x.status != "scored" else "n")
            title = f' title="{h(x.reason, 300)}"' if x.reason else ""
            if x.status in ("scored", "pending"):
                cells.append(f"<td class='{cls}'{title}>{h(seed_cell(x))}</td>")
            else:
                cells.append(f"<td class='{cls}'{title}>0<span class=small>{h(x.status.replace('_', ' '))}</span></td>")
        status_cls = "bad" if r.failures or r.invalid else ("inc" if not r.complete else "ok")
        body.append(
            f"<tr class='{'ref' if r.reference else ''}'><td class='n rank'>{r.rank}</td>"
            f"<td class=who><div class=entry>{h(r.id)}{tags}</div><div class=path title='{h(r.path)}'>{h(short_path(r.path))}</div></td>"
            f"<td class='n acc'>{h(pct(r.mean))}</td>"
            f"<td class=n>{h(ci_text(r.ci.low if r.ci else None, r.ci.high if r.ci else None))}"
            f"<div class=path>Wilson pooled {h(ci_text(*(r.wilson or (None, None))))}</div></td>"
            + "".join(cells)
            + f"<td class=n>{h(seconds(r.mean_of('train_s')))}</td><td class=n>{h(energy(r.mean_of('energy_j')))}</td>"
            f"<td>{h(ties_text(board, r))}</td><td><span class='tag st {status_cls}'>{h(status_text(r))}</span></td></tr>")
    sections = [f"<h1>Leaderboard</h1><p class=meta>{h(options_line(board))}<br>Generated {h(board.generated_at)}</p>",
                f"<div class=wrap><table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table></div>",
                f"<p class=note>{h(METHODS.replace('**', ''))}</p>"]
    plot = _dot_plot(board)
    if plot:
        sections.append("<h2>Per-seed scores</h2><p class=note>Dots: seeds (red: failed, counted as 0); "
                        "black bar: mean; grey line: 95% t-interval.</p>" + plot)
    if board.warnings:
        sections.append("<h2>Warnings</h2>" + "".join(f"<div class=warn>{h(w)}</div>" for w in board.warnings))
    if len(board.rows) > 1:
        head_p = "<tr><th></th>" + "".join(f"<th class=n>{h(r.id)}</th>" for r in board.rows) + "</tr>"
        rows_p = "".join(
            f"<tr><th>{h(a.id)}</th>" + "".join(
                "<td class=n>—</td>" if a is b else f"<td class=n>{h(_p(board.pvalues.get((a.id, b.id))))}</td>"
                for b in board.rows) + "</tr>" for a in board.rows)
        sections.append("<h2>Paired t-test p-values</h2><table>" + head_p + rows_p + "</table>")
    failures = grouped_failures(board)
    if failures:
        sections.append("<h2>Failed runs (counted as 0)</h2><table><tr><th>Entry</th><th>Seeds</th><th>Status</th>"
                        "<th>Reason</th></tr>" + "".join(
                            f"<tr><td>{h(entry)}</td><td>{h(', '.join(map(str, seeds_)))}</td><td>{h(status)}</td>"
                            f"<td>{h(reason, 400)}</td></tr>" for entry, seeds_, status, reason in failures) + "</table>")
    drift = drift_runs(board)
    if drift:
        sections.append("<h2>Machine drift (reference entry, in the order it ran)</h2><table><tr><th>Started</th>"
                        "<th class=n>Seed</th><th class=n>Accuracy</th><th class=n>Train time</th>"
                        "<th class=n>Training images/s</th></tr>" + "".join(
                            f"<tr><td>{h(x.started_at)}</td><td class=n>{x.seed}</td><td class=n>{h(seed_cell(x))}</td>"
                            f"<td class=n>{h(seconds(x.train_s))}</td><td class=n>{h(_ips(x.images_per_s))}</td></tr>"
                            for x in drift) + "</table>")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>Leaderboard</title><style>{CSS}</style></head><body><main>"
            + "".join(sections) + "</main></body></html>\n")


# --- console and writing -------------------------------------------------------------


def console_table(board: Board) -> str:
    headers = ["#", "entry", "mean", "95% CI (t)", "seeds", "train s", "within noise of"]
    rows = [[text.clean(c, 200) for c in (
        str(r.rank), r.id + (" (ref)" if r.reference else ""), pct(r.mean),
        ci_text(r.ci.low if r.ci else None, r.ci.high if r.ci else None),
        " ".join(seed_cell(x).split(" ")[0] for x in r.runs), seconds(r.mean_of("train_s")),
        ties_text(board, r))] for r in board.rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [headers, *rows]]
    return "\n".join(lines + [f"warning: {text.clean(w)}" for w in board.warnings])


def write_leaderboard(out: Path) -> Board:
    out = Path(out)
    board = build(out)
    for name, render in (("leaderboard.md", render_md), ("leaderboard.csv", render_csv), ("runs.csv", render_runs_csv),
                         ("leaderboard.html", render_html)):
        atomic_write_bytes(out / name, render(board).encode("utf-8", "replace"))
    return board


def add_parser(commands) -> None:
    p = commands.add_parser("leaderboard", help="rebuild leaderboard.{md,csv,html} of a grading directory")
    p.add_argument("grading_dir", type=Path, metavar="GRADING_DIR")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_leaderboard)


def cmd_leaderboard(args, progress) -> int:
    if not (Path(args.grading_dir) / "grading.json").is_file():
        raise UsageError(f"{args.grading_dir} is not a grading directory (no grading.json); run `harness grade` first")
    board = write_leaderboard(args.grading_dir)
    print(console_table(board))
    return 0
