"""`grade --until-resolved --max-seeds N`: more seeds only for the entries within noise of the leader.

The entries are examples/minimal's colour-mean classifier with a share `q` of its predictions
replaced by pseudo-random labels drawn from each image alone: two entries with the same `q` predict
the same labels on every seed (the same score: always within noise of each other, so they get seeds up to the
maximum), and an entry with a much larger `q` is far below them (separable after the base seeds)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.options import RunOptions
from harness.organizer.plan import PLAN_FILE, Grading
from tests.helpers import MINIMAL, ROOT, grade_args, read_json, run_harness

NOISY_PREDICT = '''"""colour-mean, then a share Q of the labels replaced by pseudo-random ones drawn from each image."""

import os

import numpy as np

Q = {q}
means = np.load(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"))
x = np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"].mean(axis=(1, 2)) / 255.0
labels = (x @ means.T - 0.5 * (means**2).sum(1)).argmax(1)
images = np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"]
flat = images.reshape(len(images), -1).astype(np.int64)
h = (flat * np.arange(1, flat.shape[1] + 1)).sum(1)  # from the image alone: the same for the same image
swap = h % 9973 < Q * 9973
labels[swap] = (h // 9973 % len(means))[swap]
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\\n" + "".join(f"{{i}},{{label}}\\n" for i, label in enumerate(labels)))
'''


def noisy_entry(root: Path, name: str, q: float) -> Path:
    entry = root / name
    entry.mkdir(parents=True)
    (entry / "submission.yaml").write_text(f"name: {name}\ntrain: python train.py\npredict: python predict.py\n")
    (entry / "train.py").write_text((MINIMAL / "train.py").read_text())
    (entry / "predict.py").write_text(NOISY_PREDICT.format(q=q))
    return entry


def until_args(tmp_path: Path, out: Path, *entries, repeats: int = 3, max_seeds: int | None = 5, extra=()) -> list:
    """grade_args with --until-resolved --max-seeds MAX_SEEDS (neither when None), on the synthetic
    set's easier images (noise 60, not 500)."""
    until = ["--until-resolved", "--max-seeds", str(max_seeds)] if max_seeds is not None else []
    return grade_args(tmp_path, out, *entries, repeats=repeats, noise=60.0, extra=[*until, *extra])


def seeds_run(out: Path) -> dict[str, list[int]]:
    """Each entry's seeds with a final result."""
    found: dict[str, list[int]] = {}
    for result in sorted(out.glob("*/seed-*/result.json")):
        if ".stale-" not in result.parent.name and read_json(result)["status"] != "interrupted":
            found.setdefault(result.parent.parent.name, []).append(int(result.parent.name.split("-")[1]))
    return {k: sorted(v) for k, v in found.items()}


def board_rows(out: Path) -> dict[str, dict]:
    with open(out / "leaderboard.csv") as f:
        return {r["entry"]: r for r in csv.DictReader(f)}


def close_field(tmp_path: Path) -> list[Path]:
    return [
        noisy_entry(tmp_path / "entries", "twin-a", 0.2),
        noisy_entry(tmp_path / "entries", "twin-b", 0.2),
        noisy_entry(tmp_path / "entries", "weak", 0.9),
    ]


def test_a_clear_winner_stops_at_the_base_seeds(tmp_path):
    out = tmp_path / "grading"
    entries = [noisy_entry(tmp_path / "entries", "good", 0.0), noisy_entry(tmp_path / "entries", "poor", 0.9)]
    done = run_harness(*until_args(tmp_path, out, *entries))
    assert done.returncode == 0, done.stderr
    base = read_json(out / PLAN_FILE)["seeds"]
    assert seeds_run(out) == {"good": base, "poor": base}  # no extra run
    plan = read_json(out / PLAN_FILE)
    assert plan["until_resolved"]["rounds"] == [] and plan["until_resolved"]["stopped"].startswith("resolved")
    rows = board_rows(out)
    assert rows["good"]["rank"] == "1" and rows["good"]["seeds_why"] == "3 seeds"
    assert "## Seeds" in (out / "leaderboard.md").read_text()


def test_close_entries_get_more_seeds_up_to_the_maximum_and_the_others_do_not(tmp_path):
    out = tmp_path / "grading"
    done = run_harness(*until_args(tmp_path, out, *close_field(tmp_path)))
    assert done.returncode == 0, done.stderr
    plan = read_json(out / PLAN_FILE)
    base = plan["seeds"]
    extra = [base[-1] + 1, base[-1] + 2]  # the same next seeds for both: still paired
    assert seeds_run(out) == {"twin-a": base + extra, "twin-b": base + extra, "weak": base}
    assert plan["extra_seeds"] == {"twin-a": extra, "twin-b": extra}
    assert plan["until_resolved"]["stopped"] == "stopped at --max-seeds 5: twin-b still within noise of twin-a"
    rows = board_rows(out)
    assert rows["twin-a"]["seeds"] == "5" and rows["weak"]["seeds"] == "3"
    assert rows["twin-b"]["seeds_why"] == "5 seeds: within noise of the leader twin-a after 3, 4"
    assert rows["twin-a"]["seeds_why"] == "5 seeds: the leader, others within noise after 3, 4"
    assert rows["weak"]["seeds_why"] == "3 seeds"
    assert rows["weak"][f"accuracy_seed_{extra[0]}"] == ""  # a seed it did not get: an empty cell
    page = (out / "leaderboard.html").read_text()
    assert "within noise of the leader twin-a after 3, 4" in page and "stopped at --max-seeds 5" in page


