"""The report people read: `report.md` and a self-contained `report.html` for a run directory.

Inputs (what the orchestrator leaves in `runs/<run-id>/`): the `RunResult` itself (or its
result.json, read through harness.model.from_dict), `metrics.csv` (the monitor's samples),
`events.jsonl` (the submission's own progress events, read by harness.events), `train.log` /
`predict.log` (fallback for log tails). Every one of the files may be missing, truncated or
malformed; the report says so instead of failing.

One module per job:
    read.py      reading the run directory (result.json, metrics.csv, events.jsonl, logs)
    rows.py      what the report says, as plain rows built once ...
    html.py      ... rendered as report.html (plots from plots.py, inline)
    markdown.py  ... and as report.md
    plots.py     the plots as inline SVG (no plotting library)
    console.py   the summary table printed at the end of a run

Everything that comes from the submission (its name, commands, logs, event names and
values, checkpoint names, reasons, class-folder names) is untrusted and escaped by the one
escaping module, harness.text: HTML through harness.markup (which escapes every value that is
not markup it built), Markdown cells through harness.formatting's `md` / `md_table`, logs
fenced with a fence longer than any backtick run inside them (`text.md_code`), plot labels
made mathtext-safe.
Output is bounded: at most MAX_CHECKPOINT_ROWS checkpoint rows, LOG_TAIL_LINES log lines of
LOG_LINE_CHARS each, MAX_EVENT_FIELDS event fields, CELL_CHARS per cell; the files are
written as UTF-8 with anything unencodable replaced, so no input can stop the report being
written.

Series (`--repeats N`): the top-level report links to each repeat's own
`<repeat-dir>/report.html`. The repeat directory names are taken from the `repeat_dirs`
argument when given; otherwise from a `repeat-NN` component of the repeat's `run_id` when it
has one; otherwise `repeat-01`, `repeat-02`, ... (1-based, in order). Each repeat's report is
written by calling `write_report` on its directory (the orchestrator does this as each repeat
finishes); `write_series_report` only writes the top-level summary.

API:
    write_report(run_dir, result)                          -> None
    write_series_report(run_dir, series, repeat_dirs=None) -> None
    rebuild_report(run_dir)                                -> bool (from its result.json)
    summary_table(result_or_series)                        -> str
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.files import atomic_write_bytes
from harness.formatting import CELL_CHARS
from harness.model import RunResult, SeriesResult
from harness.report import html, markdown
from harness.report.console import summary_table
from harness.report.read import (
    LOG_LINE_CHARS,
    LOG_TAIL_LINES,
    MAX_EVENT_FIELDS,
    Events,
    Metrics,
    read_events,
    read_metrics,
    read_result,
    read_run,
)
from harness.report.rows import MAX_CHECKPOINT_ROWS, NO_GPU_TEXT, repeat_dir_names, repeat_rows

__all__ = [
    "CELL_CHARS",
    "LOG_LINE_CHARS",
    "LOG_TAIL_LINES",
    "MAX_CHECKPOINT_ROWS",
    "MAX_EVENT_FIELDS",
    "NO_GPU_TEXT",
    "Events",
    "Metrics",
    "read_events",
    "read_metrics",
    "read_result",
    "rebuild_report",
    "repeat_dir_names",
    "summary_table",
    "write_report",
    "write_series_report",
]


def _write(path: Path, content: str) -> None:
    """UTF-8, atomically; anything unencodable (a lone surrogate that escaped the escaping) is replaced."""
    atomic_write_bytes(path, content.encode("utf-8", "replace"))


def write_report(run_dir: Path, result: RunResult) -> None:
    """Write `report.md` and `report.html` for one graded run into `run_dir`, atomically."""
    files = read_run(Path(run_dir), result)
    _write(Path(run_dir) / "report.md", markdown.render_run(files))
    _write(Path(run_dir) / "report.html", html.render_run(files))


def write_series_report(run_dir: Path, series: SeriesResult, repeat_dirs: Sequence[str] | None = None) -> None:
    """Write the top-level `report.md` / `report.html` of a `--repeats N` run into `run_dir`.

    `repeat_dirs`: each repeat's directory relative to `run_dir`, in the order of
    `series.repeats`; default as described in the module docstring (`repeat-01`, ...).
    """
    rows = repeat_rows(Path(run_dir), series, repeat_dir_names(series, repeat_dirs))
    _write(Path(run_dir) / "report.md", markdown.render_series(series, rows))
    _write(Path(run_dir) / "report.html", html.render_series(series, rows))


def rebuild_report(run_dir: Path) -> bool:
    """Write the report of a run directory from its result.json. A result.json that does not
    parse into the model gets a report that says why (False); the report is always written."""
    run_dir = Path(run_dir)
    try:
        result = read_result(run_dir / "result.json")
    except ValueError as exc:
        _write(run_dir / "report.md", markdown.unreadable(str(exc)))
        _write(run_dir / "report.html", html.unreadable(str(exc)))
        return False
    if isinstance(result, SeriesResult):
        write_series_report(run_dir, result)
    else:
        write_report(run_dir, result)
    return True
