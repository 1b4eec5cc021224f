"""Command line: `python -m harness run ...` (and `haet run ...`).

Exit codes: 0 scored; 3 graded but not scored (the submission failed or wrote
invalid predictions); 2 bad input (the message says what to fix); 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from harness import __version__, text
from harness.clock import Interrupted
from harness.console import Progress
from harness.contract import ContractError, load_submission, missing_script
from harness.data import DataError
from harness.model import Status
from harness.run import RunOptions, graded_run
from harness.runners.base import RunnerError

EXIT_SCORED, EXIT_NOT_SCORED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 3, 2, 130


class UsageError(ValueError):
    pass


def default_cache_dir() -> Path:
    return Path(os.environ.get("HAET_CACHE", Path.home() / ".cache" / "haet"))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a graded run, shared by every command that grades."""
    parser.add_argument("--data", default="cifar10",
                        help="cifar10 (download), tar:FILE, imagefolder:DIR or npz:FILE (default: cifar10)")
    parser.add_argument("--eval-data", help="a secret held-out set (imagefolder:DIR or npz:FILE) instead of the test split")
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds (default: 600)")
    parser.add_argument("--grace", type=float, default=None,
                        help="SIGTERM this many seconds before the deadline (default: 10, or a quarter of a shorter budget)")
    parser.add_argument("--predict-budget", type=float, default=120.0, help="prediction seconds (default: 120)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                        help="what HAET_DEVICE says (default: cuda when NVML sees a GPU, else cpu)")
    parser.add_argument("--gpu", help="the one GPU to use, by index or UUID (default: 0)")
    parser.add_argument("--runner", choices=["auto", "local", "docker"], default="auto",
                        help="where the submission runs (default: docker when an engine answers; `run` then falls "
                             "back to local, the organizer commands refuse)")
    parser.add_argument("--image", help="runtime image for the docker runner (default: $HAET_IMAGE or haet-runtime:DEVICE)")
    parser.add_argument("--build-network", action="store_true",
                        help="let an entry's own Dockerfile use the network while it builds (default: no network; "
                             "recorded in the result and the leaderboard)")
    parser.add_argument("--build-timeout", type=float, default=None,
                        help="seconds an entry's own Dockerfile may take to build (default: 600)")
    parser.add_argument("--repeats", type=int, default=1, help="independent seeds; reports mean and std (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--eval-per-class", type=int, default=100)
    parser.add_argument("--monitor-interval", type=float, default=0.5, help="seconds between samples (default: 0.5)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories go (default: runs)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="prepared data cache (default: $HAET_CACHE or ~/.cache/haet)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haet", description="Grade efficient-training submissions under a time budget.")
    parser.add_argument("--version", action="version", version=f"haet-harness {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one graded run of one submission")
    run.add_argument("--submission", type=Path, default=Path("submission"), help="submission directory (default: submission)")
    run.add_argument("--run-id", help="name of the run directory (default: time and submission name)")
    add_run_options(run)
    from harness import check, grade, leaderboard, validate  # organizer commands (issue 5)

    for module in (validate, grade, leaderboard, check):
        module.add_parser(commands)
    return parser


def detect_device() -> str:
    from harness.monitor import Gpus

    gpus, _ = Gpus.open(None)
    if gpus:
        gpus.close()
        return "cuda"
    return "cpu"


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def options_from_args(args: argparse.Namespace, submission: Path) -> RunOptions:
    if args.budget <= 0 or args.predict_budget <= 0:
        raise UsageError("--budget and --predict-budget must be positive numbers of seconds")
    if args.grace is None:
        args.grace = min(10.0, args.budget / 4)
    if not 0 <= args.grace < args.budget:
        raise UsageError(f"--grace must be at least 0 and less than --budget ({args.budget:g}s)")
    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.train_per_class < 1 or args.eval_per_class < 1:
        raise UsageError("--train-per-class and --eval-per-class must be at least 1")
    if args.monitor_interval <= 0:
        raise UsageError("--monitor-interval must be positive")
    return RunOptions(
        submission=submission,
        data=args.data,
        eval_data=args.eval_data,
        budget_s=args.budget,
        grace_s=args.grace,
        predict_budget_s=args.predict_budget,
        device=detect_device() if args.device == "auto" else args.device,
        gpu=args.gpu,
        repeats=args.repeats,
        seed=args.seed,
        train_per_class=args.train_per_class,
        eval_per_class=args.eval_per_class,
        monitor_interval_s=args.monitor_interval,
        runs_dir=args.runs_dir,
        cache_dir=args.cache_dir or default_cache_dir(),
        run_id=getattr(args, "run_id", None),
    )


NO_ISOLATION = ("no isolated runner is available: no Docker engine answers. Start one (bash docker/start-engine.sh, "
                "or point DOCKER_HOST at it), or pass --runner local to run the entry on this host without isolation "
                "(it can then read and write what you can)")


def runner_name(requested: str, *, isolation_required: bool) -> str:
    """`auto` -> the most isolated runner that works here.

    Organizer commands (`isolation_required`) never fall back to running an entry on the host:
    that takes an explicit --runner local.
    """
    if requested != "auto":
        return requested
    if docker_answers():
        return "docker"
    if isolation_required:
        raise UsageError(NO_ISOLATION)
    return "local"


def make_runner_from_args(args: argparse.Namespace, device: str, progress: Progress, *,
                          isolation_required: bool = False):
    from harness.runners import make_runner

    name = runner_name(args.runner, isolation_required=isolation_required)
    if name == "local" and args.runner == "auto":
        progress.say("runner: no Docker engine answers; using the local runner (not a sandbox)")
    if name == "docker":
        # haet-runtime:cuda / haet-runtime:cpu, as the Dockerfile and `make image-cpu` tag them
        return make_runner("docker", image=args.image or os.environ.get("HAET_IMAGE") or f"haet-runtime:{device}",
                           build_network=getattr(args, "build_network", False) or None,
                           build_timeout_s=getattr(args, "build_timeout", None))
    return make_runner("local")


def check_commands(submission_dir: Path, runner_name: str) -> None:
    """Fail before any work when a command cannot start (local runner: on this machine)."""
    submission = load_submission(submission_dir)
    for phase, command in (("train", submission.train), ("predict", submission.predict)):
        script = missing_script(submission, command)
        if script:
            raise ContractError(f"the {phase} command names {script}, which is not in {submission.path}")
        if runner_name == "local":
            path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
            if shutil.which(command[0], path=path) is None and not (submission.path / command[0]).is_file():
                raise ContractError(f"the {phase} command {command[0]!r} is not installed on this machine (PATH)")


def cmd_run(args: argparse.Namespace, progress: Progress) -> int:
    options = options_from_args(args, args.submission)
    runner = make_runner_from_args(args, options.device, progress)
    check_commands(options.submission, runner.name)
    result = graded_run(options, runner, progress)
    from harness.report import summary_table

    progress.say(summary_table(result))
    return EXIT_SCORED if result.status is Status.SCORED else EXIT_NOT_SCORED


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = Progress(quiet=getattr(args, "quiet", False))
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        handler = getattr(args, "handler", None) or {"run": cmd_run}[args.command]
        return handler(args, progress)
    except (ContractError, DataError, UsageError, RunnerError) as exc:
        print(f"error: {text.clean(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: the submission's processes were stopped; files already written are kept",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            print(f"error: the disk is full ({exc.filename or exc}); free space or use --runs-dir on another disk",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
