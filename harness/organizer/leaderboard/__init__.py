"""The leaderboard of a grading directory: `leaderboard.md`, `.csv`, `.html` and `runs.csv`.

Built from the files alone (grading.json, <entry>/entry.json, <entry>/seed-<k>/result.json),
so it can be rebuilt at any time, also while a grading is still running.

Scores: a seed that failed in any way (crash, no checkpoint, invalid predictions,
an entry that is not gradable at all) counts as accuracy 0, as in the competition;
a seed not yet run is `pending` and left out (the entry is marked incomplete).
Ranking by the mean over seeds, equal scores sharing a rank; tiers of entries not told apart
(ranking.py states the rule). Statistics: see harness/organizer/stats.py.
  * 95% interval: Student-t interval of the mean across seeds (main figure);
    pooled Wilson interval over all held-out predictions (secondary, CSV and HTML).
  * Tiers: each entry compared once with the head of its tier, on the seeds both scored, with a
    Bonferroni-corrected one-sided paired t-test; a seed failed where the head scored separates.
Everything a submission controls (names, paths, reasons, log lines) is escaped by the one
escaping module, harness.text: in HTML through harness.markup (escaping is its default), in
Markdown through harness.formatting's `md` / `md_table`, and in CSV the text as it is (lone
surrogates replaced) behind a formula guard. Every run is read on its own, through the typed model
(harness.model.from_dict): a result.json that does not parse into it is that seed's
`harness_error` with the reason. The training throughput comes from the run's events.jsonl
through harness.events (its one reader and cap).

    board.py   reading the grading directory: build() -> Board
    ranking.py ranks and tiers: the ranking rule
    tables.py  the cells every output shares; leaderboard.md, leaderboard.csv, runs.csv, the console
    page.py    leaderboard.html
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import UsageError
from harness.files import atomic_write_bytes
from harness.organizer.leaderboard.board import (
    Board,
    build,
    seed_run,
    training_throughput,
    verdict_warnings,
)
from harness.organizer.leaderboard.page import render_html
from harness.organizer.leaderboard.ranking import ALPHA, RANK_KEYS
from harness.organizer.leaderboard.rows import FAILED_STATUSES, PENDING, Row, SeedRun
from harness.organizer.leaderboard.tables import console_table, render_csv, render_md, render_runs_csv

__all__ = [
    "ALPHA",
    "FAILED_STATUSES",
    "PENDING",
    "RANK_KEYS",
    "Board",
    "Row",
    "SeedRun",
    "add_parser",
    "build",
    "cmd_leaderboard",
    "console_table",
    "render_csv",
    "render_html",
    "render_md",
    "render_runs_csv",
    "seed_run",
    "training_throughput",
    "verdict_warnings",
    "write_leaderboard",
    "Publisher",
]


def write_leaderboard(out: Path, rank_by: str = "accuracy") -> Board:
    out = Path(out)
    board = build(out, rank_by)
    for name, render in (
        ("leaderboard.md", render_md),
        ("leaderboard.csv", render_csv),
        ("runs.csv", render_runs_csv),
        ("leaderboard.html", render_html),
    ):
        atomic_write_bytes(out / name, render(board).encode("utf-8", "replace"))
    return board


REBUILD_EVERY_S = 5.0  # during a grading: at most one rebuild per this many seconds ...
REBUILD_SHARE = 0.2  # ... and at most this share of the grader's time spent rebuilding


class Publisher:
    """The leaderboard rebuilt during a grading, after collected runs, but not after every one: a
    rebuild waits at least REBUILD_EVERY_S since the last one, and at least as long as the last
    one took / REBUILD_SHARE, so that a big board does not slow the collection of runs. `flush()`
    writes what was skipped (the grading stopped); the grader always writes the board at its end."""

    def __init__(
        self,
        out: Path,
        rank_by: str = "accuracy",
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[Path, str], object] = write_leaderboard,
    ):
        self.out, self.rank_by, self.clock, self.write = out, rank_by, clock, write
        self.next_at = float("-inf")
        self.skipped = False

    def __call__(self) -> None:
        if self.clock() < self.next_at:
            self.skipped = True
            return
        self.flush(always=True)

    def flush(self, always: bool = False) -> None:
        if not (always or self.skipped):
            return
        start = self.clock()
        self.write(self.out, self.rank_by)
        took = self.clock() - start
        self.next_at = start + took + max(REBUILD_EVERY_S, took / REBUILD_SHARE)
        self.skipped = False


def add_parser(commands) -> None:
    p = commands.add_parser("leaderboard", help="rebuild leaderboard.{md,csv,html} of a grading directory")
    p.add_argument("grading_dir", type=Path, metavar="GRADING_DIR")
    add_rank_by(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=cmd_leaderboard)


def add_rank_by(parser) -> None:
    parser.add_argument(
        "--rank-by",
        choices=list(RANK_KEYS),
        default="accuracy",
        help="accuracy: the mean final accuracy, the competition's (default); time-to-target / "
        "energy-to-target: the mean time or GPU board energy to reach --target on the curve "
        "(runs graded with --curve; an entry short of it on any seed ranks after those that "
        "reached it)",
    )


def cmd_leaderboard(args, progress) -> int:
    if not (Path(args.grading_dir) / "grading.json").is_file():
        raise UsageError(f"{args.grading_dir} is not a grading directory (no grading.json); run `harness grade` first")
    board = write_leaderboard(args.grading_dir, args.rank_by)
    print(console_table(board))
    return 0
