"""`python -m harness grade DIR... --out GRADING_DIR`: grade many entries fairly, resumably.

Layout of GRADING_DIR (everything written atomically):

    grading.json                  the plan: options that must not change, seeds, entries, and with
                                  --until-resolved each entry's extra seeds and why (harness.organizer.until)
    <entry>/entry.json            where the entry lives, its files' digest, its archive's or commit's
                                  (`source`; null for a folder), why it is invalid (if so)
    <entry>/seed-<k>/             one graded run (`python -m harness run` in a child process)
    <entry>/seed-<k>/result.json  the completion marker; status `interrupted` does not count
    <entry>/seed-<k>.stale-<n>/   an earlier, unfinished attempt: kept, never deleted
    leaderboard.{md,csv,html}, runs.csv
    slurm.json, .slurm/           with --backend slurm: arrays, tasks, markers (harness.organizer.slurm)

The plan, the order of the runs (fair: paired seeds, the reference first, the others rotated) and
each run's command are harness.organizer.plan's, shared with the Slurm backend; this module is the
command and the local backend.

Concurrency: one graded run per GPU at a time. Each run is its own child process:
the local runner finds a phase's processes as all descendants of its harness
process (a child subreaper), so two runs must never share one. The children die
with the grader (PR_SET_PDEATHSIG) and inherit its lock on GRADING_DIR, so a
resumed grading waits until every run of the killed one has stopped.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

from harness import unpack
from harness.console import Progress
from harness.errors import EXIT_INTERRUPTED, ContractError
from harness.files import atomic_write_json
from harness.formatting import utc_now
from harness.options import GRADING_REPEATS, RunOptions, add_arguments
from harness.options import from_args as options_from_args
from harness.organizer import until
from harness.organizer.leaderboard import add_rank_by
from harness.organizer.plan import Grading, Job, make_plan, read_plan
from harness.organizer.rundirs import GradeError, acquire_lock, completed_result, run_dir
from harness.organizer.slurm import command as slurm_command
from harness.runners import runner_name

PR_SET_PDEATHSIG = 1


# --- the local backend ---------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the grader died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Grader(Grading):
    """The local backend: the plan's runs as child processes, one per GPU at a time."""

    def __init__(self, out: Path, plan: dict, options: RunOptions, gpus: list[str | None], progress: Progress):
        super().__init__(out, plan, options, progress)
        self.gpus = gpus

    def run(self, on_progress=None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        lock = acquire_lock(self.out, self.progress)
        try:
            self._run(lock, on_progress)
        finally:
            os.close(lock)

    def _run(self, lock: int, on_progress) -> None:
        pending = self.prepare()
        total = len(self.jobs())
        extra = sum(map(len, self.extra_seeds.values()))
        self.progress.say(
            f"grading {len(self.entries)} entries x {len(self.seeds)} seeds"
            + (f" + {extra} extra seed run(s) (--until-resolved)" if extra else "")
            + f" into {self.out}: "
            f"{self.counts['done_before']} run(s) already done, {len(pending)} to run on "
            + (", ".join(f"GPU {g}" for g in self.gpus) if self.gpus != [None] else "one slot")
        )
        if on_progress:
            on_progress()
        logs = self.out / ".logs"
        logs.mkdir(exist_ok=True)
        running: dict[str | None, tuple[Job, subprocess.Popen, Path, float]] = {}
        parent = os.getpid()
        try:
            while pending or running:
                for gpu in self.gpus:
                    if gpu in running or not pending:
                        continue
                    job = pending.pop(0)
                    log = logs / f"{job.entry.id}.seed-{job.seed}.log"
                    with open(log, "wb") as sink:
                        proc = subprocess.Popen(
                            self.command(job, gpu),
                            stdin=subprocess.DEVNULL,
                            stdout=sink,
                            stderr=subprocess.STDOUT,
                            pass_fds=(lock,),
                            start_new_session=True,
                            preexec_fn=lambda: _die_with_parent(parent),
                        )
                    running[gpu] = (job, proc, log, time.monotonic())
                    self.progress.say(
                        f"[{self.counts['done_before'] + self.counts['ran'] + 1}/{total}] {job.key} "
                        + (f"on GPU {gpu} " if gpu is not None else "")
                        + "started"
                    )
                for gpu, (job, proc, log, t0) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[gpu]
                    self._finish(job, proc.returncode, log, time.monotonic() - t0)
                    if on_progress:
                        on_progress()
                time.sleep(0.1)
        except KeyboardInterrupt:
            self.progress.say("interrupted: stopping the running graded runs (their partial results are kept)")
            for _job, proc, _log, _t0 in running.values():
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for job, proc, log, t0 in running.values():
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self._finish(job, proc.returncode, log, time.monotonic() - t0, interrupted=True)
            if on_progress:
                on_progress()
            raise

    def _finish(self, job: Job, code: int, log: Path, seconds: float, interrupted: bool = False) -> None:
        directory = run_dir(self.out, job)
        result = completed_result(directory)
        if not directory.is_dir():
            directory.mkdir(parents=True)
        try:
            os.replace(log, directory / "harness.log")
        except OSError:
            pass
        if result is not None:
            self.counts["ran"] += 1
            acc = result.get("accuracy")
            self.progress.say(
                f"{job.key}: {result['status']}"
                + (f" {acc:.2%}" if isinstance(acc, float) else "")
                + (f" ({result.get('reason')})" if result.get("reason") else "")
                + f" [{seconds:.0f}s]"
            )
            return
        if interrupted or code in (130, -signal.SIGTERM, -signal.SIGINT):
            self.progress.say(f"{job.key}: interrupted; it will run again when the grading is resumed")
            return
        tail = []
        try:
            tail = (directory / "harness.log").read_text(errors="replace").splitlines()[-15:]
        except OSError:
            pass
        atomic_write_json(
            directory / "harness-error.json",
            {
                "exit_code": code,
                "log_tail": tail,
                "at": utc_now(),
                "note": "the harness itself failed for this run; it counts as 0 now and runs again on resume",
            },
        )
        self.counts["ran"] += 1
        self.progress.say(f"{job.key}: the harness failed (exit {code}): {tail[-1] if tail else 'no output'}")


# --- the command ---------------------------------------------------------------------------


def find_entries(dirs: list[Path], queue: Path | None) -> list[Path]:
    found = [Path(d) for d in dirs]
    if queue is not None:
        if not Path(queue).is_dir():
            raise GradeError(f"--queue {queue} is not a directory")
        found += sorted(
            p for p in Path(queue).iterdir() if (p.is_dir() or unpack.is_archive(p)) and not p.name.startswith(".")
        )
    for d in found:
        try:
            unpack.parse_source(d)  # a folder, an archive or a local repository (read when the entry is checked)
        except ContractError as exc:
            raise GradeError(str(exc)) from None
    return found


def parse_gpus(text: str | None) -> list[str | None]:
    if not text:
        return [None]
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    if not gpus or len(set(gpus)) != len(gpus):
        raise GradeError("--gpus takes distinct GPU indices or UUIDs separated by commas, e.g. --gpus 0,1")
    return gpus


def add_parser(commands) -> None:
    p = commands.add_parser("grade", help="grade many entries (paired seeds, resumable) into a leaderboard")
    p.add_argument("entries", nargs="*", type=Path, metavar="ENTRY", help=f"entries: each {unpack.SOURCES_HELP}")
    p.add_argument("--queue", type=Path, help="also grade every subfolder and archive in this folder")
    p.add_argument("--out", type=Path, help="grading directory (resumed when it exists); required")
    p.add_argument("--reference", type=Path, help="a reference entry, run first in every seed round (drift)")
    p.add_argument("--gpus", help="run in parallel, one run per GPU, e.g. 0,1 (implies --device cuda)")
    add_arguments(p, repeats=GRADING_REPEATS)
    add_rank_by(p)
    p.add_argument(
        "--until-resolved",
        action="store_true",
        help="after the --repeats seeds, give one more seed at a time to the entries within noise of the "
        "leader (its tier), until the leader is separable from the rest or they reach --max-seeds",
    )
    p.add_argument(
        "--max-seeds",
        type=int,
        metavar="N",
        help="with --until-resolved: the most seeds one entry gets (default: twice --repeats)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    slurm_command.add_arguments(p)
    p.set_defaults(handler=cmd_grade)


def resolve(options: RunOptions) -> RunOptions:
    """What every child run must agree on, made explicit: the runner (never the host unless asked)
    and an absolute cache."""
    return dataclasses.replace(
        options,
        runner=runner_name(options.runner, isolation_required=True),
        cache_dir=Path(options.cache_dir).resolve(),
    )


def run_publishing(grader: Grader, publish) -> None:
    """Run the grading, the leaderboard published as runs finish; on Ctrl-C what the throttle
    skipped is written before the interruption goes on."""
    try:
        grader.run(on_progress=publish)
    except KeyboardInterrupt:
        publish.flush()
        raise


def cmd_grade(args, progress: Progress) -> int:
    from harness import data as data_mod
    from harness.organizer import leaderboard

    if args.status is not None:
        plan = read_plan(args.status)
        if plan is None:
            raise GradeError(f"{args.status} is not a grading directory (no grading.json)")
        return slurm_command.show_status(Grading(args.status, plan, RunOptions.from_record(plan["options"]), progress))
    if args.out is None:
        raise GradeError("grade needs --out DIR, the grading directory (or --status DIR to see one)")
    slurm = args.backend == "slurm"
    if not slurm:
        slurm_command.refuse_slurm_options(args)
        slurm_command.refuse_if_queued(args.out)
    entry_dirs = find_entries(args.entries, args.queue)
    if not entry_dirs and not read_plan(args.out):
        raise GradeError("nothing to grade: pass submission directories and/or --queue DIR")
    gpus = parse_gpus(args.gpus)
    device = "cuda" if args.gpus and args.device == "auto" else args.device  # --gpus implies cuda
    run_options = resolve(options_from_args(args, device=device))
    site = slurm_command.site_options(args) if slurm else None
    existing = read_plan(args.out)
    known = {e["path"] for e in (existing or {}).get("entries", [])}
    wanted = {unpack.describe(d) for d in [*entry_dirs, *([args.reference] if args.reference else [])]}
    max_seeds = until.check_arguments(args, existing, len(known | wanted))
    plan = make_plan(args.out, run_options, entry_dirs, args.reference, write=not (slurm and args.dry_run))
    if max_seeds is not None:
        until.record(args.out, plan, max_seeds, write=not (slurm and args.dry_run))
    if slurm and args.dry_run:
        return slurm_command.dry_run(args, Grading(args.out, plan, run_options, progress), site)
    # Decode the data once here, so parallel runs find it cached instead of racing to build it.
    progress.say(
        f"data: {run_options.data}" + (f", held-out set from {run_options.eval_data}" if run_options.eval_data else "")
    )
    data_mod.load_pool(run_options.data, run_options.cache_dir)
    if run_options.eval_data:
        data_mod.load_pool(run_options.eval_data, run_options.cache_dir)

    publish = leaderboard.Publisher(args.out, args.rank_by)  # after collected runs, every few seconds at most
    while True:
        outcome = "done"
        if slurm:
            outcome = slurm_command.grade(args, Grading(args.out, plan, run_options, progress), site, publish)
            if outcome in ("detached", "interrupted"):
                publish.flush()
                return EXIT_INTERRUPTED if outcome == "interrupted" else 0
        else:
            run_publishing(Grader(args.out, plan, run_options, gpus, progress), publish)
        # --until-resolved: a round of more seeds while the leader's place is unresolved (harness.organizer.until)
        if max_seeds is None or outcome != "done":
            break
        if not until.next_round(args.out, plan, leaderboard.build(args.out, args.rank_by)):
            progress.say(f"until resolved: {plan[until.KEY]['stopped']}")
            break
        progress.say(until.describe_round(plan))
    board = leaderboard.write_leaderboard(args.out, args.rank_by)
    progress.say(leaderboard.console_table(board))
    progress.say(f"leaderboard: {args.out / 'leaderboard.md'}, .csv, .html")
    return 1 if outcome == "incomplete" else 0
