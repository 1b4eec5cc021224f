"""A graded run, top to bottom: data -> train -> predict -> score -> report.

`graded_run` owns the run directory; each phase is started by a runner and
timed by the clock; the scorer is the only code that ever sees held-out labels.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from harness import curve, data, predict_rule, report, scoring
from harness.checkpoints import list_checkpoints
from harness.clock import Interrupted
from harness.console import Progress
from harness.contract import PREDICTIONS_FILE, ContractError, Submission, list_entry, load_submission, submission_digest
from harness.files import atomic_copy, atomic_write_json
from harness.fingerprint import environment
from harness.formatting import utc_now
from harness.hostfiles import private_dir
from harness.model import (
    Curve,
    MonitorSummary,
    Outcome,
    PhaseResult,
    Reproduction,
    RunResult,
    SeriesResult,
    Status,
    SubmissionInfo,
    to_dict,
)
from harness.monitor import Gpus
from harness.options import RunOptions, default_grace
from harness.phase import Devices, PhaseInterrupted, PhaseRunner, not_started
from harness.reproduce import Reproducing, compare
from harness.runners import PhaseSpec, Runner
from harness.staging import stage_entry
from harness.unpack import Unpacked, open_source

CURVE_LOG_BYTES = 2**20  # each curve point's predict log (12 of them): enough to say why one failed
PUBLIC_HELDOUT = (
    "the held-out images are a public split (CIFAR-10's test set): an entry can carry their labels; "
    "for a real competition pass --eval-data with a secret set"
)
STAGED = Path(".work") / "entry"  # under the run directory: the entry's copy that the phases run (harness.staging)
NOT_ISOLATED = "not isolated: the local runner runs the entry on this host, with your rights (not a sandbox)"


def new_run_dir(runs_dir: Path, name: str, run_id: str | None = None) -> Path:
    """A fresh directory; an existing run is never reused or overwritten."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = run_id or f"{dt.datetime.now():%Y%m%d-%H%M%S}-{name}"
    for attempt in range(1000):
        candidate = runs_dir / (base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory under {runs_dir}")


MODEL_LEFT = (Outcome.COMPLETED, Outcome.KILLED_AT_DEADLINE)  # train outcomes that leave a model to score


class OneRun:
    """One graded run (one seed): its private work folder, its phases, and the result its steps fill in."""

    def __init__(
        self,
        run_dir: Path,
        submission: Submission,
        info: SubmissionInfo,
        sets: data.GradedSets,
        runner: Runner,
        options: RunOptions,
        progress: Progress,
        devices: Devices,
        seed: int,
        run_id: str,
        original: tuple[Reproduction, RunResult] | None = None,
    ):
        started_at, self.t0 = utc_now(), time.monotonic()
        self.run_dir, self.submission, self.sets, self.runner = run_dir, submission, sets, runner
        self.options, self.progress, self.devices, self.seed, self.original = options, progress, devices, seed, original
        # Private to the harness: what an entry writes inside is never reachable by another user of the host.
        self.work = private_dir(run_dir / ".work")
        self.dirs = {name: self.work / name for name in ("train-data", "test-data", "checkpoints", "output", "events")}
        for d in self.dirs.values():
            d.mkdir(exist_ok=True)
            d.chmod(0o755)  # whatever the umask: the entry's uid reads its data through the mounts
        data.write_phase_data(sets, self.dirs["train-data"], self.dirs["test-data"])
        snapshot_store = self.work / "snapshots" if options.curve else None
        self.phases = PhaseRunner(runner, options, progress, devices, snapshot_store)
        self.result = RunResult(  # a failed run with nothing started: the steps fill it in
            run_id=run_id,
            status=Status.FAILED,
            reason="",
            submission=info,
            data=sets.info,
            train=not_started("train", options.budget_s),
            predict=not_started("predict", options.predict_budget_s),
            monitor=MonitorSummary(interval_s=options.monitor_interval_s, samples=0),
            environment=environment(runner, options.device, devices.gpus, run_dir),
            started_at=started_at,
            finished_at=started_at,
            wall_seconds=0.0,
            seed=seed,
            options=dataclasses.replace(options, seed=seed, repeats=1).record(),
        )
        if original is not None:
            self.result.reproduces = original[0]
        self.result.warnings += run_warnings(sets, runner, options)

    def run(self) -> RunResult:
        """Build, train, predict, score, curve, in that order (predict and the curve only with a model);
        result.json and the report are written however it ends."""
        result = self.result
        try:
            if self.build():
                self.train()
                self.predict()
                self.score()
                self.curve_points()
        except PhaseInterrupted as stop:
            setattr(result, stop.phase.phase, stop.phase)
            result.monitor = stop.monitor or result.monitor
            result.status, result.reason = Status.INTERRUPTED, f"interrupted during the {stop.phase.phase} phase"
            self.finish()
            raise Interrupted() from None
        self.finish()
        return result

    def spec(self, phase: str, budget: float, data_dir: Path, output: Path | None) -> PhaseSpec:
        options = self.options
        return PhaseSpec(
            phase=phase,
            command=self.submission.train if phase == "train" else self.submission.predict,
            submission_dir=self.submission.path,
            data_dir=data_dir,
            checkpoints_dir=self.dirs["checkpoints"],
            events_file=self.dirs["events"] / "events.jsonl",
            output_dir=output,
            log_path=self.run_dir / f"{phase}.log",
            budget_s=budget,
            # predict's grace: --grace, but at most the default's share of its shorter budget (a
            # quarter of 20 s), so an entry that infers in 12 s is not signalled at 10 s
            grace_s=options.grace_s if phase == "train" else min(options.grace_s, default_grace(budget)),
            seed=self.seed,
            device=options.device,
            gpu=options.gpu_selector,
            predict_budget_s=options.predict_budget_s if phase == "train" else None,
        )

    def build(self) -> bool:
        """The entry's image (Docker runners); False when it did not build."""
        result = self.result
        result.build = self.runner.prepare(self.submission.path, self.run_dir)
        if result.build and result.build.outcome not in ("built", "reused"):
            result.reason = f"the entry's Dockerfile did not build ({result.build.outcome}): {result.build.detail}"
            return False
        return True

    def train(self) -> None:
        """The clock runs from the command's start; killing it at the deadline is normal."""
        result, options = self.result, self.options
        self.progress.say(
            f"[{result.run_id}] train: {self.submission.train_text} (budget {options.budget_s:g}s, seed {self.seed})"
        )
        spec = self.spec("train", options.budget_s, self.dirs["train-data"], None)
        result.train, result.monitor = self.phases.run(spec, self.run_dir, monitored=True)
        result.environment = environment(self.runner, options.device, self.devices.gpus, self.run_dir)  # as it ran
        if result.reproduces:
            result.reproduces.differences = compare(self.original[1], result)
        result.train.checkpoints, result.train.checkpoint_files = list_checkpoints(self.dirs["checkpoints"])
        if result.train.late_checkpoints:
            result.warnings.append(
                f"{len(result.train.late_checkpoints)} checkpoint file(s) were written after the deadline and "
                "were not scored: " + ", ".join(result.train.late_checkpoints[:5])
            )
        if result.train.outcome in MODEL_LEFT and not result.train.checkpoints:
            result.train.outcome = Outcome.NO_CHECKPOINT
            result.train.detail = self.phases.unreadable or (
                "nothing was saved in HAET_CHECKPOINTS, so there is no model to score"
                + (" before the deadline" if result.train.late_checkpoints else "")
            )
        result.warnings += result.monitor.warnings
        if result.train.stray_processes_killed:
            result.warnings.append(result.train.detail)

    def predict(self) -> None:
        """Only with a model, on images without labels."""
        result, budget = self.result, self.options.predict_budget_s
        if result.train.outcome in MODEL_LEFT:
            self.progress.say(f"[{result.run_id}] predict: {self.submission.predict_text} (budget {budget:g}s)")
            spec = self.spec("predict", budget, self.dirs["test-data"], self.dirs["output"])
            result.predict, _ = self.phases.run(spec, self.run_dir, monitored=False)

    def score(self) -> None:
        """The only place held-out labels are used (judge). Then the predict rule (harness/predict_rule.py)."""
        judge(self.result, self.dirs["output"] / PREDICTIONS_FILE, self.run_dir, self.sets)
        predict_rule.apply(self.result, self.options)

    def curve_points(self) -> None:
        """Each snapshot predicted like the official predict, off the clock, on the curve set."""
        result, snapshots = self.result, self.phases.snapshots
        if not snapshots or self.sets.curve is None or result.train.outcome not in MODEL_LEFT:
            return
        gpu = [g.energy_j for g in result.monitor.gpus or []]
        snapshots.final(
            self.dirs["checkpoints"],
            result.train.last_checkpoint_write_s or result.train.seconds,
            (sum(gpu) if gpu and None not in gpu else None, result.monitor.cpu_energy_j),
        )
        result.curve = Curve(per_class=self.options.curve_per_class, target=self.options.target)
        self.progress.say(f"[{result.run_id}] curve: {len(snapshots.kept)} snapshot(s), off the clock")
        try:
            curve.evaluate(
                result.curve, snapshots, self.sets.curve, len(self.sets.classes), self.work, self._curve_point
            )
        except PhaseInterrupted:
            result.curve.notes.append("interrupted: the points before it are kept; the official score stands")
            self.finish()
            raise Interrupted() from None

    def _curve_point(self, checkpoints: Path, data_dir: Path, output: Path, name: str) -> PhaseResult:
        point = dataclasses.replace(
            self.spec("predict", self.options.predict_budget_s, data_dir, output),
            checkpoints_dir=checkpoints,
            log_limit_bytes=CURVE_LOG_BYTES,
            log_path=self.run_dir / "curve-logs" / f"{name}.log",
        )
        return self.phases.run(point, self.run_dir, monitored=False)[0]

    def finish(self) -> None:
        """result.json and the report, with the work folder gone (however the run ended)."""
        result, run_dir = self.result, self.run_dir
        result.finished_at = utc_now()
        result.wall_seconds = round(time.monotonic() - self.t0, 3)
        shutil.rmtree(run_dir / ".work", ignore_errors=True)
        if result.curve:
            curve.write_csv(run_dir / curve.CURVE_FILE, result.curve)
        atomic_write_json(run_dir / "result.json", to_dict(result))
        report.write_report(run_dir, result)


def run_warnings(sets: data.GradedSets, runner: Runner, options: RunOptions) -> list[str]:
    """What every run of these options says up front (on the terminal, and in result.json)."""
    return (
        ([PUBLIC_HELDOUT] if sets.info.heldout_public else [])
        + ([] if runner.isolated else [NOT_ISOLATED])
        + [w for w in [predict_rule.granted_warning(options)] if w]
    )


def judge(result: RunResult, predictions: Path, run_dir: Path, sets: data.GradedSets) -> None:
    if result.train.outcome not in MODEL_LEFT:
        result.reason = f"train {result.train.outcome.value}: {result.train.detail}"
        return
    if result.predict.outcome is not Outcome.COMPLETED:
        result.reason = f"predict {result.predict.outcome.value}: {result.predict.detail}"
        return
    if not predictions.is_file():
        result.predict.outcome = Outcome.NO_PREDICTIONS
    else:
        atomic_copy(predictions, run_dir / PREDICTIONS_FILE, limit=scoring.byte_limit(len(sets.eval.labels)) + 1)
    try:
        predicted = scoring.read_predictions(predictions, len(sets.eval.labels), len(sets.classes))
    except scoring.InvalidPredictions as exc:
        result.status, result.reason = Status.INVALID_PREDICTIONS, str(exc)
        return
    result.score = scoring.score(predicted, sets.eval.labels, sets.classes)
    result.accuracy, result.correct, result.total = result.score.accuracy, result.score.correct, result.score.total
    result.status, result.reason = Status.SCORED, ""


# --- the whole command ---------------------------------------------------------


def graded_run(
    options: RunOptions,
    runner: Runner,
    progress: Progress,
    open_gpus: Callable[[str], tuple[Gpus | None, str]] = Gpus.open,
    original: Reproducing | None = None,
) -> RunResult | SeriesResult:
    """The whole command. `open_gpus` reads the GPUs (NVML); tests without a GPU pass a stand-in;
    `original`: the run(s) this one reproduces (harness.reproduce). An entry handed over as an archive
    or a repository is unpacked beside the runs first (harness.unpack), and staged from there."""
    with open_source(options.submission, Path(options.runs_dir)) as source:
        return _graded_run(options, source, runner, progress, open_gpus, original)


def _graded_run(
    options: RunOptions,
    source: Unpacked,
    runner: Runner,
    progress: Progress,
    open_gpus: Callable[[str], tuple[Gpus | None, str]],
    original: Reproducing | None,
) -> RunResult | SeriesResult:
    submission = load_submission(source.path)
    list_entry(submission.path)  # before any run directory: it may refuse the entry (nothing is read yet)
    progress.say(f"data: {options.data}" + (f", held-out set from {options.eval_data}" if options.eval_data else ""))
    pool = data.load_pool(options.data, options.cache_dir)
    eval_pool = data.load_pool(options.eval_data, options.cache_dir) if options.eval_data else None
    if original is not None:
        original.check_data(pool, eval_pool)  # a record's data sources must give its images, before any run
    seeds = [options.seed + i for i in range(options.repeats)]
    sets = [  # drawn before anything is written, so a data problem leaves no empty run behind
        data.draw(
            pool,
            eval_pool,
            seed=seed,
            train_per_class=options.train_per_class,
            eval_per_class=options.eval_per_class,
            source=options.data,
            eval_source=options.eval_data or options.data,
            curve_per_class=options.curve_per_class if options.curve else 0,
        )
        for seed in seeds
    ]
    run_dir = new_run_dir(Path(options.runs_dir).resolve(), submission.name, options.run_id)
    try:  # the phases run the staged copy, and its digest is the run's (harness.staging)
        private_dir(run_dir / STAGED.parent)  # no other user may reach into it, even while it is staged
        staged = dataclasses.replace(submission, path=stage_entry(submission.path, run_dir / STAGED / submission.name))
        info = SubmissionInfo(
            submission.name,
            source.location,
            submission.train_text,
            submission.predict_text,
            submission_digest(staged.path),
            source.origin,
        )
    except (ContractError, OSError):  # the entry changed since it was listed: refused, and no run is left behind
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    source.close()  # an unpacked archive: the phases run the staged copy
    progress.say(f"run directory: {run_dir}")
    for warning in run_warnings(sets[0], runner, options):
        progress.say(f"warning: {warning}")

    devices = Devices.open(options, open_gpus)
    try:
        if options.repeats == 1:
            return OneRun(
                run_dir,
                staged,
                info,
                sets[0],
                runner,
                options,
                progress,
                devices,
                seeds[0],
                run_dir.name,
                original.reproduction(0) if original else None,
            ).run()
        started_at, t0, results = utc_now(), time.monotonic(), []
        try:
            for i, seed in enumerate(seeds):
                repeat_dir = run_dir / f"repeat-{i + 1:02d}"
                repeat_dir.mkdir()
                results.append(
                    OneRun(
                        repeat_dir,
                        staged,
                        info,
                        sets[i],
                        runner,
                        options,
                        progress,
                        devices,
                        seed,
                        f"{run_dir.name}/{repeat_dir.name}",
                        original.reproduction(i) if original else None,
                    ).run()
                )
        except Interrupted:
            write_series(run_dir, info, results, started_at, t0, interrupted=True)
            raise
        return write_series(run_dir, info, results, started_at, t0, interrupted=False)
    finally:
        devices.close()
        shutil.rmtree(run_dir / ".work", ignore_errors=True)  # the staged entry; a single run's finish() removed it


def write_series(
    run_dir: Path, info: SubmissionInfo, results: list[RunResult], started_at: str, t0: float, interrupted: bool
) -> SeriesResult:
    accuracies = [r.accuracy if r.status is Status.SCORED and r.accuracy is not None else 0.0 for r in results]
    failed = [r for r in results if r.status is not Status.SCORED]
    if interrupted:
        status, reason = Status.INTERRUPTED, f"interrupted after {len(results)} repeat(s)"
    elif failed:
        status, reason = Status.FAILED, f"{len(failed)} of {len(results)} repeats did not score (counted as 0)"
    else:
        status, reason = Status.SCORED, ""
    mean = statistics.fmean(accuracies) if accuracies else 0.0
    series = SeriesResult(
        run_id=run_dir.name,
        status=status,
        reason=reason,
        submission=info,
        accuracy_mean=mean,
        accuracy_std=statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        accuracies=accuracies,
        repeats=results,
        started_at=started_at,
        finished_at=utc_now(),
        wall_seconds=round(time.monotonic() - t0, 3),
        accuracy=mean,
    )
    atomic_write_json(run_dir / "result.json", to_dict(series))
    report.write_series_report(run_dir, series)
    return series