def test_a_killed_grading_resumes_its_rounds_without_rerunning_finished_runs(tmp_path):
    out = tmp_path / "grading"
    args = until_args(tmp_path, out, *close_field(tmp_path))
    grader = subprocess.Popen(
        [sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # kill it during the first extra round
        plan = json.loads((out / PLAN_FILE).read_text()) if (out / PLAN_FILE).exists() else {}
        if plan.get("until_resolved", {}).get("rounds"):
            break
        assert grader.poll() is None, grader.stderr.read().decode()
        time.sleep(0.05)
    else:
        raise AssertionError("the grading never reached an extra round")
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    grader.stderr.close()
    finished = {
        p: p.read_bytes()
        for p in out.glob("*/seed-*/result.json")
        if ".stale-" not in p.parent.name and read_json(p)["status"] != "interrupted"
    }
    assert len(finished) >= 9  # every base seed ran before the first round was planned

    resumed = run_harness(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert all(p.read_bytes() == before for p, before in finished.items())  # not run again
    base = read_json(out / PLAN_FILE)["seeds"]
    extra = [base[-1] + 1, base[-1] + 2]
    assert seeds_run(out) == {"twin-a": base + extra, "twin-b": base + extra, "weak": base}


@pytest.mark.parametrize(
    ("extra", "repeats", "max_seeds", "message"),
    [
        ([], 3, 3, "--max-seeds 3 leaves no seed to add"),
        (["--max-seeds", "6"], 3, None, "--max-seeds only applies with --until-resolved"),
        (["--rank-by", "time-to-target"], 3, 6, "--rank-by time-to-target has none"),
    ],
)
def test_bad_options_get_one_clear_message(tmp_path, extra, repeats, max_seeds, message):
    entries = [noisy_entry(tmp_path / "entries", "a", 0.0), noisy_entry(tmp_path / "entries", "b", 0.0)]
    out = tmp_path / "grading"
    done = run_harness(*until_args(tmp_path, out, *entries, repeats=repeats, max_seeds=max_seeds, extra=extra))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") <= 2, done.stderr
    assert not (out / PLAN_FILE).exists()


def test_one_entry_is_refused_and_a_resume_keeps_the_maximum(tmp_path):
    entry = noisy_entry(tmp_path / "entries", "a", 0.0)
    out = tmp_path / "grading"
    for alone in (
        run_harness(*until_args(tmp_path, out, entry)),
        run_harness(*until_args(tmp_path, out, entry, extra=["--reference", entry])),  # the same entry twice
    ):
        assert alone.returncode == 2 and "fewer than two" in alone.stderr, alone.stderr
    other = noisy_entry(tmp_path / "entries", "b", 0.9)
    done = run_harness(*until_args(tmp_path, out, other, repeats=2, max_seeds=3, extra=["--reference", entry]))
    assert done.returncode == 0, done.stderr
    changed = run_harness(*until_args(tmp_path, out, other, repeats=2, max_seeds=4, extra=["--reference", entry]))
    assert changed.returncode == 2 and "was graded with --max-seeds 3" in changed.stderr, changed.stderr
    dropped = run_harness(*until_args(tmp_path, out, other, repeats=2, max_seeds=None, extra=["--reference", entry]))
    assert dropped.returncode == 2 and "--until-resolved --max-seeds 3" in dropped.stderr, dropped.stderr


def test_extra_seeds_run_after_the_base_rounds_for_their_entries_only(tmp_path):
    plan = {
        "seeds": [0, 1],
        "extra_seeds": {"a": [2, 3], "b": [2]},
        "entries": [{"id": i, "path": str(tmp_path / i)} for i in ("a", "b", "c")],
    }
    grading = Grading(tmp_path, plan, RunOptions(), progress=None)
    assert [job.key for job in grading.jobs()] == [
        "a/seed-0",
        "b/seed-0",
        "c/seed-0",
        "b/seed-1",
        "c/seed-1",
        "a/seed-1",
        "a/seed-2",
        "b/seed-2",
        "a/seed-3",
    ]


@pytest.mark.usefixtures("slurm_cluster")
def test_the_slurm_backend_grades_the_same_rounds(tmp_path):
    out = tmp_path / "grading"
    twins = close_field(tmp_path)[:2]
    slurm = ["--backend", "slurm", "--cpus-per-task", "1", "--mem", "1G"]
    args = until_args(tmp_path, out, *twins, repeats=2, max_seeds=3, extra=slurm)
    done = run_harness(*args, env={"HAET_SLURM_POLL_S": "0.5"}, timeout=600)
    assert done.returncode == 0, done.stderr
    base = read_json(out / PLAN_FILE)["seeds"]
    assert seeds_run(out) == {"twin-a": [*base, base[-1] + 1], "twin-b": [*base, base[-1] + 1]}
    assert board_rows(out)["twin-b"]["seeds_why"] == "3 seeds: within noise of the leader twin-a after 2"
