"""A grading's plan (OUT/grading.json) and what every backend derives from it: the entries, the order
of their runs, each run's `python -m harness run` command, and which runs still need one.

The local backend (harness.organizer.grade) runs those commands as child processes, the Slurm
backend (harness.organizer.slurm) as array tasks; both keep the resume rule of harness.organizer.rundirs.

Fairness: every entry gets the same seeds, so the same 5000 training images and the same held-out
images per seed (paired comparison). A failed repeat counts as accuracy 0. The runs go seed by seed,
with the reference entry (if any) first in every round and the other entries rotated so that nobody
always runs last.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import text, unpack
from harness.console import Progress
from harness.contract import check_commands, load_submission, submission_digest
from harness.errors import ContractError
from harness.files import atomic_write_json
from harness.formatting import utc_now
from harness.model import EntrySource, to_dict
from harness.options import OPTIONS, RunOptions
from harness.organizer.rundirs import GradeError, completed_result, remove_unpacked, run_dir, set_aside

PLAN_FILE = "grading.json"
# The options every run of a grading shares, so a resumed grading refuses another value. A plan written
# before an option existed lacks its key: every run then had the option's default.
PLAN_DEFAULTS = {o.key: o.default for o in OPTIONS if o.planned}


@dataclass
class Entry:
    id: str
    path: str
    reference: bool = False
    name: str | None = None
    digest: str | None = None
    source: EntrySource | None = None  # an archive's or a repository's (its digest); None: a folder
    invalid: str | None = None


@dataclass
class Job:
    entry: Entry
    seed: int

    @property
    def key(self) -> str:
        return f"{self.entry.id}/seed-{self.seed}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "entry"


def read_plan(out: Path) -> dict | None:
    path = out / PLAN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise GradeError(f"{path} is damaged ({exc}); grade into a new --out directory") from None


def make_plan(
    out: Path, run_options: RunOptions, entry_dirs: list[Path], reference: Path | None, write: bool = True
) -> dict:
    """Create or extend grading.json (`write`: False for a dry run); on resume, refuse options that
    would break the pairing."""
    options = run_options.record()
    plan = read_plan(out)
    if plan is None:
        plan = {
            "kind": "grading",
            "schema_version": 1,
            "created_at": utc_now(),
            "options": options,
            "seeds": [options["seed"] + i for i in range(options["repeats"])],
            "entries": [],
        }
    else:
        before = {k: plan["options"].get(k, default) for k, default in PLAN_DEFAULTS.items()}
        changed = [
            f"--{k.replace('_', '-')} {before[k]!r} -> {options.get(k)!r}"
            for k in PLAN_DEFAULTS
            if before[k] != options.get(k)
        ]
        if changed:
            raise GradeError(
                f"{out} was graded with other options ({'; '.join(changed)}); resume with the same "
                "options, or grade into a new --out directory"
            )
    known = {e["path"]: e for e in plan["entries"]}
    taken = {e["id"] for e in plan["entries"]}
    suffix: dict[str, int] = {}  # per name, the next number to try: many entries of one name stay linear
    wanted = [(d, False) for d in entry_dirs] + ([(reference, True)] if reference is not None else [])
    for directory, is_reference in wanted:
        path = unpack.describe(directory)
        if path in known:
            known[path]["reference"] = known[path].get("reference", False) or is_reference
            continue
        try:
            with unpack.open_source(directory) as source:
                base = load_submission(source.path).name
        except Exception:  # an unreadable entry still gets an id, and its reason in entry.json
            base = slug(unpack.source_name(path))
        entry_id = base
        n = suffix.get(base, 2)
        while entry_id in taken or entry_id in (PLAN_FILE, "leaderboard"):
            entry_id = f"{base}-{n}"
            n += 1
        suffix[base] = n
        taken.add(entry_id)
        record = {"id": entry_id, "path": path, "reference": is_reference}
        plan["entries"].append(record)
        known[path] = record
    plan["updated_at"] = utc_now()
    if write:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / PLAN_FILE, plan)
    return plan


def check_entry(entry: Entry, runner: str) -> None:
    try:
        with unpack.open_source(entry.path) as source:  # an archive or a repository: unpacked, bounded
            entry.source = source.origin  # recorded even when the manifest inside is refused
            submission = load_submission(source.path)
            entry.name = submission.name
            entry.digest = submission_digest(submission.path)
            check_commands(submission, runner)
        entry.invalid = None
    except ContractError as exc:
        entry.invalid = text.clean(exc, limit=500)
    except OSError as exc:
        entry.invalid = text.clean(f"cannot read the submission: {exc}", limit=500)
    except Exception as exc:  # whatever one entry's files do, the others are still graded
        entry.invalid = text.clean(f"the harness could not read this entry ({type(exc).__name__}: {exc})", limit=500)


class Grading:
    """One grading directory's plan: its entries and seeds, the order of its runs, each run's command,
    and the runs still to do. The backends run them and keep `counts`."""

    def __init__(self, out: Path, plan: dict, options: RunOptions, progress: Progress):
        self.out = out
        self.options = options
        self.progress = progress
        self.entries = [Entry(e["id"], e["path"], e.get("reference", False)) for e in plan["entries"]]
        self.seeds: list[int] = plan["seeds"]
        # --until-resolved: the seeds some entries got beyond the base ones (harness.organizer.until)
        self.extra_seeds: dict[str, list[int]] = plan.get("extra_seeds") or {}
        self.counts = {"done_before": 0, "ran": 0, "set_aside": 0}

    def entry_seeds(self, entry_id: str) -> list[int]:
        return self.seeds + self.extra_seeds.get(entry_id, [])

    def jobs(self) -> list[Job]:
        """Seed-major order; the reference first in each round, the others rotated per round. An extra
        seed's round holds only the entries that got it (the same seed for each, so they stay paired)."""
        valid = [e for e in self.entries if not e.invalid]
        extra = sorted({s for seeds in self.extra_seeds.values() for s in seeds} - set(self.seeds))
        order = []
        for round_no, seed in enumerate(self.seeds + extra):
            taking = [e for e in valid if seed in self.seeds or seed in self.extra_seeds.get(e.id, [])]
            reference = [e for e in taking if e.reference]
            others = [e for e in taking if not e.reference]
            shift = round_no % len(others) if others else 0
            for entry in reference + others[shift:] + others[:shift]:
                order.append(Job(entry, seed))
        return order

    def command(self, job: Job, gpu: str | None) -> list[str]:
        """The child `run` of one job: exactly the plan's options, for this seed (and GPU)."""
        options = dataclasses.replace(self.options, seed=job.seed, repeats=1, gpu=gpu)
        return [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--submission",
            job.entry.path,
            "--runs-dir",
            str(self.out.resolve() / job.entry.id),
            "--run-id",
            f"seed-{job.seed}",
            "--quiet",
            *options.to_argv(),
        ]

    def prepare(self, active: frozenset[str] | set[str] = frozenset()) -> list[Job]:
        """Check the entries; the jobs without a final result, their unfinished attempts kept aside.
        `active`: runs a cluster still queues or runs (left alone, not run twice)."""
        live = {key.partition("/")[0] for key in active}
        for entry in self.entries:
            if entry.id not in live:
                remove_unpacked(self.out / entry.id)  # no run of it is live: a copy there is a killed run's
            check_entry(entry, self.options.runner)
            atomic_write_json(
                self.out / entry.id / "entry.json",
                {
                    "id": entry.id,
                    "path": entry.path,
                    "name": entry.name,
                    "reference": entry.reference,
                    "sha256": entry.digest,
                    "source": to_dict(entry.source),
                    "invalid": entry.invalid,
                    "checked_at": utc_now(),
                },
            )
            if entry.invalid:
                self.progress.say(f"{entry.id}: not gradable, every seed counts as 0: {entry.invalid}")
        pending = []
        for job in self.jobs():
            directory = run_dir(self.out, job)
            if completed_result(directory) is not None:
                self.counts["done_before"] += 1
                continue
            if job.key in active:
                continue
            moved = set_aside(directory)
            if moved:
                self.counts["set_aside"] += 1
                self.progress.say(
                    f"{job.key}: an unfinished earlier attempt was kept as {moved.name}; running it again"
                )
            pending.append(job)
        return pending
