"""`python -m harness validate DIR`: is this entry gradable? A checklist with fixes.

Static checks first (manifest, commands, size, symlinks, model weights), then a
smoke run: a real graded run (the same `graded_run` as `run`) on a synthetic,
learnable dataset with a short budget on CPU, proving the entry trains, saves a
checkpoint that its predict phase loads, and writes valid predictions.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.console import Progress
from harness.contract import MANIFEST, MAX_ENTRY_DEPTH, MAX_ENTRY_FILES, ContractError, load_submission, missing_script
from harness.errors import DataError, UsageError
from harness.formatting import fmt_bytes
from harness.model import Outcome, RunResult, Status
from harness.options import RUNNERS, RunOptions
from harness.runners import runner_for, runner_name
from harness.text import clean
from harness.unpack import SOURCES_HELP, open_source
from harness.walk import WalkLimit, walk

WEIGHT_SUFFIXES = (
    ".pt",
    ".pth",
    ".ckpt",
    ".safetensors",
    ".bin",
    ".onnx",
    ".h5",
    ".hdf5",
    ".npy",
    ".npz",
    ".pkl",
    ".pickle",
    ".joblib",
    ".tflite",
    ".pb",
    ".msgpack",
    ".gguf",
    ".params",
)
DEFAULT_MAX_SIZE_MB = 20.0
DEFAULT_WEIGHTS_LIMIT_MB = 1.0
CONTRACT_DOC = "docs/submission-contract.md"

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass
class Check:
    id: str
    title: str
    status: str
    detail: str = ""
    fix: str = ""


@dataclass
class Validation:
    submission: str
    name: str | None
    ok: bool = True
    checks: list[Check] = field(default_factory=list)
    smoke_run_dir: str | None = None

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        if check.status == FAIL:
            self.ok = False
        return check

    def to_dict(self) -> dict:
        return asdict(self)


def _files(root: Path):
    """(relative path, lstat) of every entry below root, with the shared walker: no link is
    followed and the walk is bounded (WalkLimit past it, like the graded run's refusal)."""
    for found in walk(Path(os.path.realpath(root)), MAX_ENTRY_FILES, MAX_ENTRY_DEPTH):
        yield Path(found.rel), found.st


def static_checks(result: Validation, root: Path, runner: str, max_size_mb: float, weights_limit_mb: float):
    submission = None
    try:
        submission = load_submission(root)
        result.name = submission.name
        result.add(
            Check(
                "manifest",
                f"{MANIFEST} follows the contract",
                PASS,
                f"name {submission.name}; train: {submission.train_text}; predict: {submission.predict_text}",
            )
        )
    except ContractError as exc:
        result.add(
            Check(
                "manifest",
                f"{MANIFEST} follows the contract",
                FAIL,
                str(exc),
                f"write {MANIFEST} with `name: [a-z0-9-]+`, `train: <command>`, `predict: <command>` "
                f"(see {CONTRACT_DOC})",
            )
        )

    if submission is not None:
        problems = []
        for phase, command in (("train", submission.train), ("predict", submission.predict)):
            script = missing_script(submission, command)
            if script:
                problems.append(f"the {phase} command names {script}, which is not in the submission")
            elif runner in ("local", "sandbox"):  # both run the command with this host's programs
                path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
                if shutil.which(command[0], path=path) is None and not (submission.path / command[0]).is_file():
                    problems.append(f"the {phase} command {command[0]!r} is not installed on this machine")
        if problems:
            result.add(
                Check(
                    "commands",
                    "train and predict commands exist",
                    FAIL,
                    "; ".join(problems),
                    "add the missing script to the submission directory, or correct the command in "
                    f"{MANIFEST} (commands run with the submission directory as working directory)",
                )
            )
        else:
            result.add(
                Check(
                    "commands",
                    "train and predict commands exist",
                    PASS,
                    "scripts found" + (" and executables on PATH" if runner in ("local", "sandbox") else ""),
                )
            )
    else:
        result.add(Check("commands", "train and predict commands exist", SKIP, f"needs a valid {MANIFEST}"))

    # Symlinks: inside the directory is fine; anything pointing out (or nowhere) is not.
    escaping, total, big_weights = [], 0, []
    resolved_root = root.resolve()
    try:
        for rel, st in _files(root):
            path = resolved_root / rel
            if stat.S_ISLNK(st.st_mode):
                target = Path(os.path.realpath(path))
                if not target.exists() or (target != resolved_root and resolved_root not in target.parents):
                    escaping.append(f"{clean(rel, 120)} -> {clean(os.readlink(path), 120)}")
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                if path.name.lower().endswith(WEIGHT_SUFFIXES) and st.st_size > weights_limit_mb * 2**20:
                    big_weights.append(f"{clean(rel, 120)} ({fmt_bytes(st.st_size)})")
    except (WalkLimit, OSError) as exc:  # the same bounds as a graded run's: it would refuse the entry
        result.add(
            Check(
                "files",
                "the folder is within an entry's bounds",
                FAIL,
                clean(exc, 300),
                f"keep at most {MAX_ENTRY_FILES} files and folders, {MAX_ENTRY_DEPTH} levels deep, all "
                "readable: remove data, caches and virtual environments",
            )
        )
    if escaping:
        result.add(
            Check(
                "symlinks",
                "no symbolic links leave the directory",
                FAIL,
                "links pointing outside the submission or nowhere: " + ", ".join(escaping),
                "replace each link with the file itself (copy it in) or remove it; graders see only the "
                "submission directory",
            )
        )
    else:
        result.add(Check("symlinks", "no symbolic links leave the directory", PASS))
    limit = max_size_mb * 2**20
    result.add(
        Check(
            "size",
            f"total size within {max_size_mb:g} MiB",
            PASS if total <= limit else FAIL,
            f"{fmt_bytes(total)} in files",
            ""
            if total <= limit
            else "remove datasets, caches, logs and checkpoints from the directory "
            "(the harness supplies the data; training starts from scratch)",
        )
    )
    if big_weights:
        result.add(
            Check(
                "weights",
                "no model weights (pretrained models are forbidden)",
                FAIL,
                f"files that look like model weights over {weights_limit_mb:g} MiB: " + ", ".join(big_weights),
                "delete them: the rules forbid pretrained models; the entry must train from scratch "
                "within the budget and save its checkpoints to HAET_CHECKPOINTS",
            )
        )
    else:
        result.add(
            Check(
                "weights",
                "no model weights (pretrained models are forbidden)",
                PASS,
                f"no {'/'.join(s for s in WEIGHT_SUFFIXES[:8])}... file over {weights_limit_mb:g} MiB",
            )
        )
    return submission


# The smoke run's stages in the order it goes: a stage that fails skips those after it.
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


def train_checks(result: Validation, run: RunResult, budget_s: float) -> bool:
    train = run.train
    if train.outcome not in (Outcome.COMPLETED, Outcome.KILLED_AT_DEADLINE, Outcome.NO_CHECKPOINT):
        tail = " | ".join(train.log_tail[-3:])
        result.add(
            Check(
                "trains",
                STAGES["trains"],
                FAIL,
                f"train phase {train.outcome.value}: {train.detail}" + (f"; log: {tail}" if tail else ""),
                "run the train command by hand with HAET_DATA (train.npz), HAET_CHECKPOINTS, HAET_DEVICE=cpu "
                f"and friends set and fix the error; it must not need the network or a GPU "
                f"(see {CONTRACT_DOC})",
            )
        )
        skip_after(result, "trains", "the train phase failed")
        return False
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
        tail = " | ".join(predict.log_tail[-3:])
        result.add(
            Check(
                "predict",
                STAGES["predict"],
                FAIL,
                f"predict phase {predict.outcome.value}: {predict.detail}" + (f"; log: {tail}" if tail else ""),
                "run the predict command with HAET_DATA (test.npz, images only), HAET_CHECKPOINTS "
                f"(read-only) and HAET_OUTPUT set; it must load what train saved and exit 0 "
                f"(see {CONTRACT_DOC})",
            )
        )
        skip_after(result, "predict", "the predict phase failed")
        return False
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


def validate(
    root: Path,
    *,
    runner: str = "auto",
    smoke: bool = True,
    smoke_budget_s: float = 20.0,
    max_size_mb: float = DEFAULT_MAX_SIZE_MB,
    weights_limit_mb: float = DEFAULT_WEIGHTS_LIMIT_MB,
    keep: Path | None = None,
    image: str | None = None,
    progress: Progress | None = None,
) -> Validation:
    progress = progress or Progress(quiet=True)
    if smoke:  # the smoke run runs the entry: never on the host unless asked (--runner local)
        runner = runner_name(runner, isolation_required=True)
    result = Validation(submission=str(root), name=None)
    try:  # an archive or a repository is unpacked (bounded) into a private folder, removed after
        source = open_source(root)
    except ContractError as exc:
        result.add(
            Check(
                "source",
                "the entry can be read: a folder, an archive or a repository",
                FAIL,
                str(exc),
                "pass the folder that holds submission.yaml, or its archive or repository, holding only "
                "files and folders",
            )
        )
        return result
    with source:
        return _validate_folder(
            result, source.path, runner, smoke, smoke_budget_s, max_size_mb, weights_limit_mb, keep, image, progress
        )


def _validate_folder(
    result: Validation,
    root: Path,
    runner: str,
    smoke: bool,
    smoke_budget_s: float,
    max_size_mb: float,
    weights_limit_mb: float,
    keep: Path | None,
    image: str | None,
    progress: Progress,
) -> Validation:
    submission = static_checks(result, root, runner, max_size_mb, weights_limit_mb)
    if not smoke:
        result.add(Check("smoke", "smoke run", SKIP, "--no-smoke"))
        return result
    if submission is None or not result.ok:
        result.add(Check("smoke", "smoke run", SKIP, "fix the failures above first"))
        return result
    work = Path(tempfile.mkdtemp(prefix="haet-validate-")) if keep is None else Path(keep)
    work.mkdir(parents=True, exist_ok=True)
    try:
        smoke_checks(result, root, runner, smoke_budget_s, work, image, progress)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
            result.smoke_run_dir = None
    return result


MARKS = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", SKIP: "SKIP"}


def checklist_text(result: Validation) -> str:
    lines = [f"validate {result.submission}" + (f" ({result.name})" if result.name else "")]
    for c in result.checks:
        lines.append(f"  [{MARKS[c.status]}] {c.title}" + (f": {c.detail}" if c.detail else ""))
        if c.fix and c.status in (FAIL, WARN, SKIP):
            lines.append(f"         fix: {c.fix}")
    failed = [c for c in result.checks if c.status == FAIL]
    lines.append(
        "result: "
        + ("ready to grade" if result.ok else f"{len(failed)} check(s) failed: " + ", ".join(c.id for c in failed))
    )
    return "\n".join(lines)


def to_json(result: Validation) -> str:
    return json.dumps(result.to_dict(), indent=2)


EXIT_OK, EXIT_FAILED = 0, 1


def add_parser(commands) -> None:
    p = commands.add_parser("validate", help="check an entry before grading: static checks and a smoke run")
    p.add_argument("submission", metavar="ENTRY", help=f"the entry: {SOURCES_HELP}")
    p.add_argument("--json", action="store_true", help="print the checklist as JSON on stdout")
    p.add_argument(
        "--runner",
        choices=RUNNERS,
        default="auto",
        help="where the smoke run happens: docker or sandbox (both also prove the entry needs no network), "
        "or local (on this host, not isolated: only when asked); auto is docker, else sandbox, or a "
        "refusal when neither works here (default: auto)",
    )
    p.add_argument("--image", help="runtime image for the docker runner")
    p.add_argument("--smoke-budget", type=float, default=20.0, help="training seconds of the smoke run (default: 20)")
    p.add_argument("--no-smoke", action="store_true", help="static checks only")
    p.add_argument(
        "--max-size-mb",
        type=float,
        default=DEFAULT_MAX_SIZE_MB,
        help=f"limit on the directory's total size (default: {DEFAULT_MAX_SIZE_MB:g})",
    )
    p.add_argument(
        "--weights-limit-mb",
        type=float,
        default=DEFAULT_WEIGHTS_LIMIT_MB,
        help=f"weight-like files (.pt, .pth, .ckpt, .npz, ...) above this size fail "
        f"(default: {DEFAULT_WEIGHTS_LIMIT_MB:g})",
    )
    p.add_argument("--keep", type=Path, help="keep the smoke run's files in this directory")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=cmd_validate)


def cmd_validate(args, progress: Progress) -> int:
    if args.smoke_budget <= 0:
        raise UsageError("--smoke-budget must be a positive number of seconds")
    result = validate(
        args.submission,
        runner=args.runner,
        smoke=not args.no_smoke,
        smoke_budget_s=args.smoke_budget,
        max_size_mb=args.max_size_mb,
        weights_limit_mb=args.weights_limit_mb,
        keep=args.keep,
        image=args.image,
        progress=progress,
    )
    print(to_json(result) if args.json else checklist_text(result))
    return EXIT_OK if result.ok else EXIT_FAILED
