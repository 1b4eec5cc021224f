"""The typed result model shared by every part of the harness.

One graded run produces one `RunResult`; `--repeats N` produces a `SeriesResult`
holding N of them. Both serialise to the versioned `result.json` schema
(see docs/result-schema.md); `from_dict` reads them back for reports and leaderboards.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2  # 2: build, isolation, held-out secrecy, late checkpoints, gpu_status (all added; 1 still reads)


class Outcome(str, enum.Enum):
    """How one phase (train or predict) ended."""

    COMPLETED = "completed"  # exited 0 before the harness signalled it
    KILLED_AT_DEADLINE = "killed_at_deadline"  # still running at deadline - grace; normal for train
    CRASHED = "crashed"  # exited non-zero on its own
    OOM = "oom"  # killed for exceeding its memory limit (by the kernel, or the sandbox runner's sampling)
    NO_CHECKPOINT = "no_checkpoint"  # train ended but left nothing in HAET_CHECKPOINTS
    NO_PREDICTIONS = "no_predictions"  # predict exited 0 without writing predictions.csv
    INTERRUPTED = "interrupted"  # the operator stopped the harness (Ctrl-C, SIGTERM)
    NOT_STARTED = "not_started"  # an earlier phase failed


class GpuStatus(str, enum.Enum):
    """Whether the GPUs were monitored, and if not, why."""

    MONITORED = "monitored"
    CPU_RUN = "cpu_run"  # --device cpu: no GPU was asked for
    NOT_VISIBLE = "not_visible"  # --device cuda, but NVML could not open the GPU (the note says why)


class Status(str, enum.Enum):
    """The verdict of a whole graded run."""

    SCORED = "scored"
    INVALID_PREDICTIONS = "invalid_predictions"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    # A grading's verdicts for a seed that has no run of its own (the leaderboard):
    INVALID_ENTRY = "invalid_entry"  # the entry could not be graded at all (its files break the contract)
    HARNESS_ERROR = "harness_error"  # the harness failed for this run; it runs again on resume


@dataclass
class Signal:
    name: str  # SIGTERM / SIGKILL
    at_s: float  # seconds after the command started


@dataclass
class PhaseResult:
    phase: str  # "train" | "predict"
    outcome: Outcome
    seconds: float  # command start -> exit, measured by the harness
    budget_s: float
    grace_s: float | None = None  # SIGTERM is due at budget_s - grace_s (None in results before schema 2)
    exit_code: int | None = None
    signals: list[Signal] = field(default_factory=list)
    stray_processes_killed: int = 0  # processes still alive after the command exited
    log_tail: list[str] = field(default_factory=list)
    detail: str = ""
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # name, bytes, sha256
    checkpoint_files: int = 0  # all files found; `checkpoints` lists at most the first few
    last_checkpoint_write_s: float | None = None  # latest change the harness saw in HAET_CHECKPOINTS
    late_checkpoints: list[str] = field(default_factory=list)  # written after the deadline: never scored
    rewritten_in_place: list[str] = field(default_factory=list)  # checkpoints saved non-atomically (seen twice)
    # The compute the phase used, sampled (Monitor.compute): CPU seconds (100 % for 1 s = 1 s), and the
    # seconds of GPU-busy time (utilization integrated, summed over GPUs) where NVML monitored one, else None.
    cpu_seconds: float | None = None
    gpu_busy_seconds: float | None = None


@dataclass
class Score:
    accuracy: float
    correct: int
    total: int
    ci95_low: float  # Wilson score interval
    ci95_high: float
    per_class: dict[str, float]
    confusion: list[list[int]]  # rows: true class, columns: predicted class


@dataclass
class GpuSummary:
    index: int
    name: str
    uuid: str
    memory_total_bytes: int
    util_mean: float | None = None
    util_max: float | None = None
    memory_used_peak_bytes: int | None = None
    power_mean_w: float | None = None
    power_max_w: float | None = None
    energy_j: float | None = None
    energy_method: str | None = None  # "nvml_energy_counter" | "integrated_power" (no counter on this GPU)
    temperature_max_c: float | None = None
    sm_clock_mean_mhz: float | None = None


@dataclass
class MonitorSummary:
    interval_s: float
    samples: int
    cpu_percent_mean: float | None = None  # 100 = one core busy
    cpu_percent_max: float | None = None
    rss_peak_bytes: int | None = None
    gpus: list[GpuSummary] | None = None  # None: no GPU visible to the harness
    gpu_note: str = ""
    gpu_status: GpuStatus | None = None  # None in results written before schema 2
    cpu_energy_j: float | None = None  # RAPL package energy over the train phase; None: not readable
    cpu_energy_note: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class DataInfo:
    source: str
    eval_source: str
    classes: list[str]
    seed: int
    train_per_class: int
    eval_per_class: int
    train_count: int
    eval_count: int
    data_sha256: str  # of the chosen train and held-out images and labels, in the seed's order (index_hash in 1)
    heldout_public: bool = False  # the held-out images come from a published split (e.g. CIFAR-10's test set)
    heldout_order_key: str | None = None  # secret: with the seed, reproduces the held-out order


@dataclass
class Environment:
    harness: str
    python: str
    platform: str
    runner: str
    device: str
    torch: str | None = None
    cuda: str | None = None
    gpus: list[str] = field(default_factory=list)
    driver: str | None = None
    image: str | None = None
    hostname: str = ""
    isolated: bool = True  # False under the local runner: the entry ran on the host, unsandboxed
    # The fingerprint (harness.fingerprint): what a rerun compares against (`run --reproduce`)
    gpu_details: list[dict[str, Any]] = field(default_factory=list)  # per GPU, read at the run's start
    cpu_model: str | None = None
    cpu_cores: int | None = None  # logical
    kernel: str | None = None
    packages_file: str | None = None  # in the run directory: name==version, one a line
    packages_sha256: str | None = None
    image_digest: str | None = None  # the runtime image's id under Docker
    git_commit: str | None = None  # the harness's checkout; None when not run from git
    memory_enforced: str | None = None  # sandbox runner: "cgroup v1", "cgroup v2" or "monitor" (sampling)


@dataclass
class CurvePoint:
    """One snapshot of the train phase's checkpoints, predicted off the clock (harness.curve)."""

    seconds: float  # when the harness first saw this checkpoint complete, after the train phase's start
    checkpoint: str  # the snapshot's name; `final` is what the official score used
    status: str  # scored | failed
    accuracy: float | None = None  # on the curve set, never the held-out set
    correct: int | None = None
    total: int | None = None
    ci95_low: float | None = None  # Wilson
    ci95_high: float | None = None
    gpu_energy_j: float | None = None  # GPU board energy since the train phase started; None: no GPU read
    cpu_energy_j: float | None = None  # RAPL package energy since the start; None: not readable
    files: int = 0
    bytes: int = 0
    final: bool = False
    detail: str = ""


