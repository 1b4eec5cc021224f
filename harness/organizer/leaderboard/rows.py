"""One entry's line of the leaderboard (`Row`) and the seeds it ran (`SeedRun`): what `board` reads from the
grading's run folders and what `ranking` orders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from harness.model import Status
from harness.organizer import stats

PENDING = "pending"  # a seed not run yet, or interrupted: it runs (again) when the grading resumes
FAILED_STATUSES = tuple(
    s.value for s in (Status.FAILED, Status.INVALID_PREDICTIONS, Status.INVALID_ENTRY, Status.HARNESS_ERROR)
)


@dataclass
class SeedRun:
    seed: int
    status: str  # a harness.model.Status value (not interrupted), or PENDING
    accuracy: float | None = None  # the counted value: 0.0 for failures, None when pending
    correct: int | None = None
    total: int | None = None
    train_s: float | None = None
    train_outcome: str | None = None
    predict_s: float | None = None
    predict_cpu_s: float | None = None  # sampled (harness.monitor.Monitor.compute)
    predict_over_default: bool = False  # predict was granted more than the default for its training budget
    energy_j: float | None = None
    images_per_s: float | None = None
    started_at: str | None = None
    reason: str = ""
    directory: str = ""
    data_sha256: str | None = None
    sha256: str | None = None
    source_kind: str | None = None  # zip | tar | git; None: the entry is a folder
    source_digest: str | None = None  # the archive's sha256 or the commit this run graded
    isolated: bool = True  # False: the entry ran on the organizer's host (--runner local)
    heldout_public: bool = False  # the held-out images were a published split
    build_network: bool = False  # the entry's own Dockerfile was built with the network
    time_to_target_s: float | None = None  # --curve: first snapshot at or above the target; None: not reached
    energy_to_target_j: float | None = None  # GPU board energy at that snapshot; None: not reached or no GPU
    node: str | None = None  # the host the run ran on (its environment's hostname)
    job_id: str | None = None  # on Slurm: the array task "<job>_<index>" of the counted attempt
    slurm_state: str | None = None  # on Slurm: the task's final state (COMPLETED, FAILED, ...)
    attempts: int | None = None  # on Slurm: submissions of this run, platform failures included

    @property
    def finished(self) -> bool:
        return self.status != PENDING

    @property
    def scored(self) -> bool:
        """Finished with a score; a finished seed that is not scored failed (and counts 0)."""
        return self.status == Status.SCORED.value


@dataclass
class Row:
    id: str
    path: str
    reference: bool
    invalid: str | None
    runs: list[SeedRun]
    rank: int = 0
    mean: float | None = None
    ci: stats.Interval | None = None
    std: float | None = None
    wilson: tuple[float, float] | None = None
    tier: int | None = None  # accuracy ranking only; None when nothing finished (see ranking.py)
    versus: str | None = None  # the entry this one was compared with: the head of its tier, or the one before
    p: float | None = None  # one-sided paired t-test p-value of that comparison (None: no test made)
    why: str = ""  # how that comparison was decided
    within_noise: bool = False  # not separable from `versus`: in its tier
    seeds_why: str = ""  # why it got more seeds than the plan's base seeds (grade --until-resolved)
    checked_source: tuple[str, str] | None = None  # (kind, digest) its check read (entry.json); None: a folder

    @property
    def label(self) -> str:
        """The entry's id (its yaml name), and its folder when that is named otherwise."""
        folder = PurePath(self.path).name
        return self.id if not folder or folder == self.id else f"{self.id} ({folder}/)"

    @property
    def sources(self) -> list[tuple[str, str]]:
        """(kind, digest) of the archive or commit graded, each distinct one the finished runs recorded,
        in seed order (more than one: the branch moved or the archive was replaced meanwhile); before a
        run finished, or for an entry not gradable, the one its check read. Empty for a folder."""
        graded = dict.fromkeys((r.source_kind or "", r.source_digest) for r in self.finished if r.source_digest)
        return list(graded) or ([self.checked_source] if self.checked_source else [])

    def run_at(self, seed: int) -> SeedRun | None:
        """This entry's run of `seed`, or None: with --until-resolved not every entry gets every seed."""
        return next((r for r in self.runs if r.seed == seed), None)

    @property
    def finished(self) -> list[SeedRun]:
        return [r for r in self.runs if r.finished]

    @property
    def complete(self) -> bool:
        return all(r.finished for r in self.runs)

    @property
    def failures(self) -> int:
        return sum(1 for r in self.runs if r.status in FAILED_STATUSES)

    def mean_of(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return sum(values) / len(values) if values else None

    def mean_to_target(self, attr: str) -> float | None:
        """The mean over finished seeds, only when every one of them reached the target (else None)."""
        values = [getattr(r, attr) for r in self.finished]
        return sum(values) / len(values) if values and None not in values else None
