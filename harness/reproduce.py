"""`run --reproduce RUN_DIR`: the same entry, options, seed(s) and data again, in a new run directory.

A run directory someone hands over is untrusted input (docs/security.md, "What --reproduce
trusts"): its result.json is read through the one bounded reader (harness.report.read), its
options are type-checked one by one, the entry folder, data sources and image it names are
checked before anything runs, and it can never lower the isolation that the organizer's command
gets by default. Options given on the command line win over the record, field by field. The new
result keeps what the record asked and which fields the command line set (`reproduces.asked`,
`reproduces.overridden`) next to what ran (`options`, `environment`), and says what differs.
The original is only read.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import data
from harness.contract import load_submission, quote
from harness.errors import BAD_INPUT, UsageError
from harness.fingerprint import differences
from harness.model import DataInfo, Environment, Reproduction, RunResult, SeriesResult, SubmissionInfo
from harness.options import OPTIONS, RunOptions, detect_device, runtime_image
from harness.report.read import read_result
from harness.text import clean, cut
from harness.unpack import describe, open_source

# This host's settings, never a record's: a record naming the cache would choose where the harness writes.
THIS_MACHINE = ("gpu", "cache_dir")
DATA_FIELDS = ("data", "eval_data")  # naming either on the command line replaces both (see load)
PLACEMENT = ("runs_dir", "run_id")  # where the new run goes: the command line's, never the record's
MAX_TEXT_CHARS = 4096  # a recorded string option (a data source, an image) longer than this was not written by a run
# A Docker image reference (distribution/reference's grammar, as the engine normalizes it):
# [host/]path[:tag][@digest], where a host has a dot or a port or is localhost, and a path is lowercase.
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?:(?:localhost|{_HOST_PART}(?:\.{_HOST_PART})+|{_HOST_PART}(?=:))(?::[0-9]+)?/)?"
    rf"{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::\w[\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
MAX_IMAGE_CHARS = 255
MAX_DIFFERENCE_CHARS = 500  # one line of `reproduces.differences`


@dataclass
class Reproducing:
    """What `run --reproduce` runs (`options`) and what it reproduces."""

    options: RunOptions
    runs: list[tuple[Path, RunResult]]  # the original's run(s), one per repeat, each with its folder
    asked: dict[str, Any]  # the record's options as read, and `submission`
    overridden: list[str]  # the keys of `asked` the command line set
    check_images: bool  # the data sources are the record's: its images must come out of them

    def reproduction(self, i: int) -> tuple[Reproduction, RunResult] | None:
        """The `reproduces` of the new run's i-th repeat, and the original run it is compared with."""
        if i >= len(self.runs):
            return None
        path, run = self.runs[i]
        return Reproduction(run.run_id, str(path), asked=dict(self.asked), overridden=list(self.overridden)), run

    def check_data(self, pool: data.Pool, eval_pool: data.Pool | None) -> None:
        """Before anything runs: the record's own data sources must give the very images each of its
        runs was graded on (`data.data_sha256`). A record cannot forge that hash for data it has not
        seen, so it cannot hand the entry another file of this host (the organizer's secret set)."""
        if not self.check_images:
            return
        counts = (self.asked.get("train_per_class"), self.asked.get("eval_per_class"))
        for path, run in self.runs:
            try:  # the record's own counts (at least 1 each: an empty draw would hash the same from any data)
                same = (
                    all(isinstance(n, int) and n >= 1 for n in counts)
                    and data.draw(
                        pool,
                        eval_pool,
                        seed=run.seed,
                        train_per_class=counts[0],
                        eval_per_class=counts[1],
                        source=self.options.data,
                        eval_source=self.options.eval_data or self.options.data,
                    ).info.data_sha256
                    == run.data.data_sha256
                )
            except BAD_INPUT:  # too few images for the recorded counts: not the data it was graded on
                same = False
            if not same:
                raise UsageError(
                    f"--reproduce {clean(path.parent if len(self.runs) > 1 else path, 200)}: the data its record "
                    f"names ({clean(self.options.data, 200)}"
                    + (f", held-out set {clean(self.options.eval_data, 200)}" if self.options.eval_data else "")
                    + f") does not give the images run {clean(run.run_id, 100)} was graded on (data_sha256 differs): "
                    "the data changed or the record was edited. Nothing was run; pass --data (and --eval-data) to "
                    "choose the data yourself"
                )

    def describe(self) -> str:
        o = self.options
        line = (
            f"reproducing {self.runs[0][0]} (run {self.runs[0][1].run_id}): entry {o.submission}, "
            f"data {o.data}, held-out set {o.eval_data or 'the test split of the data'}, budget {o.budget_s:g}s, "
            f"seed {o.seed}"
            f"{f', {o.repeats} repeats' if o.repeats > 1 else ''}, runner {o.runner}"
        )
        return clean(line + (f"; from the command line: {', '.join(self.overridden)}" if self.overridden else ""))


