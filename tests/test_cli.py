"""The command line: every flag's help tells the default the command really uses, and the options
module is the one place those defaults come from."""

from __future__ import annotations

import argparse
import re

import pytest

from harness import options
from harness.cli import build_parser
from harness.options import RunOptions

COMMANDS = ("run", "grade", "check", "validate", "leaderboard")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_the_defaults_the_command_uses(command):
    parser = subparsers()[command]
    checked = 0
    for action in parser._actions:
        shown = re.search(r"\(default: ([^)]*)\)", action.help or "")
        if not shown or action.default in (None, argparse.SUPPRESS):
            continue
        checked += 1
        said = {str(action.default)} | ({f"{action.default:g}"} if isinstance(action.default, float) else set())
        assert shown.group(1) in said, (
            f"{command} {action.option_strings}: help says {shown.group(1)!r}, the parser uses {action.default!r}"
        )
    if command in ("run", "grade"):
        assert checked >= 8


def test_grade_says_it_runs_five_seeds_and_has_no_runs_dir():
    grade = subparsers()["grade"]
    repeats = next(a for a in grade._actions if "--repeats" in a.option_strings)
    assert repeats.default == options.GRADING_REPEATS == 5 and "(default: 5)" in repeats.help
    assert not any("--runs-dir" in a.option_strings for a in grade._actions), "grade writes into --out"


def test_run_defaults_are_the_options_modules():
    args = subparsers()["run"].parse_args([])
    defaults = RunOptions()
    assert args.budget_s == defaults.budget_s == 600 and args.predict_budget_s is None
    assert defaults.predict_budget_s == options.default_predict_budget(600) == 60, "a tenth of the budget"
    assert RunOptions(budget_s=90).predict_budget_s == options.PREDICT_FLOOR_S == 20, "at least the floor"
    assert RunOptions(budget_s=90, predict_budget_s=120).predict_budget_s == 120, "an organizer may grant more"
    assert (
        options.from_args(subparsers()["run"].parse_args(["--budget", "300", "--device", "cpu"])).predict_budget_s == 30
    )
    assert args.train_per_class == defaults.train_per_class == 500 and args.eval_per_class == 100
    assert RunOptions(budget_s=20).grace_s == options.default_grace(20) == 5
    assert RunOptions().grace_s == 10


def test_a_child_run_gets_exactly_the_same_options():
    """`to_argv` is what grade and check hand to each child `run`: parsing it gives the options back."""
    original = RunOptions(
        data="npz:/x.npz",
        eval_data="imagefolder:/secret",
        budget_s=0.1 + 0.2,
        grace_s=0.05,
        predict_budget_s=7.5,
        device="cpu",
        gpu="GPU-1234",
        runner="docker",
        image="img:tag",
        build_network=True,
        build_timeout_s=30.0,
        repeats=1,
        seed=7,
        train_per_class=3,
        eval_per_class=2,
        monitor_interval_s=0.25,
        strict_predict=True,
    )
    args = subparsers()["run"].parse_args(original.to_argv())
    again = options.from_args(args, submission=original.submission, runs_dir=original.runs_dir)
    assert again == original


def test_a_recorded_plan_reads_back():
    original = RunOptions(data="npz:/x.npz", budget_s=30, build_network=True, seed=3, repeats=5, strict_predict=True)
    assert RunOptions.from_record(original.record()) == original
    assert RunOptions.from_record({"budget": 30, "build_network": False}).build_network is False


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--budget", "0"], "--budget and --predict-budget must be positive"),
        (["--budget", "10", "--grace", "10"], "--grace must be at least 0 and less than --budget"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--eval-per-class", "0"], "--train-per-class and --eval-per-class must be at least 1"),
        (["--build-timeout", "-1"], "--build-timeout must be a positive"),
    ],
)
def test_bad_options_are_refused_with_the_rule(flags, message):
    args = subparsers()["run"].parse_args(["--device", "cpu", *flags])
    with pytest.raises(ValueError, match=re.escape(message)):
        options.from_args(args)