@dataclass
class Curve:
    """Accuracy against time and energy: the snapshots, each predicted on the curve set."""

    per_class: int
    target: float
    points: list[CurvePoint] = field(default_factory=list)
    time_to_target_s: float | None = None  # at the first point at or above `target`; None: never reached
    gpu_energy_to_target_j: float | None = None
    cpu_energy_to_target_j: float | None = None
    snapshots_seen: int = 0  # complete checkpoints the harness copied (thinned to the kept ones)
    predict_seconds: float = 0.0  # what the curve cost, off the clock
    notes: list[str] = field(default_factory=list)


@dataclass
class Reproduction:
    """`run --reproduce`: the run this one repeats, and what differs between the two."""

    run_id: str
    path: str
    differences: list[str] = field(default_factory=list)
    # What the original's record asked for (its options, as read, and `submission`, its entry folder);
    # what ran is this run's own `options`, `submission` and `environment` (runner, isolated).
    asked: dict[str, Any] = field(default_factory=dict)
    overridden: list[str] = field(default_factory=list)  # the keys of `asked` the command line set instead


@dataclass
class BuildInfo:
    """An entry's own Dockerfile, built before the clock starts (untimed, so bounded)."""

    outcome: str  # built | reused | failed | timed_out
    seconds: float
    network: bool  # True only when the organizer allowed networked builds
    image: str | None = None  # tag
    image_id: str | None = None  # the resulting image's digest (sha256:...)
    log: str | None = None  # file name in the run directory
    detail: str = ""