def load(original: Path, given: dict[str, Any]) -> Reproducing:
    """The options that rerun `original`, from its record and `given` (the run options named on the
    command line, by field: they win). UsageError, naming the fix, for whatever cannot be trusted."""
    original = Path(original)
    where = f"--reproduce {clean(original, 200)}"
    path = original / "result.json"
    if not os.path.lexists(path):
        raise UsageError(f"{where}: no result.json there; name a run directory under runs/")
    try:
        result = read_result(path)
    except ValueError as exc:
        raise UsageError(f"{where}: its {exc}; name a run directory the harness wrote") from None
    repeats = result.repeats if isinstance(result, SeriesResult) else [result]
    runs = [
        (original / f"repeat-{i + 1:02d}", r) if isinstance(result, SeriesResult) else (original, r)
        for i, r in enumerate(repeats)
    ]
    for _, run in runs:
        _check_run(run, where)
    first = runs[0][1] if runs else None
    if first is None or not first.options:
        raise UsageError(
            f"{where}: its result.json records no options (written by an older harness); rerun it "
            "with the same flags by hand"
        )
    record = _read_record(first.options, given, where)
    asked = {**record, "submission": first.submission.path}
    overridden = sorted({_key(f) for f in given if f not in (*PLACEMENT, *THIS_MACHINE)})

    device = given.get("device") or record.get("device") or "auto"
    device = detect_device() if device == "auto" else device
    _refuse_less_isolation(record, given, device, where)
    taken = {k: v for k, v in record.items() if _field(k) not in (*THIS_MACHINE, *given)}
    from_command_line = any(f in given for f in DATA_FIELDS)
    if from_command_line:  # one pair of sources: never the command line's training set with the record's held-out set
        taken = {k: v for k, v in taken.items() if _field(k) not in DATA_FIELDS}
    else:
        for key in ("data", "eval_data"):
            _check_source(record.get(key), key, where)
    submission = given.get("submission") or _entry(first.submission.path, where)
    options = RunOptions.from_record(taken, submission=submission, seed=first.seed, repeats=len(runs))
    try:
        options = dataclasses.replace(options, **{**given, "device": device}).validate()
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return Reproducing(options, runs, asked, overridden, check_images=not from_command_line)


def compare(original: RunResult, new: RunResult) -> list[str]:
    """What differs between the original run and its reproduction, in words (empty: nothing)."""
    out = differences(original.environment, new.environment)
    if original.submission.sha256 != new.submission.sha256:
        out.insert(
            0, f"the entry's files changed: sha256 {original.submission.sha256[:12]} -> {new.submission.sha256[:12]}"
        )
    if original.data.data_sha256 != new.data.data_sha256:
        out.insert(0, "the images differ (data_sha256): the data source changed since the original run")
    return [cut(line, MAX_DIFFERENCE_CHARS) for line in out]  # the original's values are a record's: any length


# --- the record, field by field ------------------------------------------------------------------


def _key(field: str) -> str:
    return next((o.key for o in OPTIONS if o.field == field), field)


def _field(key: str) -> str:
    return next((o.field for o in OPTIONS if o.key == key), key)


def _check_run(run: RunResult, where: str) -> None:
    """The parts of each original run that the reproduction uses, of the types the harness writes."""
    ok = (
        isinstance(run, RunResult)
        and _text(run.run_id)
        and isinstance(run.seed, int)
        and not isinstance(run.seed, bool)
        and isinstance(run.options, dict)
        and isinstance(run.submission, SubmissionInfo)
        and _text(run.submission.path)
        and _text(run.submission.sha256)
        and isinstance(run.data, DataInfo)
        and _text(run.data.data_sha256)
        and isinstance(run.environment, Environment)
        and isinstance(run.environment.gpu_details, list)
        and all(isinstance(g, dict) for g in run.environment.gpu_details)
    )
    if not ok:
        raise UsageError(
            f"{where}: its result.json is not of the shape the harness writes (run_id, seed, options, "
            "submission, data, environment); name a run directory the harness wrote"
        )


