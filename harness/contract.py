"""The submission contract: what `submission.yaml` says and how a phase is told its job.

Versioned: CONTRACT_VERSION is recorded in every result and documented in
docs/submission-contract.md. Bump it on any change a submission could notice.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.errors import ContractError
from harness.text import clean
from harness.walk import TooDeep, TooMany, open_beneath, walk

if TYPE_CHECKING:
    from harness.clock import Deadline
    from harness.runners.base import PhaseSpec

CONTRACT_VERSION = "1.1"  # 1.1: HAET_PREDICT_BUDGET_S; the predict budget follows the training budget
MANIFEST = "submission.yaml"
NAME_PATTERN = re.compile(r"^[a-z0-9-]+$")
PREDICTIONS_FILE = "predictions.csv"

# Bounds on what an entry's folder may make the harness read (all checked before anything runs).
MAX_MANIFEST_BYTES = 64 * 2**10  # submission.yaml: three short keys need a few hundred bytes
MAX_MANIFEST_DEPTH = 16  # nesting of YAML collections in submission.yaml (the contract needs 1)
MAX_ENTRY_BYTES = 2**30  # all files of an entry together (the digest reads every byte)
MAX_ENTRY_FILES = 10_000  # files and folders of an entry together
MAX_ENTRY_DEPTH = 64  # folders inside folders
QUOTE_CHARS = 60  # how much of a bad value an error message quotes (escaped)
DIGEST_CHUNK = 2**20


@dataclass(frozen=True)
class Submission:
    path: Path
    name: str
    train: list[str]
    predict: list[str]

    @property
    def train_text(self) -> str:
        return shlex.join(self.train)

    @property
    def predict_text(self) -> str:
        return shlex.join(self.predict)


def quote(value: Any, limit: int = QUOTE_CHARS) -> str:
    """A short, escaped description of a bad value for an error message: never the whole of it."""
    if isinstance(value, str):
        return "'" + clean(value, limit) + "'"
    if value is None or isinstance(value, (bool, int, float)):
        return clean(repr(value), limit)
    kind = {dict: "a mapping", list: "a list"}.get(type(value), f"a value of type {type(value).__name__}")
    return clean(kind, limit)


class _RefusedYaml(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any):
        super().__init__(problem)
        self.problem, self.mark = problem, mark

    def __str__(self) -> str:
        line = f"line {self.mark.line + 1}: " if self.mark is not None else ""
        return line + self.problem


class ManifestLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors and aliases when the document is composed, before
    anything is expanded (a manifest has no use for them; an alias bomb is all they would bring),
    and collections nested deeper than MAX_MANIFEST_DEPTH."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _RefusedYaml("YAML aliases (*name) are not allowed; write each value out in full", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _RefusedYaml("YAML anchors (&name) are not allowed; write each value out in full", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_MANIFEST_DEPTH:
                raise _RefusedYaml(
                    f"collections are nested more than {MAX_MANIFEST_DEPTH} deep; "
                    "the manifest is three keys with text values",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong, on one line, with where (no snippet of the document)."""
    if isinstance(exc, _RefusedYaml):
        return clean(exc, 300)
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        context = getattr(exc, "context", None)
        text = f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        return clean((f"{context}: " if context else "") + text, 300)
    return clean(" ".join(str(exc).split()), 300)


