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
from collections.abc import Sequence
from pathlib import Path

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
from harness.unpack import open_source


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haet", description="Grade efficient-training submissions under a time budget."
    )
    parser.add_argument("--version", action="version", version=f"haet-harness {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one graded run of one submission")
    add_run_options(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--reproduce",
        type=Path,
        metavar="RUN_DIR",
        help="rerun that run (its entry, options, seeds and data) into a new run directory; the run "
        "options given here win over its record, and it never gets less isolation than this "
        "command's defaults unless the flag is given (docs/security.md)",
    )
    run.set_defaults(handler=cmd_run)
    for module in (validate, grade, leaderboard, check, runtime):
        module.add_parser(commands)
    return parser


def add_run_options(parser: argparse.ArgumentParser, unset: bool = False) -> None:
    """`run`'s options; `unset` leaves every default None, to tell which were given."""
    parser.add_argument(
        "--submission",
        type=Path,
        default=None if unset else Path("submission"),
        help="the entry: a folder, a .zip, a .tar.gz or a git repository (PATH@REF) (default: submission)",
    )
    parser.add_argument("--run-id", help="name of the run directory (default: time and submission name)")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None if unset else Path("runs"),
        help="where run directories go (default: runs)",
    )
    options.add_arguments(parser, unset=unset)


def given_run_options(argv: Sequence[str]) -> dict:
    """The run options `run ARGV` names, by field, parsed again with every default unset. `run` parsed
    ARGV already, so each abbreviation it accepted names the same flag here (these flags are a subset
    of its own); its other flags and their values are left over."""
    probe = argparse.ArgumentParser(add_help=False)
    add_run_options(probe, unset=True)
    named, _ = probe.parse_known_args(list(argv)[1:])
    return {field: value for field, value in vars(named).items() if value is not None}


def cmd_run(args: argparse.Namespace, progress: Progress) -> int:
    reproducing = None
    if args.reproduce:  # an organizer's command on a folder someone handed over: isolation required
        reproducing = reproduce.load(args.reproduce, given_run_options(getattr(args, "argv", [])))
        run_options = reproducing.options
        progress.say(reproducing.describe())
    else:
        run_options = options.from_args(args)
    # The participant's own command may fall back to the local runner; a reproduction never does unasked.
    runner = runner_for(run_options, isolation_required=reproducing is not None)
    if runner.name == "local" and run_options.runner == "auto":
        progress.say(
            f"runner: no Docker engine answers and {sandbox_refusal()}; using the local runner (not a sandbox)"
        )
    elif runner.name == "sandbox" and run_options.runner == "auto":
        progress.say("runner: no Docker engine answers; using the sandbox runner (bubblewrap)")
    with open_source(run_options.submission) as source:  # an archive or a repository: unpacked (harness.unpack)
        check_commands(load_submission(source.path), runner.name)
    result = graded_run(run_options, runner, progress, original=reproducing)
    progress.say(summary_table(result))
    return EXIT_SCORED if result.status is Status.SCORED else EXIT_NOT_SCORED


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # `run --reproduce` tells the flags given from the defaults (given_run_options)
    progress = Progress(quiet=getattr(args, "quiet", False))
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return args.handler(args, progress)
    except BAD_INPUT as exc:
        print(f"error: {text.clean(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: the submission's processes were stopped; files already written are kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            print(
                f"error: the disk is full ({text.clean(exc.filename or exc)}); free space or use --runs-dir on "
                "another disk",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