def _read_record(options: dict[str, Any], given: dict[str, Any], where: str) -> dict[str, Any]:
    """The recorded run options the harness knows, each of the type its flag takes; a field the
    command line sets is not used, so a bad one there is only kept as text."""
    record = {}
    for option in OPTIONS:
        if option.key not in options:
            continue
        value = record[option.key] = options[option.key]
        if value is None:  # as recorded: the command's default
            continue
        if option.field in given:
            record[option.key] = value if _of_type(option.parse, value) else clean(value, 200)
            continue
        if not _of_type(option.parse, value) or value not in (option.choices or [value]):
            raise UsageError(
                f"{where}: its result.json records {option.key} = {quote(value)}, which {option.flag} "
                f"does not take; pass {option.flag} yourself"
            )
        record[option.key] = value
    return record


def _text(value: Any) -> bool:
    return isinstance(value, str) and "\0" not in value and len(value) <= MAX_TEXT_CHARS


def _of_type(parse: Any, value: Any) -> bool:
    if parse is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if parse is int:
        return isinstance(value, int)
    if parse is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return _text(value)


def _entry(recorded: str, where: str) -> Path:
    """The entry folder, archive or repository the record names: absolute, without `..` or symlinks (a
    run records the resolved path, harness.unpack.describe), and an entry."""
    if not (os.path.isabs(recorded) or recorded.startswith("git+file:")) or describe(recorded) != recorded:
        raise UsageError(
            f"{where}: its result.json names the entry folder {quote(recorded)}, not the resolved "
            "absolute path a run records; pass --submission DIR"
        )
    try:
        with open_source(recorded) as source:
            load_submission(source.path)
    except BAD_INPUT as exc:
        raise UsageError(
            f"{where}: the entry folder its result.json names cannot be graded ({exc}); pass --submission DIR"
        ) from None
    return Path(recorded)


def _check_source(source: str | None, key: str, where: str) -> None:
    if source is None:
        return
    flag = "--" + key.replace("_", "-")
    try:
        data.parse_source(source)
    except BAD_INPUT as exc:
        raise UsageError(
            f"{where}: the {flag} its result.json records cannot be used ({exc}); "
            f"pass --data (and --eval-data) yourself"
        ) from None


def _refuse_less_isolation(record: dict[str, Any], given: dict[str, Any], device: str, where: str) -> None:
    """The record may ask for what this command gets by default, or for more, never for less: every
    weaker setting it asks for takes its own flag on the command line (one message names them all).
    Least to most isolated: local, sandbox, docker (`auto` picks the most isolated that works)."""
    lowered = []
    runner = record.get("runner", "auto")
    if "runner" not in given and runner in ("local", "sandbox"):
        from harness.runners import docker_answers

        if runner == "local" or docker_answers():
            lowered.append(
                f"the {runner} runner, where this command would use "
                f"{'docker' if runner == 'sandbox' else 'docker or the sandbox'} "
                f"(--runner {runner} allows it)"
            )
    if "build_network" not in given and record.get("build_network"):
        lowered.append(
            "network access while the entry's own Dockerfile builds (--build-network allows it; "
            "--no-build-network builds without)"
        )
    image, default = record.get("image"), runtime_image(device)
    if "image" not in given and image is not None and image != default:
        if len(image) > MAX_IMAGE_CHARS or not IMAGE_REFERENCE.fullmatch(image):
            raise UsageError(
                f"{where}: its result.json names the image {quote(image)}, which is not a Docker image "
                f"reference; pass --image NAME (this command's default: {default})"
            )
        lowered.append(
            f"the image {image} instead of {default} (--image {image} allows it; --image {default} uses the default)"
        )
    if lowered:
        raise UsageError(
            f"{where}: its result.json asks for less isolation than this command gets by default: "
            + "; ".join(lowered)
            + ". Nothing was run; pass the flag named to allow each one"
        )
