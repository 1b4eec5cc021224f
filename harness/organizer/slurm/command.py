"""The Slurm side of `python -m harness grade`: its flags, --dry-run, the attached/detached grading,
--status, and the local backend's guard against runs still in Slurm's queue."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from harness.organizer.plan import Grading
from harness.organizer.rundirs import GradeError, acquire_lock, completed_result, run_dir
from harness.organizer.slurm import client, limits, script
from harness.organizer.slurm import state as store
from harness.organizer.slurm.backend import DEFAULT_RETRIES, SlurmGrader, ask_cancel_or_detach


def add_arguments(p) -> None:
    p.add_argument(
        "--backend",
        choices=["local", "slurm"],
        default="local",
        help="local: child processes on this host; slurm: sbatch job arrays (results on a filesystem "
        "shared with the nodes)",
    )
    p.add_argument(
        "--status",
        type=Path,
        metavar="OUT",
        help="show a grading's queued/running/done/failed runs and the time left, and exit",
    )
    slurm = p.add_argument_group("Slurm (--backend slurm)")
    slurm.add_argument("--partition", help="sbatch --partition")
    slurm.add_argument("--account", help="sbatch --account")
    slurm.add_argument("--qos", help="sbatch --qos")
    slurm.add_argument("--constraint", help="sbatch --constraint (node features)")
    slurm.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="OPT",
        help="one more sbatch option, repeatable, e.g. --sbatch-arg=--exclusive",
    )
    slurm.add_argument("--max-parallel", type=int, metavar="N", help="at most N runs at a time (array %%N)")
    slurm.add_argument("--cpus-per-task", type=int, help="CPUs per run (default: the Docker runner's CPU limit, 8)")
    slurm.add_argument(
        "--mem",
        help="memory per run, sbatch syntax such as 16G (default: the Docker runner's "
        "memory limit + 4G for the harness)",
    )
    slurm.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="per grade command, submit a run again this many times after a platform failure "
        "(node failure, preemption, Slurm's time limit, a cancellation, a task that died)",
    )
    slurm.add_argument(
        "--detach",
        action="store_true",
        help="submit and exit; `grade --status OUT` follows, the same grade again collects",
    )
    slurm.add_argument("--dry-run", action="store_true", help="print the batch script(s); submit nothing")


SLURM_ONLY = (
    "partition",
    "account",
    "qos",
    "constraint",
    "sbatch_arg",
    "max_parallel",
    "cpus_per_task",
    "mem",
    "detach",
    "dry_run",
)


def refuse_slurm_options(args) -> None:
    """A Slurm option without --backend slurm would be silently ignored: say so instead."""
    given = [f"--{name.replace('_', '-')}" for name in SLURM_ONLY if getattr(args, name) not in (None, False, [])]
    if given:
        raise GradeError(f"{', '.join(given)} only mean something with --backend slurm; add it, or leave them out")


def job_name(out: Path) -> str:
    """One name per grading directory: its arrays are found in the queue even if slurm.json missed one."""
    return "haet-grade-" + hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:10]


def site_options(args) -> script.SiteOptions:
    if args.gpus:
        raise GradeError("--gpus is for the local backend; on Slurm each run gets its own GPU (--device cuda)")
    if args.retries < 0:
        raise GradeError("--retries must be 0 or more")
    return script.SiteOptions(
        args.partition,
        args.account,
        args.qos,
        args.constraint,
        list(args.sbatch_arg),
        args.max_parallel,
        args.cpus_per_task,
        args.mem,
        job_name(args.out),
    ).check()


def dry_run(args, grading: Grading, site: script.SiteOptions) -> int:
    """The batch script(s) of the runs without a final result; nothing written, nothing submitted."""
    progress = grading.progress
    jobs = [j for j in grading.jobs() if completed_result(run_dir(args.out, j)) is None]
    try:
        limit = client.max_array_size()
        note = limits.fit(site, client.partition_nodes(site.partition), script.default_cpus(), script.default_mem_mb())
        if note:
            progress.say(note)
    except client.SlurmError:
        limit = None  # no cluster here: one array, as the cluster's limit is unknown
    parts = script.split(len(jobs), limit)
    for n, part in enumerate(parts, start=1):
        print(f"# --- array {n} of {len(parts)}: {len(part)} run(s)" + (f" (MaxArraySize {limit})" if limit else ""))
        print(
            script.batch_script(
                [grading.command(jobs[i], None) for i in part],
                [jobs[i].key for i in part],
                args.out,
                Path.cwd(),
                grading.options,
                site,
            ),
            end="",
        )
    if not jobs:
        progress.say("every run has a final result: nothing to submit")
    return 0


def grade(args, grading: Grading, site: script.SiteOptions, publish: Callable[[], None]) -> str:
    """Submit, then watch until every run ended ("done"; "incomplete" when a run exhausted its
    retries); "detached" (--detach) or "interrupted" (Ctrl-C: cancelled or detached, as asked)."""
    progress = grading.progress
    reason = client.available()
    if reason:
        raise GradeError(f"no Slurm cluster answers: {reason}")
    lock = acquire_lock(args.out, progress, wait_s=10)
    try:
        grader = SlurmGrader(grading, site, args.retries)
        try:
            grader.start(on_progress=publish)
            if args.detach:
                if grader.backlog:
                    progress.say(
                        f"{len(grader.backlog)} run(s) not submitted yet (the job limit): the same grade "
                        "command submits them as room frees"
                    )
                progress.say(
                    f"detached: `python -m harness grade --status {args.out}` shows the runs; the same "
                    "grade command again collects them and writes the leaderboard"
                )
                return "detached"
            grader.watch(on_progress=publish)
        except KeyboardInterrupt:
            if ask_cancel_or_detach(progress):
                grader.cancel()
            else:
                progress.say(f"detached; `python -m harness grade --status {args.out}` follows the runs")
            store.save(args.out, grader.state)
            return "interrupted"
        gave_up = [
            j.key for j in grader.jobs() if grader.exhausted(j.key) and completed_result(run_dir(args.out, j)) is None
        ]
        if gave_up:
            progress.say(
                f"{len(gave_up)} run(s) failed on the cluster more than --retries {args.retries} times and "
                f"are not counted: {', '.join(gave_up[:10])}; the same grade command tries them again"
            )
            return "incomplete"
        return "done"
    finally:
        os.close(lock)


def refuse_if_queued(out: Path) -> None:
    """A local grade must not set aside the directory of a run that a Slurm task is writing."""
    state = store.load(out)
    open_tasks = sorted({r["task"] for r in state["runs"].values() if r.get("task") and not r.get("ended")})
    if not open_tasks:
        return
    try:
        found = client.tasks(sorted({t.split("_")[0] for t in open_tasks}))
    except client.SlurmError as exc:
        raise GradeError(
            f"{out} has runs submitted to Slurm that were never collected, and Slurm cannot be asked "
            f"({exc}); collect them with --backend slurm, or remove {out / store.STATE_FILE} if those "
            "jobs are gone"
        ) from None
    active = [t for t in open_tasks if t in found and found[t].active]
    if active:
        raise GradeError(
            f"{len(active)} run(s) of {out} are still in Slurm's queue (tasks {', '.join(active[:5])}): "
            "collect them with `grade --backend slurm`, or scancel them first"
        )


def read_json(path: Path) -> dict | None:
    try:
        found = json.loads(path.read_text())
        return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


def show_status(grading: Grading) -> int:
    """Counts of queued, running, done and failed runs, and an estimate of the time left."""
    out = grading.out
    options = grading.options
    state = store.load(out)
    try:
        found = client.tasks(
            sorted({r["task"].split("_")[0] for r in state["runs"].values() if r.get("task") and not r.get("ended")})
        )
        slurm_note = ""
    except client.SlurmError as exc:
        found = {}
        slurm_note = f" (Slurm did not answer: {exc})"
    counts = {"done": 0, "failed": 0, "running": 0, "queued": 0, "not submitted": 0}
    durations = []
    finishing = 0
    for entry in grading.entries:  # as the grading last checked it; each seed of an invalid entry counts 0
        entry.invalid = (read_json(out / entry.id / "entry.json") or {}).get("invalid")
        counts["failed"] += len(grading.entry_seeds(entry.id)) if entry.invalid else 0
    for job in grading.jobs():
        record = state["runs"].get(job.key, {})
        result = completed_result(run_dir(out, job))
        info = found.get(record.get("task") or "")
        active = info is not None and info.active and not record.get("ended")
        if result is not None:
            counts["failed" if result.get("status") != "scored" else "done"] += 1
            finishing += active  # its result is final; Slurm is still ending the task
            if isinstance(result.get("wall_seconds"), (int, float)):
                durations.append(float(result["wall_seconds"]))
        elif active:
            counts["running" if info.state in ("RUNNING", "COMPLETING") else "queued"] += 1
        else:
            counts["not submitted"] += 1
    total = sum(counts.values())
    print(f"{out}: {total} runs: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + slurm_note)
    reasons: dict[str, int] = {}
    for record in state["runs"].values():
        info = found.get(record.get("task") or "")
        if info is not None and info.state == "PENDING" and not record.get("ended"):
            reasons[info.reason] = reasons.get(info.reason, 0) + 1
    for reason, n in sorted(reasons.items()):
        why = limits.permanent(reason)
        print(f"  {n} queued for {reason or 'no reason given'}" + (f": they can never start ({why})" if why else ""))
    print(
        "  (failed: the entry's own failure, counted as 0; not submitted: waiting for the next grade, "
        "including platform failures to retry)"
    )
    left = counts["running"] + counts["queued"] + counts["not submitted"]
    if left:
        per_run = sum(durations) / len(durations) if durations else script.time_limit_s(options) - script.SETUP_MARGIN_S
        parallel = max(counts["running"], 1)
        estimate = math.ceil(left / parallel) * per_run
        print(
            f"  about {estimate / 60:.0f} min left at {parallel} run(s) at a time, "
            f"{per_run:.0f} s per run ({'measured' if durations else 'from the budgets'})"
        )
    elif finishing:
        print(f"  every run has a result; Slurm is still ending {finishing} task(s)")
    elif any(not r.get("ended") for r in state["runs"].values()):
        print("  every run has ended: the same `grade` command collects them and writes the leaderboard")
    else:
        print("  nothing left to run")
    return 0
