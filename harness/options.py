"""The options of a graded run: the one place for their defaults and rules.

`RunOptions` is what `run` executes. Each option is one field, its flag, help and type in the
field's metadata (`option`). The command line (`add_arguments`, `from_args`), the record a run and
a grading's plan keep (`record`, `from_record`) and the argv a grader, a check or a cluster task
hands to a child `run` (`to_argv`) are all derived from those fields (OPTIONS), so a default, a
flag or a rule is written once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError

DEFAULT_GPU = "0"  # the GPU a run uses when none is named (NVML's and CUDA's index, PCI bus order)
GRADING_REPEATS = 5  # the competition's mean of 5 runs: what `grade` does unless told otherwise


def default_grace(budget_s: float) -> float:
    """SIGTERM 10 s before the deadline, or a quarter of a shorter budget."""
    return min(10.0, budget_s / 4)


# The predict phase infers; it gets no compute that could buy accuracy (docs/security.md, "Predict is
# not a second training budget"). The floor covers an interpreter, CUDA's start-up and the inference
# of 1,000 images with test-time views (the bundled entry: 12-16 s on 2 CPU cores); the share lets a
# long training budget's larger model infer in proportion.
PREDICT_FLOOR_S = 20.0
PREDICT_SHARE = 0.1


def default_predict_budget(budget_s: float) -> float:
    """The predict phase's seconds for a training budget: a tenth of it, at least PREDICT_FLOOR_S."""
    return max(PREDICT_FLOOR_S, PREDICT_SHARE * budget_s)


PREDICT_RULE = f"max({PREDICT_FLOOR_S:g}, {PREDICT_SHARE:g} x --budget)"  # the rule, as help and messages say it


def default_cache_dir() -> Path:
    return Path(os.environ.get("HAET_CACHE", Path.home() / ".cache" / "haet"))


def runtime_image(device: str) -> str:
    """haet-runtime:cuda / haet-runtime:cpu, as the Dockerfile and `make image-cpu` tag them."""
    return os.environ.get("HAET_IMAGE") or f"haet-runtime:{device}"


RUNNERS = ("auto", "local", "docker", "sandbox")


def option(default: Any, flag: str, help: str, parse: Callable[[str], Any] = str, **more: Any) -> Any:
    """A RunOptions field that is also a flag of `run`; `more`: the rest of its Option."""
    return dataclasses.field(default=default, metadata={"flag": flag, "help": help, "parse": parse, **more})


