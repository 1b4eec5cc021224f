"""`grade --until-resolved [--max-seeds N]`: more seeds only where they decide something.

Every entry gets the plan's base seeds (--repeats). Then, round by round: the leaderboard is built,
and the entries of the leader's tier (not separable from the leader under the ranking rule of
harness.organizer.leaderboard.ranking; the leader too, when its tier holds others) get one more seed,
the same one for each (the next integer after every seed of the plan), so that they stay paired.
It stops when the leader's tier is the leader alone (resolved), or when the leader or every other
entry of its tier has --max-seeds seeds.

The plan (grading.json) holds everything: "extra_seeds" {entry id: [seeds]} which Grading.jobs()
runs like the base seeds on either backend, and "until_resolved" {max_seeds, rounds: [{seed,
leader, entries}], stopped}. A round is written to the plan before its runs start, so a killed
grading resumed with the same command runs that round's missing runs and goes on from there.
The official score stays the mean over an entry's seeds, a failed seed counting 0.
"""

from __future__ import annotations

from pathlib import Path

from harness.files import atomic_write_json
from harness.organizer.leaderboard.board import Board
from harness.organizer.plan import PLAN_FILE
from harness.organizer.rundirs import GradeError

KEY = "until_resolved"
DEFAULT_FACTOR = 2  # without --max-seeds: at most twice the --repeats seeds


def check_arguments(args, plan: dict | None, entry_count: int) -> int | None:
    """The --max-seeds of this grading, or None without --until-resolved; one clear error otherwise.
    `plan`: the existing plan (a resume) or None; `entry_count`: the entries it will hold."""
    recorded = (plan or {}).get(KEY)
    if not args.until_resolved:
        if args.max_seeds is not None:
            raise GradeError("--max-seeds only applies with --until-resolved; add --until-resolved or drop it")
        if recorded:
            raise GradeError(
                f"{args.out} was graded with --until-resolved --max-seeds {recorded.get('max_seeds')}; resume "
                "with the same options, or grade into a new --out directory"
            )
        return None
    if args.max_seeds is None:  # the default: twice the base seeds
        args.max_seeds = (recorded or {}).get("max_seeds") or DEFAULT_FACTOR * args.repeats
    if args.max_seeds <= args.repeats:
        raise GradeError(
            f"--max-seeds {args.max_seeds} leaves no seed to add to the {args.repeats} of --repeats; "
            "give a --max-seeds above --repeats"
        )
    if args.rank_by != "accuracy":
        raise GradeError(
            f"--until-resolved decides by the accuracy tiers, and --rank-by {args.rank_by} has none; drop one of them"
        )
    if args.backend == "slurm" and args.detach:
        raise GradeError(
            "--until-resolved decides each round from the last one's results, so it cannot --detach; "
            "grade attached (the same command resumes after a Ctrl-C)"
        )
    if entry_count < 2:
        raise GradeError(
            "--until-resolved compares entries, and this grading has fewer than two (a --reference alone "
            "counts as one); pass the entries to grade"
        )
    if recorded and recorded.get("max_seeds") != args.max_seeds:
        raise GradeError(
            f"{args.out} was graded with --max-seeds {recorded.get('max_seeds')}; resume with the same "
            "options, or grade into a new --out directory"
        )
    return args.max_seeds


def record(out: Path, plan: dict, max_seeds: int, write: bool = True) -> None:
    """Note the option in the plan (once), so that a resume keeps it."""
    if KEY not in plan:
        plan[KEY] = {"max_seeds": max_seeds, "rounds": [], "stopped": None}
        plan.setdefault("extra_seeds", {})
        if write:
            atomic_write_json(out / PLAN_FILE, plan)


def next_round(out: Path, plan: dict, board: Board) -> bool:
    """Add the next round of seeds to the plan and write it (True), or write why it stops (False)."""
    until = plan[KEY]
    max_seeds = until["max_seeds"]
    scored = [r for r in board.rows if r.mean is not None]
    if not scored:
        return _stop(out, plan, "stopped: no entry has a score")
    leader = scored[0]
    tier = [r for r in scored if r.tier == 1]
    if len(tier) < 2:
        return _stop(out, plan, f"resolved: {leader.id} leads, separable from every other entry")
    open_ = [r for r in tier if len(r.runs) < max_seeds]
    if leader not in open_ or len(open_) < 2:
        still = ", ".join(r.id for r in tier if r is not leader)
        return _stop(out, plan, f"stopped at --max-seeds {max_seeds}: {still} still within noise of {leader.id}")
    every = set(plan["seeds"]) | {s for seeds in plan["extra_seeds"].values() for s in seeds}
    seed = max(every) + 1
    for row in open_:
        plan["extra_seeds"].setdefault(row.id, []).append(seed)
    until["rounds"].append({"seed": seed, "leader": leader.id, "entries": [r.id for r in open_]})
    until["stopped"] = None
    atomic_write_json(out / PLAN_FILE, plan)
    return True


def _stop(out: Path, plan: dict, reason: str) -> bool:
    plan[KEY]["stopped"] = reason
    atomic_write_json(out / PLAN_FILE, plan)
    return False


def describe_round(plan: dict) -> str:
    last = plan[KEY]["rounds"][-1]
    return (
        f"until resolved: seed {last['seed']} for {', '.join(last['entries'])} "
        f"(within noise of the leader {last['leader']})"
    )
