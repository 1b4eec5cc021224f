"""`validate`'s smoke run: a real graded run on a small synthetic set, then what it proves, stage by
stage (train, checkpoint, predict, predictions; a failed stage skips those after it), whether the
entry learns, and how it behaves (stray processes, network, SIGTERM)."""

from __future__ import annotations

from pathlib import Path

from harness.console import Progress
from harness.contract import ContractError
from harness.errors import DataError
from harness.model import Outcome, PhaseResult, RunResult, Status
from harness.options import RunOptions
from harness.organizer.checklist import CONTRACT_DOC, FAIL, PASS, SKIP, WARN, Check, Validation
from harness.runners import runner_for

STAGES = {
    "trains": "trains on the synthetic set (CPU)",
    "checkpoint": "saves a checkpoint",
    "predict": "predict phase loads the checkpoint",
    "predictions": "writes valid predictions",
}


def smoke_checks(
    result: Validation, root: Path, runner: str, budget_s: float, work: Path, image: str | None, progress: Progress
) -> None:
    """The smoke run, then its checks stage by stage; what the entry did besides only once it scored."""
    run = smoke_run(result, root, runner, budget_s, work, image, progress)
    if run is None:
        return
    scored = (
        train_checks(result, run, budget_s)
        and checkpoint_checks(result, run)
        and predict_check(result, run)
        and predictions_check(result, run)
    )
    if scored:
        learns_check(result, run, budget_s)
        behaviour_checks(result, run, runner)


def smoke_run(
    result: Validation, root: Path, runner: str, budget_s: float, work: Path, image: str | None, progress: Progress
) -> RunResult | None:
    """A graded run of the entry on a small synthetic set, on CPU; None (a failed check) when it cannot start."""
    from harness.clock import Interrupted
    from harness.run import graded_run
    from harness.synthetic import write_synthetic_npz

    data = write_synthetic_npz(work / "synthetic.npz", train_per_class=100, test_per_class=30)
    options = RunOptions(
        submission=root,
        data=f"npz:{data}",
        budget_s=budget_s,
        grace_s=min(5.0, budget_s / 4),
        device="cpu",
        repeats=1,
        seed=0,
        train_per_class=100,
        eval_per_class=30,
        runs_dir=work / "runs",
        cache_dir=work / "cache",
        run_id="smoke",
        runner=runner,
        image=image,
    )  # the smoke run is on CPU: the image defaults to the CPU one
    try:
        run = graded_run(options, runner_for(options), progress)
    except (ContractError, DataError) as exc:
        result.add(Check("smoke", "smoke run", FAIL, str(exc), "fix the error above and validate again"))
        return None
    except Interrupted:
        raise KeyboardInterrupt from None
    result.smoke_run_dir = str(work / "runs" / "smoke")
    return run


def skip_after(result: Validation, stage: str, why: str) -> None:
    later = list(STAGES)[list(STAGES).index(stage) + 1 :]
    for stage_id in later:
        result.add(Check(stage_id, STAGES[stage_id], SKIP, why))


def phase_failed(result: Validation, stage: str, phase: PhaseResult, fix: str) -> bool:
    """A failed phase: its outcome, detail and last log lines, the fix, and the stages after it
    skipped. Returns False, for the caller to return."""
    tail = " | ".join(phase.log_tail[-3:])
    what = f"{phase.phase} phase {phase.outcome.value}: {phase.detail}" + (f"; log: {tail}" if tail else "")
    result.add(Check(stage, STAGES[stage], FAIL, what, fix))
    skip_after(result, stage, f"the {phase.phase} phase failed")
    return False


def train_checks(result: Validation, run: RunResult, budget_s: float) -> bool:
    train = run.train
    if train.outcome not in (Outcome.COMPLETED, Outcome.KILLED_AT_DEADLINE, Outcome.NO_CHECKPOINT):
        return phase_failed(
            result,
            "trains",
            train,
            "run the train command by hand with HAET_DATA (train.npz), HAET_CHECKPOINTS, HAET_DEVICE=cpu "
            f"and friends set and fix the error; it must not need the network or a GPU (see {CONTRACT_DOC})",
        )
    how = (
        f"still training at the deadline ({train.detail})"
        if train.outcome is Outcome.KILLED_AT_DEADLINE
        else "finished"
    )
    result.add(Check("trains", STAGES["trains"], PASS, f"train phase {how} in {train.seconds:.1f}s of {budget_s:g}s"))
    result.add(sigterm_check(train))
    return True


