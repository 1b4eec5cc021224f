"""The leaderboard: ranking, escaping of submission-provided text, and rendering in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.files import atomic_write_json
from harness.model import Outcome, to_dict
from harness.organizer import leaderboard
from harness.organizer.leaderboard import board as board_mod
from harness.organizer.leaderboard import ranking, tables

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome") if os.access(p, os.X_OK)),
    None,
)
EVIL = "<script>alert('x')</script>"
OVERFLOW_PROBE = (
    "<script>addEventListener('load', () => document.body.setAttribute('data-overflow', "
    "[...document.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1 && "
    "getComputedStyle(e).overflowX != 'visible').map(e => e.className + ':' + e.scrollWidth)"
    ".join(' ')))</script>"
)


def fake_run(directory: Path, seed: int, status: str, accuracy: float | None, reason: str = "", energy=None):
    """A whole result.json, as the harness writes it (the leaderboard reads it through the typed model)."""
    from tests.test_report import make_result

    scored = status == "scored"
    result = to_dict(
        make_result(
            scored=scored,
            gpu=bool(energy),
            seed=seed,
            train_outcome=Outcome.KILLED_AT_DEADLINE if scored else Outcome.CRASHED,
        )
    )
    result.update(
        {
            "status": status,
            "reason": reason,
            "score": None,
            "accuracy": accuracy,
            "correct": None if accuracy is None else round(accuracy * 1000),
            "total": 1000,
            "started_at": f"2026-01-01T00:0{seed}:00+00:00",
        }
    )
    result["data"].update({"data_sha256": f"hash-{seed}", "train_count": 5000, "eval_count": 1000})
    result["train"].update({"seconds": 600.0 - seed, "outcome": "killed_at_deadline" if scored else "crashed"})
    if energy:
        result["monitor"]["gpus"][0]["energy_j"] = energy
    result["submission"]["sha256"] = "abc"
    atomic_write_json(directory / "result.json", result)
    (directory / "events.jsonl").write_text(json.dumps({"event": "epoch", "epoch": 10, "t_s": 500.0}) + "\n")


def make_grading(root: Path) -> Path:
    """Four entries over 3 seeds: a clear winner, two within noise, one crashing; one seed still pending."""
    scores = {
        "fast-net": [0.91, 0.92, 0.915],
        "mid-a": [0.80, 0.83, 0.79],
        "mid-b": [0.81, 0.80, None],  # seed 2 pending
        "crashy": [0.85, "crash", 0.84],
    }
    entries = []
    for name, seeds in scores.items():
        path = f"/entries/{EVIL}/{name}" if name == "crashy" else f"/entries/{name}"
        entries.append({"id": name, "path": path, "reference": name == "fast-net"})
        atomic_write_json(root / name / "entry.json", {"id": name, "path": path, "invalid": None})
        for seed, value in enumerate(seeds):
            d = root / name / f"seed-{seed}"
            d.mkdir(parents=True)
            if value == "crash":
                fake_run(d, seed, "failed", None, reason=f"train crashed: {EVIL} | =cmd")
            elif value is not None:
                fake_run(d, seed, "scored", value, energy=41_000.0 + seed)
    atomic_write_json(
        root / "grading.json",
        {
            "kind": "grading",
            "schema_version": 1,
            "seeds": [0, 1, 2],
            "entries": entries,
            "options": {
                "data": "tar:cifar.tar.gz",
                "budget": 600.0,
                "train_per_class": 500,
                "eval_per_class": 100,
                "runner": "docker",
                "device": "cuda",
                "repeats": 3,
                "seed": 0,
            },
        },
    )
    return root


def test_ranking_ties_failures_and_pending(tmp_path):
    board = leaderboard.write_leaderboard(make_grading(tmp_path))
    by_id = {r.id: r for r in board.rows}
    assert [r.id for r in board.rows] == ["fast-net", "mid-a", "mid-b", "crashy"]
    assert by_id["crashy"].mean == pytest.approx((0.85 + 0 + 0.84) / 3)  # the crash counts as 0
    assert by_id["crashy"].failures == 1
    assert not by_id["mid-b"].complete and len(by_id["mid-b"].finished) == 2
    # tiers: mid-a is separable from the leader, mid-b is not from mid-a, crashy failed a seed mid-a scored
    assert [r.tier for r in board.rows] == [1, 2, 2, 3]
    assert by_id["mid-b"].within_noise and by_id["mid-b"].versus == "mid-a"
    assert not by_id["mid-a"].within_noise and by_id["mid-a"].versus == "fast-net" and by_id["mid-a"].p < board.level
    assert by_id["crashy"].p is None and "failed seed 1" in by_id["crashy"].why
    assert by_id["fast-net"].mean_of("energy_j") == pytest.approx(41_001.0)
    assert by_id["fast-net"].runs[0].images_per_s == pytest.approx(10 * 5000 / 500.0)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))
    assert rows[3]["entry"] == "crashy" and rows[3]["accuracy_seed_1"] == "0.000000"
    assert rows[2]["accuracy_seed_2"] == "" and rows[2]["status"].startswith("incomplete")
    runs = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert len(runs) == 12
    assert [r["reason"] for r in runs if r["status"] == "failed"][0].startswith("train crashed")


def test_submission_text_is_escaped_everywhere(tmp_path):
    leaderboard.write_leaderboard(make_grading(tmp_path))
    page = (tmp_path / "leaderboard.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    md = (tmp_path / "leaderboard.md").read_text()
    assert "<script" not in md and "&lt;script&gt;" in md and "\\| =cmd" in md
    runs_csv = (tmp_path / "runs.csv").read_text()
    assert EVIL in runs_csv  # plain text in CSV, quoted by the csv module, never a formula
    assert all(not cell.startswith("=") for row in csv.reader(io.StringIO(runs_csv)) for cell in row)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium at /usr/bin/chromium: `apt-get install -y chromium` "
    "to render the leaderboard HTML in a headless browser",
)
def test_leaderboard_html_renders_in_headless_chromium(tmp_path):
    make_grading(tmp_path / "grading")
    leaderboard.write_leaderboard(tmp_path / "grading")
    page = tmp_path / "grading" / "leaderboard.html"
    shot = tmp_path / "leaderboard.png"
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "fast-net" in dom.stdout and "<svg" in dom.stdout and "Tier 2" in dom.stdout
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr
    # At 1200 px nothing scrolls sideways (no column hidden): the page reports any element that does.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", OVERFLOW_PROBE + "</body>"))
    dom = subprocess.run(
        base + ["--window-size=1200,900", "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert 'data-overflow=""' in dom.stdout, re.findall(r'data-overflow="[^"]*"', dom.stdout)
    run = subprocess.run(
        base + ["--window-size=1200,1300", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    artifacts = os.environ.get("HAET_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "leaderboard.png")
        shutil.copy(page, Path(artifacts) / "leaderboard.html")
    print(f"screenshot: {shot}")


def test_an_entry_is_shown_with_its_folder_when_that_is_named_otherwise(tmp_path):
    out = make_grading(tmp_path)
    plan = json.loads((out / "grading.json").read_text())
    plan["entries"][0]["path"] = "/submissions/team-7-final"  # yaml name fast-net, folder team-7-final
    (out / "grading.json").write_text(json.dumps(plan))
    board = leaderboard.write_leaderboard(out)
    labels = {r.id: r.label for r in board.rows}
    assert labels["fast-net"] == "fast-net (team-7-final/)"
    assert labels["mid-a"] == "mid-a", "a folder named like the entry is not repeated"
    assert "fast-net (team-7-final/)" in (out / "leaderboard.md").read_text()
    assert "fast-net (team-7-final/)" in leaderboard.console_table(board)


def test_an_archive_or_a_commit_is_shown_by_its_digest_and_a_folder_by_none(tmp_path):
    """The digest the runs recorded (each one, when a branch moved between seeds), the check's for an
    entry that never ran, and nothing for a folder."""
    root = make_grading(tmp_path)
    archive, refused, before, after = "a" * 64, "b" * 64, "1" * 40, "2" * 40

    def source(kind: str, digest: str) -> dict:
        git = kind == "git"
        return {
            "kind": kind,
            "location": "/entries/x",
            "sha256": None if git else digest,
            "commit": digest if git else None,
            "ref": "main" if git else None,
        }

    for entry, seed, kind, digest in [
        *[("mid-a", s, "zip", archive) for s in range(3)],
        ("fast-net", 0, "git", before),
        ("fast-net", 1, "git", before),
        ("fast-net", 2, "git", after),  # the branch moved before seed 2
    ]:
        path = root / entry / f"seed-{seed}" / "result.json"
        result = json.loads(path.read_text())
        result["submission"]["source"] = source(kind, digest)
        path.write_text(json.dumps(result))
    atomic_write_json(  # refused after it was unpacked: its check recorded the archive
        root / "crashy" / "entry.json", {"id": "crashy", "invalid": "bad name", "source": source("zip", refused)}
    )
    atomic_write_json(root / "mid-b" / "entry.json", {"id": "mid-b", "source": {"kind": "zip"}})  # unreadable

    board = leaderboard.write_leaderboard(root)
    sources = {r.id: r.sources for r in board.rows}
    assert sources == {
        "mid-a": [("zip", archive)],
        "fast-net": [("git", before), ("git", after)],
        "crashy": [("zip", refused)],
        "mid-b": [],
    }
    md = {line.split(" | ")[2]: line for line in (root / "leaderboard.md").read_text().splitlines() if " | " in line}
    assert md["mid-a"].endswith("| zip aaaaaaaaaaaa |")
    assert md["fast-net (reference)"].endswith("| git 111111111111, git 222222222222 |")
    assert md["crashy"].endswith("| zip bbbbbbbbbbbb |") and md["mid-b"].endswith("| — |")
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO((root / "leaderboard.csv").read_text()))}
    assert (rows["mid-a"]["source_kind"], rows["mid-a"]["source_digest"]) == ("zip", archive)
    assert rows["fast-net"]["source_digest"] == f"{before} {after}" and rows["fast-net"]["source_kind"] == "git"
    assert rows["mid-b"]["source_kind"] == rows["mid-b"]["source_digest"] == ""
    runs = {(r["entry"], r["seed"]): r for r in csv.DictReader(io.StringIO((root / "runs.csv").read_text()))}
    assert runs["fast-net", "2"]["source_digest"] == after and runs["mid-b", "0"]["source_digest"] == ""
    page = {row.split("</div>")[0]: row for row in (root / "leaderboard.html").read_text().split('<div class="entry">')}
    html = {key.split("<")[0]: row.split("</td>")[0] for key, row in page.items()}
    assert f'title="{archive}">zip aaaaaaaaaaaa</div>' in html["mid-a"]
    assert "git 111111111111, git 222222222222" in html["fast-net"]
    assert "zip " not in html["mid-b"] and "git " not in html["mid-b"], "a folder: no digest line"


def test_predict_time_is_shown_and_a_predict_budget_over_the_default_is_a_warning(tmp_path):
    """Predict's seconds per entry (mean, per seed, its sampled CPU seconds); an entry graded with
    more predict time than the default for its training budget is named in a warning."""
    root = make_grading(tmp_path)
    for path in root.glob("*/seed-*/result.json"):
        result = json.loads(path.read_text())
        slow = path.parts[-3] == "mid-a"  # granted 120 s at a 600 s budget (default 60 s), and it used them
        result["train"]["budget_s"] = 600.0
        result["predict"].update(
            budget_s=120.0 if slow else 60.0,
            seconds=110.0 if slow else 5.0,
            cpu_seconds=200.0 if slow else 8.0,
            outcome="completed",
        )
        atomic_write_json(path, result)
    board = leaderboard.write_leaderboard(root)
    warning = next(w for w in board.warnings if w.startswith("predict over its default"))
    assert "mid-a" in warning and "fast-net" not in warning and "predict-phase compute can buy accuracy" in warning
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text()))}
    assert rows["mid-a"]["predict_seconds_mean"] == "110.000" and rows["fast-net"]["predict_seconds_seed_0"] == "5.000"
    runs = [r for r in csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())) if r["entry"] == "mid-a"]
    assert {r["predict_seconds"] for r in runs} == {"110.000"} and {r["predict_cpu_seconds"] for r in runs} == {
        "200.00"
    }
    text = (tmp_path / "leaderboard.md").read_text()
    assert "Predict time (mean)" in text and "110.0 s" in text


# --- the ranking rule (harness.organizer.leaderboard.ranking), on boards built in memory --------

FAIL = "fail"
OPTIONS = {
    "data": "tar:cifar.tar.gz",
    "budget": 600.0,
    "train_per_class": 500,
    "eval_per_class": 100,
    "runner": "docker",
    "device": "cuda",
}


def board_of(scores: dict, rank_by: str = "accuracy") -> leaderboard.Board:
    """A board from {entry: per-seed accuracy, FAIL or None (pending)}, ranked and tiered as `build` does."""
    rows = []
    for name, seeds in scores.items():
        runs = [
            leaderboard.SeedRun(k, leaderboard.PENDING)
            if v is None
            else leaderboard.SeedRun(k, "failed", 0.0, 0, 1000)
            if v == FAIL
            else leaderboard.SeedRun(k, "scored", v, round(v * 1000), 1000)
            for k, v in enumerate(seeds)
        ]
        row = leaderboard.Row(name, f"/entries/{name}", False, None, runs)
        board_mod.summarize(row)
        rows.append(row)
    ranking.rank(rows, rank_by)
    level = ranking.tiers(rows) if rank_by == "accuracy" else None
    n_seeds = max(len(s) for s in scores.values())
    return leaderboard.Board("/grading", OPTIONS, list(range(n_seeds)), rows, level, [], "now", rank_by)


def field(board: leaderboard.Board, name: str) -> dict:
    return {r.id: getattr(r, name) for r in board.rows}


def spread(base: float, gaps=(0.0, 0.004, -0.003, 0.006, -0.005)) -> list[float]:
    return [round(base + g, 3) for g in gaps]


def test_a_failed_seed_never_brings_an_entry_within_noise_of_the_leader():
    # 15 points behind the leader on every seed both scored, and one more failed: counted as 0, its
    # differences have a huge variance, and the old two-sided test called it "within noise" (p = 0.1)
    leader = spread(0.90)
    trailer = [round(x - 0.15, 3) for x in leader[:4]] + [FAIL]
    assert board_mod.stats.paired_t_test(leader, [0 if x == FAIL else x for x in trailer]).p > 0.05
    others = {f"mid-{i}": spread(0.60 - i / 100) for i in range(20)}
    board = board_of({"leader": leader, "trailer": trailer, **others})
    row = next(r for r in board.rows if r.id == "trailer")
    assert row.tier == 2 and not row.within_noise and row.versus == "leader"
    assert row.why == "failed seed 4, which leader scored"
    assert "none" == tables.ties_text(board, row)


def test_an_entry_failing_only_where_the_leader_failed_too_is_compared_on_the_rest():
    board = board_of({"a": [0.90, 0.91, FAIL, 0.92], "b": [0.905, 0.89, FAIL, 0.925]})
    b = board.rows[1]
    assert b.within_noise and b.tier == 1 and b.p is not None and "on 3 seeds" in b.why


def test_equal_scores_share_a_rank_and_a_tier():
    board = board_of(
        {
            "zeta": [0.80, 0.82, 0.81],
            "alpha": [0.80, 0.82, 0.81],  # identical runs
            "mean-same": [0.81, 0.81, 0.81],
            "next": [0.60, 0.61, 0.62],
        }
    )
    assert field(board, "rank") == {"alpha": 1, "mean-same": 1, "zeta": 1, "next": 4}  # 1, 1, 1, 4
    assert set(field(board, "tier").values()) == {1, 2} and field(board, "tier")["zeta"] == 1
    assert [r.id for r in board.rows][:3] == ["alpha", "mean-same", "zeta"]  # in a shared rank: by id
    assert field(board, "why")["zeta"] == "same score"


def test_equal_scores_are_judged_together():
    # b alone is within noise of the leader (high variance), c has b's score but failed a seed the
    # leader scored: the two share rank 2, so they share the tier the failure puts c in
    board = board_of(
        {"a": [0.90, 0.90, 0.90, 0.90, 0.90], "b": [0.95, 0.95, 0.95, 0.15, 0.0], "c": [0.75, 0.75, 0.75, 0.75, FAIL]}
    )
    assert field(board, "rank") == {"a": 1, "b": 2, "c": 2}
    assert field(board, "tier") == {"a": 1, "b": 2, "c": 2}
    assert "separable with its equal score: c" in field(board, "why")["b"]


def test_zero_variance_differences():
    board = board_of({"a": [0.90, 0.91, 0.92], "b": [0.89, 0.90, 0.91], "c": [0.89, 0.90, 0.91]})
    assert field(board, "tier") == {"a": 1, "b": 2, "c": 2}  # one point behind on every seed: no noise at all
    assert field(board, "p")["b"] == 0.0 and field(board, "rank") == {"a": 1, "b": 2, "c": 2}


def test_two_seeds():
    board = board_of({"a": [0.90, 0.92], "b": [0.85, 0.90], "c": [0.20, 0.21]})
    # one degree of freedom: only a gap much larger than its spread separates (c: 70 ± 0.5 points)
    assert field(board, "tier") == {"a": 1, "b": 1, "c": 2} and board.level == 0.025
    assert "on 2 seeds" in field(board, "why")["c"] and 0 < field(board, "p")["c"] < 0.025 < field(board, "p")["b"]


def test_an_entry_that_failed_every_seed_is_last_and_untested():
    board = board_of({"broken": [FAIL] * 3, "also-broken": [FAIL] * 3, "a": [0.5, 0.6, 0.55], "pending": [None] * 3})
    assert [r.id for r in board.rows] == ["a", "also-broken", "broken", "pending"]
    assert field(board, "rank") == {"a": 1, "also-broken": 2, "broken": 2, "pending": 4}
    assert field(board, "tier") == {"a": 1, "also-broken": 2, "broken": 2, "pending": None}
    assert field(board, "p") == {"a": None, "also-broken": None, "broken": None, "pending": None}
    assert tables.ties_text(board, board.rows[3]) == "—"
    leaderboard.render_html(board), leaderboard.render_md(board), leaderboard.render_csv(board)


def test_one_seed_and_a_single_entry():
    assert field(board_of({"a": [0.5]}), "tier") == {"a": 1}
    board = board_of({"a": [0.5, None], "b": [0.4, None]})
    assert field(board, "tier") == {"a": 1, "b": 1} and "1 seed scored by both" in field(board, "why")["b"]


seed_value = st.one_of(
    st.integers(0, 1000).map(lambda k: k / 1000),
    st.integers(800, 820).map(lambda k: k / 1000),
    st.just(FAIL),
    st.just(None),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(seed_value, min_size=3, max_size=3), min_size=1, max_size=12))
def test_ranks_and_tiers_read_consistently(entries):
    board = board_of({f"e{i}": seeds for i, seeds in enumerate(entries)})
    scored = [r for r in board.rows if r.mean is not None]
    for r in scored:  # competition ranking: 1 + the entries with a strictly higher score
        assert r.rank == 1 + sum(1 for x in scored if round(x.mean, 9) > round(r.mean, 9))
    tiers = [r.tier for r in scored]
    assert tiers == sorted(tiers) and (not tiers or tiers[0] == 1)
    assert all(b - a <= 1 for a, b in zip(tiers, tiers[1:]))
    by_id = {r.id: r for r in board.rows}
    for r in scored:
        if r.versus is not None and r.within_noise and r.why != "same score":
            head = by_id[r.versus]
            assert not any(h.scored and x.finished and not x.scored for h, x in zip(head.runs, r.runs))
        assert all(x.rank != r.rank or x.tier == r.tier for x in scored)
    assert sum(1 for r in board.rows if r.p is not None) <= max(0, len(scored) - 1)  # each pair at most once


def test_during_a_grading_the_board_is_rebuilt_every_few_seconds_at_most():
    now, writes = [0.0], []

    def write(out, rank_by):
        writes.append(now[0])
        now[0] += 0.5  # a rebuild that takes 0.5 s

    publish = leaderboard.Publisher(Path("/grading"), clock=lambda: now[0], write=write)
    for _ in range(100):  # a run collected every 0.1 s
        publish()
        now[0] += 0.1
    assert writes[0] == 0.0 and len(writes) == 2  # at 0 s, then 5 s after the first one ended
    assert writes[1] - writes[0] >= leaderboard.REBUILD_EVERY_S
    publish.flush()
    assert len(writes) == 3  # what was skipped is written when the grading stops
    publish.flush()
    assert len(writes) == 3  # nothing skipped since: nothing to write


def test_a_slow_rebuild_waits_longer():
    now, writes = [0.0], []

    def write(out, rank_by):
        writes.append(now[0])
        now[0] += 4.0  # a board that takes 4 s: at most a fifth of the time spent on it

    publish = leaderboard.Publisher(Path("/grading"), clock=lambda: now[0], write=write)
    for _ in range(600):
        publish()
        now[0] += 0.1
    gaps = [b - a for a, b in zip(writes, writes[1:])]
    assert gaps and min(gaps) >= 4.0 / leaderboard.REBUILD_SHARE


def test_an_interrupted_grading_still_publishes_what_the_throttle_skipped():
    from harness.organizer.grade import run_publishing

    now, writes = [0.0], []

    class Grader:
        def run(self, on_progress):
            for _ in range(3):  # three runs collected within a second, then Ctrl-C
                on_progress()
                now[0] += 0.3
            raise KeyboardInterrupt

    publish = leaderboard.Publisher(Path("/grading"), clock=lambda: now[0], write=lambda *_: writes.append(now[0]))
    with pytest.raises(KeyboardInterrupt):
        run_publishing(Grader(), publish)
    assert writes == [0.0, pytest.approx(0.9)]  # the first collected run, then the rest when the grading stopped
