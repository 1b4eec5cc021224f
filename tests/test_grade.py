"""`harness grade`: paired seeds, failures count as 0, SIGKILL mid-grading then resume, parallel slots."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.console import Progress
from harness.options import RunOptions
from harness.organizer.grade import find_entries
from harness.organizer.plan import PLAN_DEFAULTS, PLAN_FILE, Grading, make_plan
from harness.organizer.rundirs import GradeError
from tests.helpers import (
    CENTROID,
    ENTRIES,
    MINIMAL,
    ROOT,
    copy_entry,
    grade_args,
    read_json,
    run_harness,
    synthetic_data,
)
from tests.test_archives import sha256, zip_entry


def results(out: Path) -> list[Path]:
    """The result of every seed's current run directory (not the kept stale attempts)."""
    return sorted(p for p in out.glob("*/seed-*/result.json") if re.fullmatch(r"seed-\d+", p.parent.name))


def test_grade_killed_midway_resumes_without_redoing_or_double_counting(tmp_path):
    out = tmp_path / "grading"
    entries = [CENTROID, MINIMAL, ENTRIES / "crash"]
    args = grade_args(tmp_path, out, *entries)
    synthetic_data(tmp_path)  # written before the grader starts, identical on resume
    grader = subprocess.Popen(
        [sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # Kill it while a run is in flight, after at least two runs finished.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = [p for p in results(out) if read_json(p)["status"] != "interrupted"]
        in_flight = [d for d in out.glob("*/seed-*") if d.is_dir() and not (d / "result.json").exists()]
        if len(done) >= 2 and in_flight:
            break
        assert grader.poll() is None, grader.stderr.read().decode()
        time.sleep(0.05)
    else:
        raise AssertionError("the grading never reached a run in flight")
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    grader.stderr.close()
    before = {p: p.read_bytes() for p in results(out) if read_json(p)["status"] != "interrupted"}
    assert 2 <= len(before) < 9

    resumed = run_harness(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(before)} run(s) already done" in resumed.stderr
    assert "an unfinished earlier attempt was kept" in resumed.stderr

    # Finished runs were not redone; every (entry, seed) has exactly one finished run.
    for path, content in before.items():
        assert path.read_bytes() == content
    final = results(out)
    assert len(final) == 9
    assert {(p.parent.parent.name, p.parent.name) for p in final} == {
        (e, f"seed-{s}") for e in ("centroid", "colour-mean", "crash") for s in range(3)
    }
    assert all(read_json(p)["status"] != "interrupted" for p in final)
    stale = list(out.glob("*/seed-*.stale-*"))
    assert stale, "the interrupted attempt must be kept, not deleted"
    for d in stale:  # an interrupted record, or nothing final at all
        assert not (d / "result.json").exists() or read_json(d / "result.json")["status"] == "interrupted"
    assert not list(out.glob("*/seed-*-2"))  # never a second run directory for the same seed

    # Paired: the same images for every entry on a given seed.
    for seed in range(3):
        hashes = {
            read_json(out / e / f"seed-{seed}" / "result.json")["data"]["data_sha256"]
            for e in ("centroid", "colour-mean", "crash")
        }
        assert len(hashes) == 1

    with open(out / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["entry"] for r in rows] == ["centroid", "colour-mean", "crash"]
    crash = rows[2]
    assert crash["seeds_failed"] == "3" and float(crash["accuracy_mean"]) == 0.0
    assert all(float(crash[f"accuracy_seed_{s}"]) == 0.0 for s in range(3))
    assert float(rows[0]["accuracy_mean"]) > float(rows[1]["accuracy_mean"]) > 0.1
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 9 and len({(r["entry"], r["seed"]) for r in runs}) == 9
    md = (out / "leaderboard.md").read_text()
    assert "| 1 | 1 | centroid |" in md and "crash seeds 0, 1, 2: failed: train crashed" in md
    assert "<html" in (out / "leaderboard.html").read_text()

    # A third invocation has nothing left to do.
    again = run_harness(*args)
    assert again.returncode == 0 and "9 run(s) already done, 0 to run" in again.stderr
    assert len(results(out)) == 9


def test_relative_out_and_resume_with_other_options_is_refused(tmp_path):
    out = Path("grading")  # relative to the working directory, like `--out grading`
    first = run_harness(*grade_args(tmp_path, out, MINIMAL, repeats=1), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert read_json(tmp_path / "grading" / "colour-mean" / "seed-0" / "result.json")["status"] == "scored"
    other = run_harness(*grade_args(tmp_path, out, MINIMAL, repeats=1, budget=7), cwd=tmp_path)
    assert other.returncode == 2
    assert "--budget 6.0 -> 7.0" in other.stderr and "new --out" in other.stderr


def test_a_resumed_grading_compares_every_recorded_option_but_this_machines(tmp_path):
    """The plan's keys are the options marked planned; a plan written before one existed meant its default."""
    options = RunOptions(cache_dir=tmp_path / "cache")
    assert set(options.record()) - set(PLAN_DEFAULTS) == {"build_timeout", "monitor_interval", "cache_dir"}
    plan = make_plan(tmp_path, options, [], None)
    del plan["options"]["strict_predict"]  # as a plan from before --strict-predict has it
    (tmp_path / PLAN_FILE).write_text(json.dumps(plan))
    make_plan(tmp_path, dataclasses.replace(options, monitor_interval_s=2.0, build_timeout_s=60.0), [], None)
    with pytest.raises(GradeError, match="--strict-predict False -> True"):
        make_plan(tmp_path, dataclasses.replace(options, strict_predict=True), [], None)


def test_parallel_slots_run_at_the_same_time(tmp_path):
    slow = copy_entry(CENTROID, tmp_path / "slow")
    train = (slow / "train.py").read_text()
    (slow / "train.py").write_text(
        "import json, os, time\n"
        "open(os.environ['HAET_EVENTS'], 'a').write(json.dumps({'event': 'start', 'time': time.time()}) + '\\n')\n"
        "time.sleep(6)\n"  # long enough that the other slot's run (3-4 s) emits inside it, staging and all
        "open(os.environ['HAET_EVENTS'], 'a').write(json.dumps({'event': 'slept', 'time': time.time()}) + '\\n')\n"
        + train
    )
    (slow / "submission.yaml").write_text("name: slow\ntrain: python train.py\npredict: python predict.py\n")
    out = tmp_path / "grading"
    proc = run_harness(
        *grade_args(
            tmp_path, out, slow, MINIMAL, repeats=2, budget=20, extra=["--gpus", "0,1", "--reference", CENTROID]
        )
    )
    assert proc.returncode == 0, proc.stderr
    assert "on GPU 0" in proc.stderr and "on GPU 1" in proc.stderr
    assert len(results(out)) == 6
    assert all(read_json(p)["status"] == "scored" for p in results(out))

    def event_times(run_dir: Path) -> list[float]:
        return [json.loads(line)["time"] for line in (run_dir / "events.jsonl").read_text().splitlines()]

    # While a slow run slept (between its own two events), another run trained: they overlapped.
    windows = [event_times(d) for d in out.glob("slow/seed-*")]
    others = [t for d in out.glob("*/seed-*") if d.parent.name != "slow" for t in event_times(d)]
    assert any(w[0] < t < w[-1] for w in windows for t in others), (windows, others)
    md = (out / "leaderboard.md").read_text()
    assert "centroid (reference)" in md and "Machine drift" in md


def plan_queue(queue: Path, out: Path, active: frozenset[str] = frozenset()) -> dict:
    """What `grade --queue` does before its first run: list the queue, plan, check every entry."""
    options = RunOptions(runner="local", device="cpu", cache_dir=out.parent / "cache")
    plan = make_plan(out, options, find_entries([], queue), None)
    Grading(out, plan, options, Progress(quiet=True)).prepare(active)
    return plan


def test_a_queue_of_archives_plans_like_the_same_entries_as_folders(tmp_path, monkeypatch):
    """The same 30 entries (10 names taken twice) as zips and as folders: the same ids in the same
    order; each archive's digest in its entry.json, and no unpacked copy kept after planning."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where planning unpacks: must be empty after
    folders, zips = tmp_path / "folders", tmp_path / "zips"
    zips.mkdir()
    for i in range(30):
        folder = copy_entry(CENTROID, folders / f"e{i:02d}")
        (folder / "submission.yaml").write_text(
            f"name: team-{i % 20}\ntrain: python train.py\npredict: python predict.py\n"
        )
        zip_entry(folder, zips / f"e{i:02d}.zip", top=f"e{i:02d}")
    as_folders = plan_queue(folders, tmp_path / "graded-folders")
    as_zips = plan_queue(zips, tmp_path / "graded-zips")
    ids = [e["id"] for e in as_folders["entries"]]
    assert ids == [f"team-{i}" for i in range(20)] + [f"team-{i}-2" for i in range(10)]
    assert [e["id"] for e in as_zips["entries"]] == ids
    assert [Path(e["path"]).name for e in as_zips["entries"]] == [f"e{i:02d}.zip" for i in range(30)]
    for i, entry_id in enumerate(ids):
        zipped = read_json(tmp_path / "graded-zips" / entry_id / "entry.json")
        folder = read_json(tmp_path / "graded-folders" / entry_id / "entry.json")
        assert zipped["invalid"] is None and zipped["sha256"] == folder["sha256"], entry_id
        assert zipped["source"]["sha256"] == sha256(zips / f"e{i:02d}.zip") and folder["source"] is None
    assert not any(temp.iterdir()), "planning keeps no unpacked copy"

    # A resumed grading plans nothing new and removes what killed runs left unpacked, but not a live run's.
    for entry_id in ("team-0", "team-1"):
        (tmp_path / "graded-zips" / entry_id / ".unpack-killed" / "entry").mkdir(parents=True)
    again = plan_queue(zips, tmp_path / "graded-zips", active=frozenset({"team-1/seed-0"}))
    assert again["entries"] == as_zips["entries"]
    assert not (tmp_path / "graded-zips" / "team-0" / ".unpack-killed").exists()
    assert (tmp_path / "graded-zips" / "team-1" / ".unpack-killed").is_dir(), "team-1 has a run in flight"
