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

from harness.files import atomic_write_json
from harness.model import Outcome, to_dict
from harness.organizer import leaderboard

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
                 if os.access(p, os.X_OK)), None)
EVIL = "<script>alert('x')</script>"
OVERFLOW_PROBE = ("<script>addEventListener('load', () => document.body.setAttribute('data-overflow', "
                  "[...document.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1 && "
                  "getComputedStyle(e).overflowX != 'visible').map(e => e.className + ':' + e.scrollWidth)"
                  ".join(' ')))</script>")


def fake_run(directory: Path, seed: int, status: str, accuracy: float | None, reason: str = "", energy=None):
    """A whole result.json, as the harness writes it (the leaderboard reads it through the typed model)."""
    from tests.test_report import make_result

    scored = status == "scored"
    result = to_dict(make_result(scored=scored, gpu=bool(energy), seed=seed,
                                 train_outcome=Outcome.KILLED_AT_DEADLINE if scored else Outcome.CRASHED))
    result.update({
        "status": status, "reason": reason, "score": None,
        "accuracy": accuracy, "correct": None if accuracy is None else round(accuracy * 1000), "total": 1000,
        "started_at": f"2026-01-01T00:0{seed}:00+00:00",
    })
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
    atomic_write_json(root / "grading.json", {
        "kind": "grading", "schema_version": 1, "seeds": [0, 1, 2], "entries": entries,
        "options": {"data": "tar:cifar.tar.gz", "budget": 600.0, "train_per_class": 500, "eval_per_class": 100,
                    "runner": "docker", "device": "cuda", "repeats": 3, "seed": 0}})
    return root


def test_ranking_ties_failures_and_pending(tmp_path):
    board = leaderboard.write_leaderboard(make_grading(tmp_path))
    by_id = {r.id: r for r in board.rows}
    assert [r.id for r in board.rows] == ["fast-net", "mid-a", "mid-b", "crashy"]
    assert by_id["crashy"].mean == pytest.approx((0.85 + 0 + 0.84) / 3)  # the crash counts as 0
    assert by_id["crashy"].failures == 1
    assert not by_id["mid-b"].complete and len(by_id["mid-b"].finished) == 2
    assert "mid-b" in by_id["mid-a"].tied_with and "mid-a" in by_id["mid-b"].tied_with
    assert "mid-a" not in by_id["fast-net"].tied_with
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


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium at /usr/bin/chromium: `apt-get install -y chromium` "
                                             "to render the leaderboard HTML in a headless browser")
def test_leaderboard_html_renders_in_headless_chromium(tmp_path):
    make_grading(tmp_path / "grading")
    leaderboard.write_leaderboard(tmp_path / "grading")
    page = tmp_path / "grading" / "leaderboard.html"
    shot = tmp_path / "leaderboard.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "fast-net" in dom.stdout and "<svg" in dom.stdout and "Paired t-test" in dom.stdout
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr
    # At 1200 px nothing scrolls sideways (no column hidden): the page reports any element that does.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", OVERFLOW_PROBE + "</body>"))
    dom = subprocess.run(base + ["--window-size=1200,900", "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert 'data-overflow=""' in dom.stdout, re.findall(r'data-overflow="[^"]*"', dom.stdout)
    run = subprocess.run(base + ["--window-size=1200,1300", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
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


def test_predict_time_is_shown_and_a_predict_budget_over_the_default_is_a_warning(tmp_path):
    """Predict's seconds per entry (mean, per seed, its sampled CPU seconds); an entry graded with
    more predict time than the default for its training budget is named in a warning."""
    root = make_grading(tmp_path)
    for path in root.glob("*/seed-*/result.json"):
        result = json.loads(path.read_text())
        slow = path.parts[-3] == "mid-a"  # granted 120 s at a 600 s budget (default 60 s), and it used them
        result["train"]["budget_s"] = 600.0
        result["predict"].update(budget_s=120.0 if slow else 60.0, seconds=110.0 if slow else 5.0,
                                 cpu_seconds=200.0 if slow else 8.0, outcome="completed")
        atomic_write_json(path, result)
    board = leaderboard.write_leaderboard(root)
    warning = next(w for w in board.warnings if w.startswith("predict over its default"))
    assert "mid-a" in warning and "fast-net" not in warning and "predict-phase compute can buy accuracy" in warning
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text()))}
    assert rows["mid-a"]["predict_seconds_mean"] == "110.000" and rows["fast-net"]["predict_seconds_seed_0"] == "5.000"
    runs = [r for r in csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())) if r["entry"] == "mid-a"]
    assert {r["predict_seconds"] for r in runs} == {"110.000"} and {r["predict_cpu_seconds"] for r in runs} == {"200.00"}
    text = (tmp_path / "leaderboard.md").read_text()
    assert "Predict time (mean)" in text and "110.0 s" in text
