"""The board of a grading directory: every seed of every entry read from its files (through the
typed model), then the means and intervals; ranks and tiers by harness.organizer.leaderboard.ranking."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import events, text
from harness.formatting import finite, gpu_energy_j, utc_now
from harness.model import EntrySource, Outcome, RunResult, Status, from_dict
from harness.options import PREDICT_RULE, default_predict_budget
from harness.organizer import stats
from harness.organizer.leaderboard.ranking import RANK_KEYS, rank, tiers
from harness.organizer.leaderboard.rows import PENDING, Row, SeedRun
from harness.scoring import wilson_interval

MAX_JSON_BYTES = 16 * 2**20  # a result.json bigger than this is not read (the harness writes a few KiB)


@dataclass
class Board:
    out: str
    options: dict
    seeds: list[int]
    rows: list[Row]
    level: float | None  # the level of each tier test (ALPHA over the comparisons); None: no tiers
    warnings: list[str]
    generated_at: str
    rank_by: str = "accuracy"
    seeds_note: str = ""  # grade --until-resolved: its maximum, rounds and why it stopped

    @functools.cached_property
    def _ranks(self) -> dict[str, int]:
        return {r.id: r.rank for r in self.rows}

    def rank_of(self, entry_id: str) -> int:
        return self._ranks[entry_id]


# --- reading ------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
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


def _int(x: Any) -> int | None:
    v = finite(x)
    return int(v) if v is not None else None


def _str(x: Any, limit: int = 1000) -> str | None:
    return None if x is None else text.utf8(text.cut(str(x), limit))


def training_throughput(run_dir: Path, train_count: int | None) -> float | None:
    """Training images per second from the submission's own epoch events (harness.events.throughput:
    epochs x images / time of the last epoch event), its events.jsonl read by harness.events.read."""
    if not train_count:
        return None
    return events.throughput(events.read(Path(run_dir) / "events.jsonl").events, train_count)


def seed_run(directory: Path, seed: int, invalid: str | None, default_total: int) -> SeedRun:
    """One seed of one entry from its files; a result.json that does not parse into the model is a
    failed seed (harness_error) with the reason, never an exception."""
    try:
        run = _seed_run(directory, seed, invalid, default_total)
    except Exception as exc:  # noqa: BLE001 - one unreadable run must not stop the leaderboard
        return SeedRun(
            seed,
            Status.HARNESS_ERROR.value,
            0.0,
            0,
            default_total,
            directory=str(directory),
            reason=f"its result.json could not be read ({type(exc).__name__}: {text.clean(exc, 200)})",
        )
    cluster = _read_json(directory / "slurm.json") or {}  # written by grade --backend slurm when it collects
    run.job_id, run.slurm_state = _str(cluster.get("job_id"), 40), _str(cluster.get("state"), 40)
    run.node, run.attempts = _str(cluster.get("node"), 200) or run.node, _int(cluster.get("attempts"))
    return run


def _seed_run(directory: Path, seed: int, invalid: str | None, default_total: int) -> SeedRun:
    if invalid:
        return SeedRun(seed, Status.INVALID_ENTRY.value, 0.0, 0, default_total, reason=f"not gradable: {invalid}")
    raw = _read_json(directory / "result.json")
    # the completion marker, as the grader reads it: a result with no status or `interrupted` runs again
    if raw is not None and raw.get("status") not in (None, Status.INTERRUPTED.value):
        result = from_dict(raw)
        if not isinstance(result, RunResult):
            raise TypeError("a series of repeats, not one graded run")
        return _from_result(result, seed, directory, default_total)
    error = _read_json(directory / "harness-error.json")
    if error is not None and raw is None:
        tail = error.get("log_tail")
        last = tail[-1] if isinstance(tail, list) and tail else ""
        return SeedRun(
            seed,
            Status.HARNESS_ERROR.value,
            0.0,
            0,
            default_total,
            directory=str(directory),
            reason=f"the harness failed (exit {_str(error.get('exit_code'), 20)}): {_str(last, 500)}",
        )
    return SeedRun(seed, PENDING, directory=str(directory))


def _from_result(r: RunResult, seed: int, directory: Path, default_total: int) -> SeedRun:
    """A seed from its typed result. The model types the shape; a value may still be of any kind
    (from_dict does not check scalars), so numbers go through `finite` and text through `_str`."""
    accuracy = finite(r.accuracy)
    scored = r.status is Status.SCORED and accuracy is not None
    data, train, source = r.data, r.train, r.submission.source
    return SeedRun(
        seed=seed,
        status=r.status.value,
        accuracy=accuracy if scored and accuracy is not None else 0.0,
        correct=(_int(r.correct) or 0) if scored else 0,
        total=_int(r.total) or _int(data.eval_count) or default_total,
        train_s=finite(train.seconds),
        train_outcome=_str(train.outcome.value, 40),
        predict_s=finite(r.predict.seconds) if r.predict.outcome is not Outcome.NOT_STARTED else None,
        predict_cpu_s=finite(r.predict.cpu_seconds),
        predict_over_default=_over_default(r),
        energy_j=gpu_energy_j(r.monitor),
        images_per_s=training_throughput(directory, _int(data.train_count)),
        started_at=_str(r.started_at, 40),
        reason=_str(r.reason or "") or "",
        directory=str(directory),
        data_sha256=_str(data.data_sha256, 100),
        sha256=_str(r.submission.sha256, 100),
        source_kind=_str(source.kind, 20) if source else None,
        source_digest=_str(source.digest, 100) if source else None,
        isolated=r.environment.isolated is not False,
        heldout_public=data.heldout_public is True,
        build_network=r.build is not None and r.build.network is True,
        time_to_target_s=finite(r.curve.time_to_target_s) if scored and r.curve else None,
        energy_to_target_j=finite(r.curve.gpu_energy_to_target_j) if scored and r.curve else None,
        node=_str(r.environment.hostname, 200) or None,
    )


def _over_default(r: RunResult) -> bool:
    """Whether predict's budget exceeded the default for the run's training budget (harness.predict_rule)."""
    budget, granted = finite(r.train.budget_s), finite(r.predict.budget_s)
    return budget is not None and granted is not None and granted > default_predict_budget(budget)


def verdict_warnings(rows: list[Row]) -> list[str]:
    """What weakens trust in these scores, said on the leaderboard itself."""

    def entries(flag) -> str:
        ids = sorted({row.id for row in rows for r in row.runs if r.finished and flag(r)})
        return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")

    found = []
    if names := entries(lambda r: not r.isolated):
        found.append(
            f"not isolated: {names} ran on the organizer's host (--runner local), where an entry can read "
            "and write what the harness can"
        )
    if names := entries(lambda r: r.build_network):
        found.append(f"networked build: {names} built their own Dockerfile with the network (--build-network), untimed")
    if names := entries(lambda r: r.predict_over_default):
        found.append(
            f"predict over its default: {names} had a predict budget over the default for the training "
            f"budget ({PREDICT_RULE}); predict-phase compute can buy accuracy (compare the predict times)"
        )
    if entries(lambda r: r.heldout_public):
        found.append(
            "the held-out images are a public split (CIFAR-10's test set): an entry can carry their labels; "
            "grade a real competition with --eval-data and a secret set"
        )
    return found


def summarize(row: Row) -> None:
    """The official score (the mean over finished seeds, a failed one counting 0) and its intervals."""
    done = row.finished
    values = [r.accuracy for r in done]
    row.ci = stats.t_interval(values)
    if row.ci.low is not None:  # accuracy is bounded: the interval is clamped to 0..100%
        row.ci.low, row.ci.high = max(0.0, row.ci.low), min(1.0, row.ci.high)
    row.mean = row.ci.mean if values else None
    row.std = math.sqrt(sum((v - row.mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    correct = sum(r.correct or 0 for r in done)
    total = sum(r.total or 0 for r in done)
    row.wilson = wilson_interval(correct, total) if total else None


def build(out: Path, rank_by: str = "accuracy") -> Board:
    if rank_by not in RANK_KEYS:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_KEYS)}, not {rank_by!r}")
    out = Path(out)
    plan = _read_json(out / "grading.json")
    if plan is None:
        raise ValueError(f"{out} is not a grading directory (no grading.json)")
    options = _dict(plan.get("options"))
    seeds = [s for s in (plan.get("seeds") if isinstance(plan.get("seeds"), list) else []) if _int(s) is not None]
    default_total = (_int(options.get("eval_per_class")) or 100) * 10
    extra_seeds = {k: v for k, v in _dict(plan.get("extra_seeds")).items() if isinstance(v, list)}
    until = _dict(plan.get("until_resolved"))
    listed = until.get("rounds") if isinstance(until.get("rounds"), list) else []
    rounds = [r for r in listed if isinstance(r, dict)]
    rows = []
    warnings = []
    for e in plan.get("entries") if isinstance(plan.get("entries"), list) else []:
        if not isinstance(e, dict) or not isinstance(e.get("id"), str) or not e["id"]:
            warnings.append(f"grading.json lists an entry without an id ({text.clean(e, 100)}); left out")
            continue
        info = _read_json(out / e["id"] / "entry.json") or {}
        invalid = _str(info.get("invalid"))
        own = seeds + [s for s in extra_seeds.get(e["id"], []) if _int(s) is not None and s not in seeds]
        runs = [seed_run(out / e["id"] / f"seed-{s}", s, invalid, default_total) for s in own]
        rows.append(Row(e["id"], str(e.get("path", "")), bool(e.get("reference")), invalid, runs))
        rows[-1].seeds_why = seeds_why(e["id"], len(seeds), len(own), rounds)
        rows[-1].checked_source = checked_source(info)

    for row in rows:
        summarize(row)
        digests = {r.sha256 for r in row.finished if r.sha256}
        if len(digests) > 1:
            warnings.append(f"{row.id}: its files changed between seeds ({len(digests)} different versions graded)")
    all_seeds = seeds + sorted({r.seed for row in rows for r in row.runs} - set(seeds))
    for seed in all_seeds:
        hashes = {x.data_sha256 for r in rows if (x := r.run_at(seed)) and x.data_sha256}
        if len(hashes) > 1:
            warnings.append(
                f"seed {seed}: the entries were not graded on the same images (data changed?); "
                "the comparison for this seed is not paired"
            )

    warnings += verdict_warnings(rows)
    rank(rows, rank_by)
    # tiers tell accuracies apart; a ranking by time or energy has none (its order is not an accuracy's)
    level = tiers(rows) if rank_by == "accuracy" else None
    note = until_note(until, len(seeds)) if until else ""
    return Board(str(out), options, all_seeds, rows, level, warnings, utc_now(), rank_by, note)


def checked_source(info: dict) -> tuple[str, str] | None:
    """(kind, digest) of the archive or commit the entry's check read (entry.json); None for a folder,
    a source refused before it was read, and an entry.json from before sources were recorded."""
    source = EntrySource.read(info.get("source"))
    kind, digest = (_str(source.kind, 20), _str(source.digest, 100)) if source else (None, None)
    return (kind or "", digest) if digest else None


def seeds_why(entry_id: str, base: int, count: int, rounds: list[dict]) -> str:
    """How many seeds an entry got and why (grade --until-resolved records each round's leader and
    the entries in its tier), e.g. '8 seeds: within noise of the leader a after 5, 6, 7'."""
    after: dict[str, list[str]] = {}
    n = base
    for r in rounds:
        if entry_id in (r.get("entries") or []):
            leader = _str(r.get("leader"), 200) or "?"
            why = "the leader, others within noise" if leader == entry_id else f"within noise of the leader {leader}"
            after.setdefault(why, []).append(str(n))
            n += 1
    if not after:
        return f"{count} seeds"
    return f"{count} seeds: " + "; ".join(f"{why} after {', '.join(ns)}" for why, ns in after.items())


def until_note(until: dict, base: int) -> str:
    rounds = until.get("rounds") if isinstance(until.get("rounds"), list) else []
    stopped = _str(until.get("stopped"), 300) or "still grading"
    return (
        f"--until-resolved: {base} seeds for every entry, more (up to {_int(until.get('max_seeds'))}) for the "
        f"entries in the leader's tier; {len(rounds)} extra round(s); {stopped}"
    )
