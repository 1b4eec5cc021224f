"""`run --reproduce RUN_DIR`: the same entry, options, seed(s) and data again, in a new run directory.

The options come from the original's result.json (`options`, RunOptions.record()); the new run
says what differs from the original: the environment (harness.fingerprint), the entry's files,
the images drawn. The original is only read, never written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from harness.errors import UsageError
from harness.fingerprint import differences
from harness.model import RunResult, SeriesResult, from_dict
from harness.options import RunOptions


def load(original: Path, runs_dir: Optional[Path] = None,
         run_id: Optional[str] = None) -> tuple[RunOptions, list[tuple[Path, RunResult]]]:
    """The options that rerun `original`, and its run(s), one per repeat."""
    original = Path(original)
    path = original / "result.json"
    try:
        result = from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UsageError(f"--reproduce {original}: no result.json there; name a run directory under runs/") from None
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"--reproduce {original}: its result.json cannot be read ({exc})") from None
    if isinstance(result, SeriesResult):
        runs = [(original / f"repeat-{i + 1:02d}", r) for i, r in enumerate(result.repeats)]
    else:
        runs = [(original, result)]
    if not runs or not runs[0][1].options:
        raise UsageError(f"--reproduce {original}: its result.json records no options (written by an older "
                         "harness); rerun it with the same flags by hand")
    first = runs[0][1]
    options = RunOptions.from_record(first.options, submission=Path(first.submission.path), seed=first.seed,
                                     repeats=len(runs), runs_dir=Path(runs_dir) if runs_dir else original.parent,
                                     run_id=run_id)
    return options.validate(), runs


def compare(original: RunResult, new: RunResult) -> list[str]:
    """What differs between the original run and its reproduction, in words (empty: nothing)."""
    out = differences(original.environment, new.environment)
    if original.submission.sha256 != new.submission.sha256:
        out.insert(0, f"the entry's files changed: sha256 {original.submission.sha256[:12]} -> "
                      f"{new.submission.sha256[:12]}")
    if original.data.data_sha256 != new.data.data_sha256:
        out.insert(0, "the images differ (data_sha256): the data source changed since the original run")
    return out