@dataclass
class RunOptions:
    submission: Path = Path("submission")
    data: str = option("cifar10", "--data", "cifar10 (download), tar:FILE, imagefolder:DIR or npz:FILE")
    eval_data: str | None = option(
        None, "--eval-data", "a secret held-out set (imagefolder:DIR or npz:FILE) instead of the test split"
    )
    budget_s: float = option(600.0, "--budget", "training seconds", float)
    grace_s: float | None = option(  # None: default_grace(budget_s)
        None,
        "--grace",
        "SIGTERM this many seconds before the deadline (default: 10, or a quarter of a shorter budget)",
        float,
    )
    predict_budget_s: float | None = option(  # None: default_predict_budget(budget_s)
        None,
        "--predict-budget",
        f"prediction seconds (default: {PREDICT_RULE}); more than the default is recorded "
        "as a warning: predict-phase compute can buy accuracy",
        float,
    )
    strict_predict: bool = option(
        False,
        "--strict-predict",
        "fail a run whose predict phase takes longer than the default predict budget "
        f"({PREDICT_RULE}), whatever --predict-budget granted",
        bool,
    )
    device: str = option(  # cuda | cpu; the flag's "auto" is resolved by from_args
        "cpu",
        "--device",
        "what HAET_DEVICE says: cuda, cpu, or auto (cuda when NVML sees a GPU)",
        choices=("auto", "cuda", "cpu"),
        parser_default="auto",
    )
    gpu: str | None = option(  # None: DEFAULT_GPU
        None, "--gpu", f"the one GPU to use, by index or UUID (default: {DEFAULT_GPU})", recorded=False, planned=False
    )
    runner: str = option(
        "auto",
        "--runner",
        "where the entry runs: docker, sandbox (bubblewrap, no daemon), local (on this host, not "
        "isolated), or auto (docker when an engine answers, else sandbox when bwrap works here; "
        "then `run` falls back to local, the organizer commands refuse)",
        choices=RUNNERS,
    )
    image: str | None = option(  # None: runtime_image(device)
        None, "--image", "runtime image for the docker runner (default: $HAET_IMAGE or haet-runtime:DEVICE)"
    )
    build_network: bool = option(
        False,
        "--build-network",
        "let an entry's own Dockerfile use the network while it builds (recorded in the result and the leaderboard)",
        bool,
        negatable=True,
    )
    build_timeout_s: float | None = option(  # None: the Docker runner's default
        None,
        "--build-timeout",
        "seconds an entry's own Dockerfile may take to build (default: 600)",
        float,
        planned=False,
    )
    repeats: int = option(1, "--repeats", "independent seeds; reports mean and std", int)
    seed: int = option(0, "--seed", "first seed", int)
    train_per_class: int = option(500, "--train-per-class", "training images per class", int)
    eval_per_class: int = option(100, "--eval-per-class", "held-out images per class", int)
    monitor_interval_s: float = option(0.5, "--monitor-interval", "seconds between samples", float, planned=False)
    curve: bool = option(  # off the clock, but it costs a predict per snapshot (docs/curves.md)
        False,
        "--curve",
        "after the official score, predict each kept snapshot of the checkpoints on a curve set "
        "apart from the held-out images: accuracy against time and energy (off the clock; costs "
        "up to 12 extra predict phases)",
        bool,
        negatable=True,
    )
    curve_per_class: int = option(100, "--curve-per-class", "curve-set images per class", int)
    target: float = option(0.85, "--target", "accuracy whose time and energy to reach the curve reports", float)
    runs_dir: Path = Path("runs")
    cache_dir: Path | None = option(  # None: default_cache_dir()
        None, "--cache-dir", "prepared data cache (default: $HAET_CACHE or ~/.cache/haet)", Path, planned=False
    )
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.grace_s is None:
            self.grace_s = default_grace(self.budget_s)
        if self.predict_budget_s is None:
            self.predict_budget_s = default_predict_budget(self.budget_s)
        if self.cache_dir is None:
            self.cache_dir = default_cache_dir()

    @property
    def default_predict_budget_s(self) -> float:
        return default_predict_budget(self.budget_s)

    @property
    def gpu_selector(self) -> str:
        return self.gpu or DEFAULT_GPU

    @property
    def runtime_image(self) -> str:
        return self.image or runtime_image(self.device)

    def validate(self) -> RunOptions:
        """The rules every command enforces before any work; UsageError says which and how to fix it."""
        if self.budget_s <= 0 or self.predict_budget_s <= 0:
            raise UsageError("--budget and --predict-budget must be positive numbers of seconds")
        if not 0 <= self.grace_s < self.budget_s:
            raise UsageError(f"--grace must be at least 0 and less than --budget ({self.budget_s:g}s)")
        if self.repeats < 1:
            raise UsageError("--repeats must be at least 1")
        if self.train_per_class < 1 or self.eval_per_class < 1:
            raise UsageError("--train-per-class and --eval-per-class must be at least 1")
        if self.monitor_interval_s <= 0:
            raise UsageError("--monitor-interval must be positive")
        if self.curve_per_class < 1:
            raise UsageError("--curve-per-class must be at least 1")
        if not 0 < self.target <= 1:
            raise UsageError(f"--target is an accuracy between 0 and 1 (e.g. 0.85), not {self.target:g}")
        if self.build_timeout_s is not None and self.build_timeout_s <= 0:
            raise UsageError("--build-timeout must be a positive number of seconds")
        return self

    # --- a child `run`, and a grading's plan ---------------------------------------------

    def to_argv(self) -> list[str]:
        """`run` arguments that make a child run exactly these options (repr: floats round-trip)."""
        argv = []
        for option in OPTIONS:
            value = getattr(self, option.field)
            if value is None or value is False:
                continue
            shown = repr(value) if isinstance(value, float) else str(value)
            argv += [option.flag] if value is True else [option.flag, shown]
        return argv

    def record(self) -> dict[str, Any]:
        """The options as a run's result, a grading's plan and a baseline keep them (keys as the flags name them)."""
        return {o.key: _plain(getattr(self, o.field)) for o in OPTIONS if o.recorded}

    @classmethod
    def from_record(cls, record: dict[str, Any], **overrides: Any) -> RunOptions:
        known = {o.key: o for o in OPTIONS}
        values = {known[k].field: known[k].parse(v) for k, v in record.items() if k in known and v is not None}
        return cls(**{**values, **overrides})


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


# --- each option, as its field's metadata says it ------------------------------------------------


@dataclass(frozen=True)
class Option:
    field: str  # the RunOptions attribute
    default: Any
    flag: str
    help: str
    parse: Callable[[str], Any]
    recorded: bool = True  # kept in result.json's options and a grading's plan (what --reproduce reruns)
    planned: bool = True  # the same for every run of a grading: a resumed grading refuses another value
    negatable: bool = False  # a boolean with a --no- form too
    choices: tuple[str, ...] | None = None
    parser_default: Any = None  # the flag's default where it is decided after parsing (the device, by NVML)

    @property
    def key(self) -> str:
        """Its name in a record: the flag's."""
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS = [Option(f.name, f.default, **f.metadata) for f in dataclasses.fields(RunOptions) if f.metadata]


def add_arguments(
    parser,
    *,
    include: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
    unset: bool = False,
    **defaults: Any,
) -> None:
    """The run options as flags (`include`/`exclude` by field name); `defaults` overrides a default for
    one command (grade's repeats); `unset` leaves every default None, to tell what was given."""
    for option in OPTIONS:
        if (include is not None and option.field not in include) or option.field in exclude:
            continue
        default = None if unset else defaults.get(option.field, option.parser_default or option.default)
        shown = "" if default in (None, False) else f" (default: {default})"
        if option.parse is bool:
            action = argparse.BooleanOptionalAction if option.negatable else "store_true"
            parser.add_argument(
                option.flag,
                dest=option.field,
                action=action,
                help=option.help,
                default=None if unset else option.default,
            )
            continue
        parser.add_argument(
            option.flag,
            dest=option.field,
            type=option.parse,
            default=default,
            choices=option.choices,
            help=option.help + shown,
        )


def from_args(args: argparse.Namespace, **overrides: Any) -> RunOptions:
    """RunOptions from parsed flags, `auto` device resolved, every rule checked."""
    values = {o.field: getattr(args, o.field) for o in OPTIONS if hasattr(args, o.field)}
    values.update({k: getattr(args, k) for k in ("submission", "run_id", "runs_dir") if hasattr(args, k)})
    values.update(overrides)
    if values.get("device") == "auto":
        values["device"] = detect_device()
    return RunOptions(**values).validate()


def detect_device() -> str:
    from harness.monitor import Gpus

    gpus, _ = Gpus.open(None)
    if gpus:
        gpus.close()
        return "cuda"
    return "cpu"
