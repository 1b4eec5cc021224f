"""What a Slurm grading keeps in OUT, beside the plan (all written atomically):

    slurm.json                     the arrays (job ids, their tasks' runs), and per run its
                                   current task, Slurm state, node, attempts and platform failures
    .slurm/scripts/<job>.sh        the batch script each array was submitted with
    .slurm/tasks/<job>_<i>.start.json, .end.json
                                   written by the task on its node: when it started (node), when
                                   the harness ended (exit code); no end marker and no result means
                                   the task died on the way (a platform failure)
    .slurm/logs/<job>_<i>.log      the task's own stdout and stderr
    <entry>/seed-<k>/slurm.json    the run's task, node, state and attempts, for the leaderboard

A run counts as done by its result.json alone (harness.organizer.rundirs.completed_result), whichever
backend wrote it; this file only says what Slurm did on the way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.files import atomic_write_json

STATE_FILE = "slurm.json"
RUN_FILE = "slurm.json"


def load(out: Path) -> dict[str, Any]:
    try:
        state = json.loads((Path(out) / STATE_FILE).read_text())
        if isinstance(state, dict):
            state.setdefault("arrays", [])
            state.setdefault("runs", {})
            return state
    except (OSError, ValueError):
        pass
    return {"kind": "slurm-grading", "schema_version": 1, "arrays": [], "runs": {}}


_saved: dict[Path, str] = {}  # what this process last wrote, per file


def save(out: Path, state: dict[str, Any]) -> None:
    """Write (atomically, fsynced) only when something changed since this process last wrote it: a
    grading of thousands of runs polls for hours, and most polls change nothing."""
    path = Path(out).resolve() / STATE_FILE
    text = json.dumps(state, sort_keys=True)
    if _saved.get(path) == text and path.exists():
        return
    atomic_write_json(path, state)
    _saved[path] = text


def directories(out: Path) -> dict[str, Path]:
    base = Path(out) / ".slurm"
    found = {"scripts": base / "scripts", "tasks": base / "tasks", "logs": base / "logs"}
    for path in found.values():
        path.mkdir(parents=True, exist_ok=True)
    return found


def marker(out: Path, task: str, which: str) -> dict[str, Any] | None:
    """A task's start or end marker; None when absent or torn."""
    try:
        found = json.loads((Path(out) / ".slurm" / "tasks" / f"{task}.{which}.json").read_text())
        return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


def write_run_file(run_dir: Path, record: dict[str, Any]) -> None:
    atomic_write_json(
        run_dir / RUN_FILE,
        {
            "job_id": record.get("task"),
            "node": record.get("node"),
            "state": record.get("state"),
            "attempts": record.get("attempts"),
            "failures": record.get("failures", []),
            "written_at": time.time(),
        },
    )
