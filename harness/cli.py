"""Command line: `python -m harness run ...` (and `haet run ...`), and the organizer's commands.

Builds the parser and dispatches; nothing imports this module. Exit codes (harness.errors):
0 scored; 3 graded but not scored (the submission failed or wrote invalid predictions);
2 bad input (the message says what to fix); 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from harness import __version__, options, reproduce, runtime, text
from harness.clock import Interrupted
from harness.console import Progress
from harness.contract import check_commands, load_submission
from harness.errors import BAD_INPUT, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NOT_SCORED, EXIT_SCORED
from harness.model import Status
from harness.organizer import check, grade, leaderboard, validate
from harness.report import summary_table
from harness.run import graded_run
from harness.runners import runner_for, sandbox_refusal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haet", description="Grade efficient-training submissions under a time budget.")
    parser.add_argument("--version", action="version", version=f"haet-harness {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one graded run of one submission")
    run.add_argument("--submission", type=Path, default=Path("submission"), help="submission directory (default: submission)")
    run.add_argument("--run-id", help="name of the run directory (default: time and submission name)")
    run.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories go (default: runs)")
    options.add_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--reproduce", type=Path, metavar="RUN_DIR",
                     help="rerun that run (its entry, options, seeds and data) into a new run directory; "
                          "the other run options are taken from it")
    run.set_defaults(handler=cmd_run)
    for module in (validate, grade, leaderboard, check, runtime):
        module.add_parser(commands)
    return parser


def cmd_run(args: argparse.Namespace, progress: Progress) -> int:
    original = None
    if args.reproduce:
        run_options, original = reproduce.load(args.reproduce, args.runs_dir, args.run_id)
    else:
        run_options = options.from_args(args)
    runner = runner_for(run_options)  # the participant's own command: may fall back to the local runner
    if runner.name == "local" and run_options.runner == "auto":
        progress.say(f"runner: no Docker engine answers and {sandbox_refusal()}; using the local runner (not a sandbox)")
    elif runner.name == "sandbox" and run_options.runner == "auto":
        progress.say("runner: no Docker engine answers; using the sandbox runner (bubblewrap)")
    check_commands(load_submission(run_options.submission), runner.name)
    result = graded_run(run_options, runner, progress, original=original)
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
        return args.handler(args, progress)
    except BAD_INPUT as exc:
        print(f"error: {text.clean(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: the submission's processes were stopped; files already written are kept",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            print(f"error: the disk is full ({text.clean(exc.filename or exc)}); free space or use --runs-dir on "
                  "another disk", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