def _read_manifest(manifest: Path) -> str:
    shown = clean(manifest, 300)
    try:
        info = manifest.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ContractError(f"{shown} is not a regular file; write {MANIFEST} as a plain text file")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise ContractError(
                f"{shown} is {info.st_size} bytes, over the {MAX_MANIFEST_BYTES}-byte limit; "
                f"{MANIFEST} needs only `name`, `train` and `predict` (a few hundred bytes)"
            )
        fd = os.open(manifest, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ContractError(
            f"{shown} cannot be read ({clean(exc.strerror or exc, 200)}); make it a readable file"
        ) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ContractError(
            f"{shown} is over the {MAX_MANIFEST_BYTES}-byte limit; {MANIFEST} needs only `name`, `train` and `predict`"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"{shown} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def load_submission(path: Path) -> Submission:
    """Parse and check `submission.yaml`; raise ContractError naming the problem and the fix.

    The entry's files are checked against their bounds by `submission_digest`, which every
    graded run computes before it creates anything.
    """
    path = Path(path)
    if not path.is_dir():
        raise ContractError(f"submission directory {clean(path, 300)} does not exist; pass --submission DIR")
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise ContractError(
            f"{clean(manifest, 300)} is missing; a submission needs a {MANIFEST} with `name`, `train` and "
            "`predict` (see docs/submission-contract.md)"
        )
    shown = clean(manifest, 300)
    text = _read_manifest(manifest)
    try:
        spec = yaml.load(text, Loader=ManifestLoader)  # noqa: S506 - a SafeLoader without aliases
    except RecursionError:
        raise ContractError(f"{shown} is not valid YAML: nested too deeply; write three plain keys") from None
    except yaml.YAMLError as exc:
        raise ContractError(
            f"{shown} is not valid YAML: {_yaml_problem(exc)}; see docs/submission-contract.md for the format"
        ) from None
    except Exception as exc:  # noqa: BLE001 - e.g. an impossible date: the YAML is still the entry's
        raise ContractError(
            f"{shown} is not valid YAML: {type(exc).__name__}: {clean(exc, 200)}; "
            "see docs/submission-contract.md for the format"
        ) from None
    if not isinstance(spec, dict):
        raise ContractError(f"{shown} must be a mapping with keys name, train, predict (got {quote(spec)})")
    unknown = sorted(clean(k, QUOTE_CHARS) for k in spec if k not in ("name", "train", "predict"))
    if unknown:
        listed = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ContractError(f"{shown}: unknown key(s) {listed}; allowed: name, train, predict")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # fullmatch: `$` allows a final newline
        raise ContractError(f"{shown}: `name` must match [a-z0-9-]+ (got {quote(name)}), e.g. `name: my-entry`")
    commands = {}
    for key in ("train", "predict"):
        value = spec.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ContractError(
                f"{shown}: `{key}` must be a command line, e.g. `{key}: python {key}.py` (got {quote(value)})"
            )
        if "\0" in value:
            raise ContractError(
                f"{shown}: `{key}` contains a NUL character, which no command can take; remove it (got {quote(value)})"
            )
        try:
            commands[key] = shlex.split(value)
        except ValueError as exc:
            raise ContractError(
                f"{shown}: `{key}` cannot be parsed as a command line ({clean(exc, 100)}); "
                f"check its quotes (got {quote(value)})"
            ) from None
        if not commands[key]:
            raise ContractError(f"{shown}: `{key}` must be a command line, e.g. `{key}: python {key}.py`")
    return Submission(
        path=path.resolve(),
        name=name,
        train=commands["train"],
        predict=commands["predict"],
    )


def check_commands(submission: Submission, runner_name: str) -> None:
    """Fail before any work when a command cannot start (local runner: on this machine)."""
    for phase, command in (("train", submission.train), ("predict", submission.predict)):
        script = missing_script(submission, command)
        if script:
            raise ContractError(
                f"the {phase} command names {clean(script, 100)}, which is not in {clean(submission.path, 300)}"
            )
        if runner_name in ("local", "sandbox") and not local_command_exists(submission, command):
            raise ContractError(f"the {phase} command {quote(command[0])} is not installed on this machine (PATH)")


def local_command_exists(submission: Submission, command: list[str]) -> bool:
    """Whether the local runner can start `command` (`python` is the harness's own interpreter)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(command[0], path=path) is not None or (submission.path / command[0]).is_file()


def missing_script(submission: Submission, command: list[str]) -> str | None:
    """A script named by a command (`python train.py`) that is not in the submission (escaped,
    for a message)."""
    for arg in command[1:]:
        if arg.endswith((".py", ".sh")) and not (submission.path / arg).is_file():
            return clean(arg, 200)
    return None


# --- the entry's files ---------------------------------------------------------------------


SKIPPED = frozenset({"__pycache__"})  # names left out of the digest and of the staged copy (bytecode caches)


@dataclass(frozen=True)
class EntryFile:
    """A regular file of an entry, as listed: `rel` is its name in the entry, `source` the file
    whose content it is (itself, or the target of a link to a file inside the entry), both
    relative to the entry's folder; `st` is the source's stat, so the file that is opened later
    can be checked to be the one listed (harness.walk.open_beneath)."""

    rel: str
    source: str
    st: os.stat_result

    @property
    def size(self) -> int:
        return self.st.st_size

    @property
    def same_file(self) -> tuple[int, int]:
        return self.st.st_dev, self.st.st_ino


@dataclass(frozen=True)
class EntryListing:
    root: Path  # the entry's folder, resolved
    folders: list[str]  # relative, parents before children
    files: list[EntryFile]  # in digest order
    folder_links: list[tuple[str, str]]  # (a link's name, the folder inside the entry it points to), relative


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def _special(mode: int) -> str:
    return (
        "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device file"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a file or a folder"
    )


def list_entry(path: Path) -> EntryListing:
    """Every folder and regular file of an entry, bounded, with no link followed out of it.

    Walks with the shared walker (harness.walk: openat beneath the folder, O_NOFOLLOW), skips
    `__pycache__`. A symlink to a file inside the entry counts as that file's content; a symlink
    to a folder inside it is not descended (its files are counted where they are); a symlink that
    leads out of the entry, or nowhere, is refused, and so are named pipes, sockets and device
    files. Raises ContractError when the entry has more than MAX_ENTRY_FILES files and folders,
    folders deeper than MAX_ENTRY_DEPTH, or more than MAX_ENTRY_BYTES of files (by size, before
    anything is read).
    """
    root = os.path.realpath(path)
    shown = clean(path, 300)
    folders: list[str] = []
    files: list[EntryFile] = []
    links: list[tuple[str, str]] = []
    total = 0
    try:
        for found in walk(Path(root), MAX_ENTRY_FILES, MAX_ENTRY_DEPTH, skip=SKIPPED):
            rel = found.rel
            if os.path.basename(rel) in SKIPPED:
                continue
            mode = found.st.st_mode
            if stat.S_ISLNK(mode):
                target = os.path.realpath(os.path.join(root, rel))
                if not os.path.exists(target) or not _inside(target, root):
                    where = "nowhere" if not os.path.exists(target) else "out of the entry"
                    raise ContractError(
                        f"{shown}: {clean(rel, 120)} is a symlink that points {where}; "
                        "copy the file into the entry instead (links must stay inside it)"
                    )
                info = os.stat(target)
                source = os.path.relpath(target, root)
                if stat.S_ISDIR(info.st_mode):
                    links.append((rel, source))  # its files are counted where they are
                    continue
                mode = info.st_mode
            else:
                info, source = found.st, rel
            if stat.S_ISDIR(mode):
                folders.append(rel)
            elif stat.S_ISREG(mode):
                total += info.st_size
                files.append(EntryFile(rel, source, info))
            else:
                raise ContractError(
                    f"{shown}: {clean(rel, 120)} is {_special(mode)}; remove it "
                    "(an entry holds only files, folders and links to them inside it)"
                )
            if total > MAX_ENTRY_BYTES:
                raise ContractError(
                    f"{shown}: its files add up to more than {MAX_ENTRY_BYTES // 2**20} MiB "
                    f"(at {clean(rel, 120)}); keep large data out of the entry "
                    "(the harness gives every phase its data)"
                )
    except TooMany:
        raise ContractError(
            f"{shown} has more than {MAX_ENTRY_FILES} files and folders; an entry is "
            "code and a small model: remove data, caches and virtual environments"
        ) from None
    except TooDeep as exc:
        raise ContractError(
            f"{shown}: folders nested more than {MAX_ENTRY_DEPTH} deep ({clean(exc.rel, 120)}); flatten the entry"
        ) from None
    except OSError as exc:
        where = clean(exc.filename if isinstance(exc.filename, str) else ".", 120)
        raise ContractError(
            f"{shown}: cannot read {where} ({clean(exc.strerror or exc, 100)}); make it readable"
        ) from None
    files.sort(key=lambda f: f.rel.split(os.sep))
    return EntryListing(Path(root), folders, files, links)


def open_entry_file(listing: EntryListing, file: EntryFile, shown: str) -> int:
    """A descriptor of the very file that was listed (no link followed on the way, same inode)."""
    try:
        return open_beneath(listing.root, file.source, file.same_file)
    except OSError as exc:
        raise ContractError(
            f"{shown}: cannot read {clean(file.rel, 120)} ({clean(exc.strerror or exc, 100)}); "
            "make it readable and keep the entry unchanged while it is graded"
        ) from None


def submission_digest(path: Path) -> str:
    """sha256 over the relative names and contents of a submission's files.

    Per file, in order of its path's parts: the relative name (as bytes) + NUL + the sha256 of
    its content. `__pycache__` is skipped. Streamed in 1 MiB chunks, with the bounds of
    list_entry (ContractError past them, also when a file grows while it is read). A graded run
    computes it from its staged copy of the entry (harness.staging), which is what the phases
    run; the Docker runner's image tag for an entry's own Dockerfile uses the same value.
    """
    digest = hashlib.sha256()
    total = 0
    shown = clean(path, 300)
    listing = list_entry(path)
    for file in listing.files:
        digest.update(os.fsencode(file.rel) + b"\0")
        content = hashlib.sha256()
        with os.fdopen(open_entry_file(listing, file, shown), "rb") as f:
            while chunk := f.read(DIGEST_CHUNK):
                total += len(chunk)
                if total > MAX_ENTRY_BYTES:
                    raise ContractError(
                        f"{shown}: its files add up to more than {MAX_ENTRY_BYTES // 2**20} MiB "
                        f"(at {clean(file.rel, 120)}); keep large data out of the entry"
                    )
                content.update(chunk)
        digest.update(content.digest())
    return digest.hexdigest()


def phase_environment(
    spec: PhaseSpec, deadline: Deadline, *, data: str, checkpoints: str, events: str, output: str
) -> dict[str, str]:
    """The HAET_* variables of a phase, with paths as the submission sees them."""
    env = {
        "HAET_CONTRACT": CONTRACT_VERSION,
        "HAET_DATA": data,
        "HAET_CHECKPOINTS": checkpoints,
        "HAET_EVENTS": events,
        "HAET_BUDGET_S": f"{deadline.budget_s:g}",
        "HAET_GRACE_S": f"{deadline.grace_s:g}",
        "HAET_DEADLINE": f"{deadline.kill_unix:.3f}",
        "HAET_SEED": str(spec.seed),
        "HAET_DEVICE": spec.device,
    }
    if spec.output_dir is not None:
        env["HAET_OUTPUT"] = output
    if spec.predict_budget_s is not None:  # train: what predict will have, to plan test-time views or members
        env["HAET_PREDICT_BUDGET_S"] = f"{spec.predict_budget_s:g}"
    return env
