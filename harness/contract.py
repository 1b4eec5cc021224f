"""The submission contract: what `submission.yaml` says and how a phase is told its job.

Versioned: CONTRACT_VERSION is recorded in every result and documented in
docs/submission-contract.md. Bump it on any change a submission could notice.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from harness.runners.base import PhaseSpec

CONTRACT_VERSION = "1.0"
MANIFEST = "submission.yaml"
NAME_PATTERN = re.compile(r"^[a-z0-9-]+$")
PREDICTIONS_FILE = "predictions.csv"


class ContractError(ValueError):
    """A submission does not follow the contract; the message says what to fix."""


@dataclass(frozen=True)
class Submission:
    path: Path
    name: str
    train: list[str]
    predict: list[str]
    has_dockerfile: bool

    @property
    def train_text(self) -> str:
        return shlex.join(self.train)

    @property
    def predict_text(self) -> str:
        return shlex.join(self.predict)


def load_submission(path: Path) -> Submission:
    """Parse and check `submission.yaml`; raise ContractError naming the problem and the fix."""
    path = Path(path)
    if not path.is_dir():
        raise ContractError(f"submission directory {path} does not exist; pass --submission DIR")
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise ContractError(
            f"{manifest} is missing; a submission needs a {MANIFEST} with `name`, `train` and `predict` "
            "(see docs/submission-contract.md)"
        )
    try:
        spec = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ContractError(f"{manifest} is not valid YAML: {exc}".strip()) from None
    if not isinstance(spec, dict):
        raise ContractError(f"{manifest} must be a mapping with keys name, train, predict")
    unknown = sorted(set(spec) - {"name", "train", "predict"})
    if unknown:
        raise ContractError(f"{manifest}: unknown key(s) {', '.join(unknown)}; allowed: name, train, predict")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ContractError(f"{manifest}: `name` must match [a-z0-9-]+ (got {name!r}), e.g. `name: my-entry`")
    commands = {}
    for key in ("train", "predict"):
        value = spec.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ContractError(f"{manifest}: `{key}` must be a command line, e.g. `{key}: python {key}.py`")
        try:
            commands[key] = shlex.split(value)
        except ValueError as exc:
            raise ContractError(f"{manifest}: `{key}` cannot be parsed as a command line ({exc})") from None
    return Submission(
        path=path.resolve(),
        name=name,
        train=commands["train"],
        predict=commands["predict"],
        has_dockerfile=(path / "Dockerfile").is_file(),
    )


def missing_script(submission: Submission, command: list[str]) -> str | None:
    """A script named by a command (`python train.py`) that is not in the submission."""
    for arg in command[1:]:
        if arg.endswith((".py", ".sh")) and not (submission.path / arg).is_file():
            return arg
    return None


def submission_digest(path: Path) -> str:
    """sha256 over the relative names and contents of a submission's files."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def phase_environment(
    spec: "PhaseSpec", deadline_unix: float, *, data: str, checkpoints: str, events: str, output: str
) -> dict[str, str]:
    """The HAET_* variables of a phase, with paths as the submission sees them."""
    env = {
        "HAET_CONTRACT": CONTRACT_VERSION,
        "HAET_DATA": data,
        "HAET_CHECKPOINTS": checkpoints,
        "HAET_EVENTS": events,
        "HAET_BUDGET_S": f"{spec.budget_s:g}",
        "HAET_GRACE_S": f"{spec.grace_s:g}",
        "HAET_DEADLINE": f"{deadline_unix:.3f}",
        "HAET_SEED": str(spec.seed),
        "HAET_DEVICE": spec.device,
    }
    if spec.output_dir is not None:
        env["HAET_OUTPUT"] = output
    return env
