"""`python -m harness validate DIR`: is this entry gradable? A checklist with fixes.

Static checks first (manifest, commands, size, symlinks, model weights), then a
smoke run: a real graded run (the same `graded_run` as `run`) on a synthetic,
learnable dataset with a short budget on CPU, proving the entry trains, saves a
checkpoint that its predict phase loads, and writes valid predictions.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from harness.console import Progress
from harness.contract import MANIFEST, MAX_ENTRY_DEPTH, MAX_ENTRY_FILES, ContractError, load_submission, missing_script
from harness.errors import UsageError
from harness.formatting import fmt_bytes
from harness.options import RUNNERS
from harness.organizer.checklist import CONTRACT_DOC, FAIL, PASS, SKIP, Check, Validation, checklist_text, to_json
from harness.organizer.smoke import smoke_checks
from harness.runners import runner_name
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