@dataclass
class EntrySource:
    """An entry handed over as an archive or a repository (harness.unpack), not as a folder."""

    kind: str  # zip | tar | git
    location: str  # the archive's resolved path, or the repository as git+file:///PATH
    sha256: str | None = None  # zip, tar: of the archive's bytes that were unpacked
    commit: str | None = None  # git: the commit whose files were graded
    ref: str | None = None  # git: what was asked for (HEAD, a branch, a tag or a commit)

    @property
    def digest(self) -> str | None:
        """What names exactly what was graded: the archive's sha256, or the repository's commit."""
        return self.sha256 if self.kind != "git" else self.commit

    @classmethod
    def read(cls, value: Any) -> EntrySource | None:
        """A recorded source (result.json's `submission.source`, entry.json's `source`) back; None
        for a folder's (null) and for anything that does not read as one."""
        if not isinstance(value, dict):
            return None
        try:
            return _build(cls, value)
        except (TypeError, ValueError):
            return None


@dataclass
class SubmissionInfo:
    name: str
    path: str  # the entry as given: its folder, archive or repository (resolved)
    train: str
    predict: str
    sha256: str  # of the submission's files, so a score names exactly what was graded
    source: EntrySource | None = None  # an archive's own digest or a repository's commit; None: a folder


@dataclass
class RunResult:
    run_id: str
    status: Status
    reason: str
    submission: SubmissionInfo
    data: DataInfo
    train: PhaseResult
    predict: PhaseResult
    monitor: MonitorSummary
    environment: Environment
    started_at: str
    finished_at: str
    wall_seconds: float
    seed: int
    accuracy: float | None = None
    correct: int | None = None
    total: int | None = None
    score: Score | None = None
    warnings: list[str] = field(default_factory=list)
    build: BuildInfo | None = None
    curve: Curve | None = None  # --curve: accuracy against time and energy, off the clock
    options: dict[str, Any] = field(default_factory=dict)  # RunOptions.record(): what --reproduce reruns
    reproduces: Reproduction | None = None
    schema_version: int = SCHEMA_VERSION
    kind: str = "run"


@dataclass
class SeriesResult:
    """`--repeats N`: N independent seeds of one submission, ranked by their mean."""

    run_id: str
    status: Status  # scored when every repeat scored
    reason: str
    submission: SubmissionInfo
    accuracy_mean: float  # a repeat that did not score counts as 0, as in the competition
    accuracy_std: float
    accuracies: list[float]
    repeats: list[RunResult]
    started_at: str
    finished_at: str
    wall_seconds: float
    accuracy: float | None = None  # = accuracy_mean, so every result.json has `accuracy`
    schema_version: int = SCHEMA_VERSION
    kind: str = "series"


# --- (de)serialisation -------------------------------------------------------


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of a dataclass. Cached: resolving the hints costs far more than
    reading a result, and a leaderboard reads thousands of them."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _build(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner[0], value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in value]
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: _build(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        hints = _field_types(tp)
        return tp(**{k: _build(hints[k], v) for k, v in value.items() if k in hints})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    return value


def from_dict(data: dict[str, Any]) -> RunResult | SeriesResult:
    """Read a result.json back; fields added by later schema versions are ignored."""
    if data.get("schema_version", 0) > SCHEMA_VERSION:
        raise ValueError(
            f"result schema version {data['schema_version']} is newer than this harness "
            f"understands ({SCHEMA_VERSION}); upgrade the harness"
        )
    cls = SeriesResult if data.get("kind") == "series" else RunResult
    return _build(cls, _upgrade(data))


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 result in version 2's names: `data.index_hash` became `data.data_sha256`."""
    runs = data.get("repeats") if data.get("kind") == "series" else [data]
    for run in runs if isinstance(runs, list) else []:
        facts = run.get("data") if isinstance(run, dict) else None
        if isinstance(facts, dict) and "index_hash" in facts:
            facts.setdefault("data_sha256", facts.pop("index_hash"))
    return data