def checkpoint_checks(result: Validation, run: RunResult) -> bool:
    train = run.train
    if train.outcome is Outcome.NO_CHECKPOINT:
        result.add(
            Check(
                "checkpoint",
                STAGES["checkpoint"],
                FAIL,
                train.detail,
                "save the model into the directory named by HAET_CHECKPOINTS, early and often (the last "
                "saved model is what gets scored when training is killed at the deadline)",
            )
        )
        skip_after(result, "checkpoint", "no checkpoint")
        return False
    names = ", ".join(c["name"] for c in train.checkpoints[:3])
    result.add(Check("checkpoint", STAGES["checkpoint"], PASS, f"{len(train.checkpoints)} file(s): {names}"))
    if train.rewritten_in_place:
        result.add(
            Check(
                "atomic",
                "saves atomically",
                WARN,
                "rewritten in place: " + ", ".join(train.rewritten_in_place[:3]),
                "write a temporary file, then os.replace() it over the checkpoint: a kill in mid-write "
                "leaves a file in place half written, and predict fails on it",
            )
        )
    return True


def predict_check(result: Validation, run: RunResult) -> bool:
    predict = run.predict
    if predict.outcome is not Outcome.COMPLETED:
        return phase_failed(
            result,
            "predict",
            predict,
            "run the predict command with HAET_DATA (test.npz, images only), HAET_CHECKPOINTS "
            f"(read-only) and HAET_OUTPUT set; it must load what train saved and exit 0 (see {CONTRACT_DOC})",
        )
    result.add(Check("predict", STAGES["predict"], PASS, f"finished in {predict.seconds:.1f}s"))
    return True


def predictions_check(result: Validation, run: RunResult) -> bool:
    if run.status is Status.INVALID_PREDICTIONS:
        result.add(
            Check(
                "predictions",
                STAGES["predictions"],
                FAIL,
                run.reason,
                "write HAET_OUTPUT/predictions.csv with the header `index,label` and exactly one row per "
                f"test image, labels 0..9 (see {CONTRACT_DOC})",
            )
        )
        return False
    if run.status is not Status.SCORED:
        result.add(Check("predictions", STAGES["predictions"], FAIL, run.reason, f"see {CONTRACT_DOC}"))
        return False
    result.add(Check("predictions", STAGES["predictions"], PASS, f"{run.total} rows, all valid"))
    return True


def learns_check(result: Validation, run: RunResult, budget_s: float) -> None:
    chance = 1 / max(1, len(run.data.classes))
    learned = run.accuracy is not None and run.accuracy > 2 * chance
    # An entry still training at the deadline may just need more than the smoke budget to learn.
    short_budget = run.train.outcome is Outcome.KILLED_AT_DEADLINE
    if learned:
        fix = ""
    elif short_budget:
        fix = (
            "the smoke budget may be too short for this entry: validate again with "
            f"--smoke-budget {max(60, 3 * budget_s):g}"
        )
    else:
        fix = (
            "not a contract failure, but a model that learns scores well above chance on this easy set; check "
            "that predictions use the trained checkpoint, and that each row's index is the image's position in "
            "test.npz"
        )
    result.add(
        Check(
            "learns",
            "learns (beats chance on the synthetic set)",
            PASS if learned else WARN,
            f"accuracy {run.accuracy:.1%} vs chance {chance:.0%}"
            + (f"; train was still running at the {budget_s:g}s deadline" if short_budget else ""),
            fix,
        )
    )


def behaviour_checks(result: Validation, run: RunResult, runner: str) -> None:
    """What the entry did besides scoring: processes left behind, the network."""
    if run.train.stray_processes_killed:
        result.add(
            Check(
                "processes",
                "leaves no processes behind",
                WARN,
                run.train.detail,
                "wait for worker processes (e.g. DataLoader workers) before exiting",
            )
        )
    if runner == "local":
        result.add(
            Check(
                "network",
                "runs without network",
                SKIP,
                "the local runner does not cut the network",
                "validate with --runner docker to prove it",
            )
        )
    else:
        result.add(Check("network", "runs without network", PASS, "the smoke run had no network and succeeded"))


def sigterm_check(train) -> Check:
    """A common mistake: an entry that does not stop on SIGTERM loses what it did after its last save."""
    title = "stops on SIGTERM (saves and exits within HAET_GRACE_S)"
    sent = [s.name for s in train.signals]
    if "SIGKILL" in sent:
        return Check(
            "sigterm",
            title,
            WARN,
            f"still running {train.grace_s or 0:g}s after SIGTERM: killed at the deadline",
            "on SIGTERM, save the model and exit (signal.signal(signal.SIGTERM, ...)); work after the "
            "last save is lost when SIGKILL comes",
        )
    if "SIGTERM" in sent:
        return Check("sigterm", title, PASS, "exited after SIGTERM, before the deadline")
    return Check(
        "sigterm",
        title,
        SKIP,
        "train finished before SIGTERM was due",
        "lower --smoke-budget to see how the entry stops at SIGTERM",
    )
