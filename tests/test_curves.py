"""The curve (issue: accuracy against time and energy): snapshots, the curve set, the off-clock
predictions, energy, the leaderboard's ranking switch, the fingerprint and --reproduce."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness import data
from harness.console import Progress
from harness.contract import load_submission, submission_digest
from harness.energy import Rapl
from harness.files import atomic_write_json
from harness.model import Environment, SubmissionInfo, from_dict
from harness.monitor import Gpus
from harness.options import RunOptions
from harness.organizer import leaderboard
from harness.phase import Devices
from harness.reproduce import compare
from harness.run import OneRun, graded_run
from harness.runners.local import LocalRunner
from harness.snapshots import PROBATION_LOOKS, Snapshot, Snapshots, _state, thin
from tests.fake_nvml import FakeNvml
from tests.helpers import CENTROID, ROOT, read_json, run_harness

STEPWISE = ROOT / "tests" / "submissions" / "stepwise"


# --- snapshots: real folders, looked at by hand with the harness's clock stood in ----------------------


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def watched(tmp_path: Path, **kw) -> tuple[Path, Snapshots, Clock]:
    view = tmp_path / "checkpoints"
    view.mkdir(parents=True)
    clock = Clock()
    return view, Snapshots(view, tmp_path / "store", clock, **kw), clock


def save(view: Path, name: str, payload: bytes) -> None:
    """An atomic save, as docs/submission-contract.md asks: a temporary file, then a rename."""
    (view / (name + ".tmp")).write_bytes(payload)
    os.replace(view / (name + ".tmp"), view / name)


def look(snaps: Snapshots) -> None:
    """One tick of the watcher: its walk of the folder, then the snapshots' look at it."""
    snaps.look(_state(snaps.view))


def look_twice(snaps: Snapshots, clock: Clock, at: float) -> None:
    clock.t = at
    look(snaps)
    clock.t = at + 0.5
    look(snaps)


def test_snapshots_thin_to_an_even_spread_within_the_count_cap(tmp_path):
    view, snaps, clock = watched(tmp_path, limit=12)
    for i in range(40):
        save(view, "model.bin", f"step {i}".encode())
        look_twice(snaps, clock, float(i))
    assert snaps.seen == 40
    kept = [s.seconds for s in snaps.kept]
    assert len(kept) == 12 and kept[0] == 0.0 and kept[-1] == 39.0, "the first and the newest are always kept"
    gaps = np.diff(kept)
    assert gaps.max() <= 2 * 39 / 11, f"spread evenly, not bunched: {kept}"
    assert sorted(p.name for p in snaps.store.iterdir()) == sorted(s.name for s in snaps.kept), "dropped copies deleted"
    for s in snaps.kept:  # each copy is the save it was taken of
        assert (snaps.store / s.name / "model.bin").read_bytes() == f"step {int(s.seconds)}".encode()


def test_a_burst_of_saves_does_not_crowd_out_the_rest_of_the_run():
    burst = [Snapshot(f"s{i}", i * 0.1, ()) for i in range(30)]
    late = [Snapshot(f"l{i}", 100.0 + 100 * i, ()) for i in range(5)]
    kept = burst + late
    dropped = thin(kept, 12)
    assert len(kept) == 12 and len(dropped) == 23
    assert all(s in kept for s in late), "the sparse late snapshots survive"
    assert kept[0].seconds == 0.0


def test_the_size_cap_and_the_file_count_cap_skip_a_snapshot_with_a_note(tmp_path):
    view, snaps, clock = watched(tmp_path, limit=4, max_bytes=4 * 1000)
    save(view, "big.bin", b"x" * 1001)  # over 1000 bytes per snapshot
    look_twice(snaps, clock, 1.0)
    assert snaps.kept == [] and any("over the snapshot cap" in n for n in snaps.notes)
    (view / "big.bin").unlink()
    save(view, "small.bin", b"y" * 10)
    look_twice(snaps, clock, 2.0)
    assert [s.bytes for s in snaps.kept] == [10]

    many, crowd, clock = watched(tmp_path / "many")
    for i in range(1001):  # more files than the watcher follows (checkpoints.WATCHED_FILES)
        (many / f"f{i}").write_bytes(b"z")
    look_twice(crowd, clock, 1.0)
    assert crowd.kept == []


def test_a_save_in_progress_is_never_copied(tmp_path):
    """A checkpoint that is never completed: a temporary file that grows at every look."""
    view, snaps, clock = watched(tmp_path)
    save(view, "model.bin", b"complete")
    look_twice(snaps, clock, 1.0)
    assert len(snaps.kept) == 1
    for i in range(10):
        with open(view / "model.bin.tmp", "ab") as f:
            f.write(b"partial")
        clock.t = 2.0 + i * 0.5
        look(snaps)
    assert len(snaps.kept) == 1, "a folder that changes between every two looks is never copied"


def test_a_checkpoint_rewritten_in_place_mid_copy_is_dropped(tmp_path):
    """Torn: half a file stands still for two looks (the entry paused mid-write), then the rest arrives
    in the same file (same inode): the half copy is dropped and never predicted."""
    view, snaps, clock = watched(tmp_path)
    with open(view / "model.bin", "wb") as f:
        f.write(b"first half ")
        f.flush()
        look_twice(snaps, clock, 1.0)
        assert [s.bytes for s in snaps.kept] == [len(b"first half ")], "it looked complete"
        f.write(b"second half")
    clock.t = 2.0
    look(snaps)
    assert snaps.kept == [] and any("rewritten in place" in n for n in snaps.notes)
    assert not any(snaps.store.iterdir())
    final = snaps.final(view, 3.0)
    assert final is not None and final.final and final.bytes == len(b"first half second half")


def test_a_recycled_inode_after_an_atomic_save_is_not_a_tear(tmp_path):
    """Atomic saves to one name: the name moves to a new inode, and a later save may get the old
    inode back (here forced with a hard link). That is a new file, not the copied one torn."""
    view, snaps, clock = watched(tmp_path)
    save(view, "model.bin", b"one")
    look_twice(snaps, clock, 1.0)
    os.link(view / "model.bin", tmp_path / "kept-inode")
    save(view, "model.bin", b"two, on another inode")
    clock.t = 2.0
    look(snaps)
    with open(tmp_path / "kept-inode", "ab") as f:
        f.write(b" and more")
    os.replace(tmp_path / "kept-inode", view / "model.bin")  # the first inode is back, with other bytes
    clock.t = 2.5
    look(snaps)
    assert [s.bytes for s in snaps.kept][:1] == [3] and not snaps.notes


def test_the_torn_check_ends_after_its_probation(tmp_path):
    """Atomic saves to one name may recycle an inode later: past the probation that is not a tear."""
    view, snaps, clock = watched(tmp_path)
    save(view, "model.bin", b"one")
    look_twice(snaps, clock, 1.0)
    for i in range(PROBATION_LOOKS + 1):
        clock.t = 2.0 + i
        look(snaps)
    assert len(snaps.kept) == 1 and snaps.kept[0].probation == 0


def test_symlinks_in_the_checkpoints_are_not_followed(tmp_path):
    view, snaps, clock = watched(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (view / "link").symlink_to(secret)
    save(view, "model.bin", b"weights")
    look_twice(snaps, clock, 1.0)
    (copy,) = snaps.kept
    assert sorted(p.name for p in (snaps.store / copy.name).iterdir()) == ["model.bin"]


def test_a_folder_swapped_for_a_symlink_mid_copy_never_leaks_a_host_file(tmp_path):
    """The race a hostile entry would run: the listing saw sub/model.bin, then `sub` became a symlink
    to a host folder with a model.bin of its own. The copy made from the earlier listing (as the
    watcher would, a moment later) must refuse the host's file: its inode is not the listed one."""
    view, snaps, clock = watched(tmp_path)
    (view / "sub").mkdir()
    (view / "sub" / "model.bin").write_bytes(b"weights")
    listed = _state(view)
    host = tmp_path / "host"
    host.mkdir()
    (host / "model.bin").write_text("host secret")
    shutil.rmtree(view / "sub")
    (view / "sub").symlink_to(host)
    assert snaps._copy(view, listed, 1.0, (None, None)) is None
    assert snaps.kept == [] and not any(snaps.store.rglob("model.bin"))
    assert any("replaced while it was copied" in n for n in snaps.notes)


def test_a_million_empty_folders_are_not_walked_at_every_look(tmp_path):
    view, snaps, clock = watched(tmp_path)
    for i in range(2100):
        (view / f"d{i}").mkdir()
    assert _state(view) is None


# --- the curve set -------------------------------------------------------------------------------------


def unique_images(count: int, offset: int) -> np.ndarray:
    """Images that are all different: their number written into the first pixels."""
    images = np.zeros((count, 32, 32, 3), dtype=np.uint8)
    numbers = np.arange(offset, offset + count)
    images[:, 0, 0, 0], images[:, 0, 0, 1], images[:, 0, 0, 2] = numbers % 256, numbers // 256 % 256, numbers // 65536
    return images


def split(count: int, offset: int) -> data.Split:
    return data.Split(unique_images(count, offset), np.arange(count, dtype=np.int64) % 10)


def keys(s: data.Split) -> set[bytes]:
    return {bytes(img[0, 0]) for img in s.images}


@pytest.mark.parametrize("layout", ["test split", "no test split", "secret eval data"])
def test_the_curve_set_is_apart_from_the_held_out_and_the_training_images(layout):
    classes = [f"c{i}" for i in range(10)]
    pool = data.Pool(classes, split(600, 0), split(400, 10_000) if layout == "test split" else None)
    eval_pool = data.Pool(classes, split(300, 20_000), None) if layout == "secret eval data" else None
    draw = dict(seed=3, train_per_class=20, eval_per_class=10, source="npz:x", eval_source="npz:x")
    sets = data.draw(pool, eval_pool, curve_per_class=15, **draw)
    assert len(sets.curve.labels) == 150 and np.bincount(sets.curve.labels).tolist() == [15] * 10, "class-balanced"
    assert keys(sets.curve).isdisjoint(keys(sets.eval)), "never a held-out image"
    assert keys(sets.curve).isdisjoint(keys(sets.train)), "never an image the entry trained on"
    again = data.draw(pool, eval_pool, curve_per_class=15, **draw)
    assert np.array_equal(again.curve.images, sets.curve.images), "seeded"
    plain = data.draw(pool, eval_pool, **draw)
    assert plain.curve is None and plain.info.data_sha256 == sets.info.data_sha256, "the official sets do not move"
    assert keys(plain.eval) == keys(sets.eval)
    with pytest.raises(data.DataError, match="--curve-per-class"):
        data.draw(pool, eval_pool, curve_per_class=1000, **draw)


# --- whole runs ---------------------------------------------------------------------------------------


def synthetic(tmp_path: Path) -> str:
    from harness.synthetic import write_synthetic_npz

    return f"npz:{write_synthetic_npz(tmp_path / 'synthetic.npz', 60, 40, seed=0, noise=500.0)}"


def options(tmp_path: Path, submission: Path, **kw) -> RunOptions:
    base = dict(
        submission=submission,
        data=synthetic(tmp_path),
        budget_s=9.0,
        grace_s=1.5,
        train_per_class=20,
        eval_per_class=10,
        curve=True,
        curve_per_class=10,
        runner="local",
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        monitor_interval_s=0.2,
    )
    return RunOptions(**{**base, **kw}).validate()


def test_a_run_that_checkpoints_often_gets_a_curve_in_its_csv_and_report(tmp_path):
    """The small-scale twin of the 90 s run of the bundled entry (docs/curves.md), through the CLI."""
    o = options(tmp_path, STEPWISE, target=0.01)
    proc = run_harness(
        "run", *["--submission", STEPWISE, "--runs-dir", o.runs_dir, "--run-id", "stepwise"], *o.to_argv(), timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = o.runs_dir / "stepwise"
    result = from_dict(read_json(run_dir / "result.json"))
    points = result.curve.points
    assert len(points) >= 3, [p.seconds for p in points]
    assert all(p.status == "scored" for p in points), [p.detail for p in points]
    seconds = [p.seconds for p in points]
    assert seconds == sorted(seconds) and seconds[-1] <= o.budget_s
    assert points[-1].final and sum(p.final for p in points) == 1
    assert result.curve.time_to_target_s == points[0].seconds, "the first point at or above the target"
    assert all(p.total == 100 for p in points)
    rows = list(csv.DictReader(io.StringIO((run_dir / "curve.csv").read_text())))
    assert [float(r["seconds"]) for r in rows] == seconds
    assert {r["cpu_package_energy_j"] for r in rows} == {""}, "not readable here: empty, never 0"
    assert float(rows[0]["ci95_low"]) <= float(rows[0]["accuracy"]) <= float(rows[0]["ci95_high"])
    html = (run_dir / "report.html").read_text()
    assert "Accuracy against time and energy" in html and "plot failed" not in html
    assert html.count('<svg class="plot"') >= 2
    assert not (run_dir / ".work").exists(), "the snapshots go with the work folder"
    assert result.status.value == "scored"


def test_the_last_point_equals_the_official_score_when_the_curve_set_is_the_held_out_set(tmp_path):
    """Test-only, through the Python API: the curve set replaced by the official set."""
    o = options(tmp_path, CENTROID)
    pool = data.load_pool(o.data, o.cache_dir)
    sets = data.draw(pool, None, seed=0, train_per_class=20, eval_per_class=10, source=o.data, eval_source=o.data)
    sets = dataclasses.replace(sets, curve=sets.eval)
    submission = load_submission(CENTROID)
    info = SubmissionInfo(
        submission.name,
        str(submission.path),
        submission.train_text,
        submission.predict_text,
        submission_digest(submission.path),
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = OneRun(
        run_dir, submission, info, sets, LocalRunner(), o, Progress(quiet=True), Devices.open(o, Gpus.open), 0, "run"
    ).run()
    assert result.status.value == "scored"
    last = result.curve.points[-1]
    assert last.final and (last.correct, last.total) == (result.correct, result.total)
    assert last.accuracy == result.accuracy


def test_a_predict_that_fails_on_one_snapshot_marks_that_point_only(tmp_path, make_submission):
    train = (STEPWISE / "train.py").read_text().replace("time.sleep(STEP_S)", "time.sleep(3 if step == 1 else STEP_S)")
    predict = (
        (STEPWISE / "predict.py")
        .read_text()
        .replace(
            'means = model["means"]', 'means = model["means"]\nif int(model["step"]) == 1:\n    raise SystemExit(3)'
        )
    )
    entry = make_submission("fails-once", train, predict)
    result = graded_run(options(tmp_path, entry, budget_s=10.0), LocalRunner(), Progress(quiet=True))
    assert result.status.value == "scored" and result.predict.outcome.value == "completed", "official score untouched"
    failed = [p for p in result.curve.points if p.status == "failed"]
    assert len(failed) == 1 and "crashed" in failed[0].detail and failed[0].accuracy is None
    assert failed[0] is result.curve.points[0]
    assert all(p.status == "scored" for p in result.curve.points[1:]) and len(result.curve.points) >= 2
    rows = list(csv.DictReader(io.StringIO((tmp_path / "runs" / result.run_id / "curve.csv").read_text())))
    assert rows[0]["status"] == "failed" and rows[0]["accuracy"] == ""


# --- energy -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("counter", [True, False])
def test_gpu_energy_and_the_fingerprint_come_from_nvml(tmp_path, counter):
    fake = FakeNvml(energy_counter=counter)
    o = options(tmp_path, STEPWISE, device="cuda", budget_s=7.0)
    result = graded_run(o, LocalRunner(), Progress(quiet=True), open_gpus=lambda selector: Gpus.open(selector, fake))
    (gpu,) = result.monitor.gpus
    assert gpu.energy_method == ("nvml_energy_counter" if counter else "integrated_power")
    assert gpu.energy_j is not None and gpu.energy_j > 0
    points = result.curve.points
    assert len(points) >= 2 and all(p.gpu_energy_j is not None for p in points)
    energies = [p.gpu_energy_j for p in points]
    assert energies == sorted(energies) and energies[0] < energies[-1], "energy so far grows along the curve"
    assert points[-1].gpu_energy_j <= gpu.energy_j + 0.1, "energy when the checkpoint was seen, within the phase's"
    html = (tmp_path / "runs" / result.run_id / "report.html").read_text()
    assert "Accuracy against time and energy" in html and "plot failed" not in html
    (details,) = result.environment.gpu_details
    assert details == {
        "index": 0,
        "name": "NVIDIA Fake 100",
        "uuid": "GPU-fake-0",
        "power_limit_w": 700.0,
        "sm_clock_mhz": 1980,
        "memory_clock_mhz": 2619,
        "temperature_c": 65,
    }
    assert result.monitor.cpu_energy_j is None and "not available" in result.monitor.cpu_energy_note


def rapl_tree(root: Path, packages: dict[str, tuple[int, int]]) -> Path:
    for name, (energy, wrap) in packages.items():
        (root / name).mkdir(parents=True)
        (root / name / "energy_uj").write_text(f"{energy}\n")
        (root / name / "max_energy_range_uj").write_text(f"{wrap}\n")
    return root


def test_rapl_sums_packages_handles_wraparound_and_ignores_subdomains(tmp_path):
    root = rapl_tree(
        tmp_path / "powercap",
        {
            "intel-rapl:0": (900_000_000, 1_000_000_000),
            "intel-rapl:1": (5_000_000, 1_000_000_000),
            "intel-rapl:0:0": (1, 1_000_000_000),
        },
    )
    (root / "dtpm").mkdir()
    rapl, note = Rapl.open(root)
    assert note == "" and len(rapl.counters) == 2
    rapl.start()
    (root / "intel-rapl:0" / "energy_uj").write_text("50000000\n")  # wrapped: 100 J + 50 J
    (root / "intel-rapl:1" / "energy_uj").write_text("25000000\n")  # 20 J
    (root / "intel-rapl:0:0" / "energy_uj").write_text("999999999\n")  # a sub-domain: not added twice
    assert rapl.read() == pytest.approx(170.0)
    (root / "intel-rapl:1" / "energy_uj").write_text("26000000\n")
    assert rapl.read() == pytest.approx(171.0), "cumulative since start"


def test_rapl_that_cannot_be_read_is_not_available_never_zero(tmp_path):
    rapl, note = Rapl.open(tmp_path / "missing")
    assert rapl is None and "not available" in note
    root = tmp_path / "powercap"
    (root / "intel-rapl:0" / "energy_uj").mkdir(parents=True)  # unreadable as a number
    rapl, note = Rapl.open(root)
    assert rapl is None and "cannot be read" in note


# --- the leaderboard's ranking switch --------------------------------------------------------------------


def test_the_leaderboard_ranks_by_accuracy_time_or_energy_to_target(tmp_path):
    from tests.test_leaderboard import fake_run

    entries = {  # accuracy per seed, (time, energy) to target per seed (None: not reached)
        "accurate-slow": ([0.93, 0.94], [(400.0, 90_000.0), (420.0, 95_000.0)]),
        "fast-hungry": ([0.88, 0.89], [(100.0, 80_000.0), (110.0, 82_000.0)]),
        "frugal": ([0.87, 0.86], [(200.0, 30_000.0), (210.0, 31_000.0)]),
        "short": ([0.90, 0.91], [(50.0, 10_000.0), None]),  # missed the target on one seed
    }
    plan = []
    for name, (accuracies, reach) in entries.items():
        plan.append({"id": name, "path": f"/entries/{name}", "reference": False})
        atomic_write_json(tmp_path / name / "entry.json", {"id": name, "path": f"/entries/{name}", "invalid": None})
        for seed, (accuracy, to_target) in enumerate(zip(accuracies, reach)):
            d = tmp_path / name / f"seed-{seed}"
            d.mkdir(parents=True)
            fake_run(d, seed, "scored", accuracy)
            result = read_json(d / "result.json")
            result["curve"] = {
                "per_class": 100,
                "target": 0.85,
                "points": [],
                "time_to_target_s": to_target[0] if to_target else None,
                "gpu_energy_to_target_j": to_target[1] if to_target else None,
            }
            atomic_write_json(d / "result.json", result)
    atomic_write_json(
        tmp_path / "grading.json",
        {
            "kind": "grading",
            "schema_version": 1,
            "seeds": [0, 1],
            "entries": plan,
            "options": {
                "data": "cifar10",
                "budget": 600.0,
                "train_per_class": 500,
                "eval_per_class": 100,
                "runner": "docker",
                "device": "cuda",
                "repeats": 2,
                "seed": 0,
                "curve": True,
                "target": 0.85,
            },
        },
    )
    order = {key: [r.id for r in leaderboard.write_leaderboard(tmp_path, key).rows] for key in leaderboard.RANK_KEYS}
    assert order["accuracy"] == ["accurate-slow", "short", "fast-hungry", "frugal"]
    assert order["time-to-target"] == ["fast-hungry", "frugal", "accurate-slow", "short"]
    assert order["energy-to-target"] == ["frugal", "fast-hungry", "accurate-slow", "short"]
    table = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))
    assert table[0]["entry"] == "frugal" and table[0]["gpu_energy_to_target_j_mean"] == "30500.0"
    assert table[3]["time_to_target_s_mean"] == "" and table[3]["time_to_target_s_seed_0"] == "50.000"
    md = (tmp_path / "leaderboard.md").read_text()
    assert "Time to 85%" in md and "Ranked by the mean GPU board energy" in md
    assert "Time, GPU energy to 85%" in (tmp_path / "leaderboard.html").read_text()
    proc = run_harness("leaderboard", tmp_path, "--rank-by", "time-to-target")
    assert proc.returncode == 0, proc.stderr
    assert list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))[0]["entry"] == "fast-hungry"


# --- the fingerprint and --reproduce ----------------------------------------------------------------------


def test_reproduce_reruns_the_same_options_seed_and_data_into_a_new_run(tmp_path):
    runs = tmp_path / "runs"
    data_source = synthetic(tmp_path)
    first = run_harness(
        "run",
        "--submission",
        CENTROID,
        "--data",
        data_source,
        "--runner",
        "local",
        "--budget",
        "4",
        "--seed",
        "7",
        "--train-per-class",
        "20",
        "--eval-per-class",
        "10",
        "--curve",
        "--curve-per-class",
        "10",
        "--runs-dir",
        runs,
        "--run-id",
        "original",
        "--cache-dir",
        tmp_path / "cache",
    )
    assert first.returncode == 0, first.stderr
    original = runs / "original"
    before = {p.name: p.read_bytes() for p in original.iterdir() if p.is_file()}
    # The original ran on the host: reproducing it so takes the same explicit --runner local (the
    # refusals without it are in tests/test_reproduce_hostile.py).
    again = run_harness(
        "run",
        "--reproduce",
        original,
        "--runner",
        "local",
        "--runs-dir",
        runs,
        "--run-id",
        "again",
        "--cache-dir",
        tmp_path / "cache",
    )
    assert again.returncode == 0, again.stderr
    assert "reproduces" in again.stdout + again.stderr
    assert {p.name: p.read_bytes() for p in original.iterdir() if p.is_file()} == before, "the original is untouched"
    a, b = read_json(original / "result.json"), read_json(runs / "again" / "result.json")
    assert b["options"] == a["options"] and b["seed"] == 7 and b["options"]["curve"] is True
    assert b["data"]["data_sha256"] == a["data"]["data_sha256"], "the same images"
    assert b["submission"]["sha256"] == a["submission"]["sha256"]
    assert b["reproduces"]["run_id"] == "original" and b["reproduces"]["differences"] == []
    assert b["reproduces"]["asked"] == {**a["options"], "submission": a["submission"]["path"]}
    assert b["reproduces"]["overridden"] == ["runner"]
    assert b["accuracy"] == a["accuracy"], "the centroid entry is deterministic"
    assert "This run reproduces" in (runs / "again" / "report.md").read_text()
    assert (runs / "again" / "packages.txt").read_text() == (original / "packages.txt").read_text()
    env = b["environment"]
    assert env["packages_sha256"] == hashlib.sha256((runs / "again" / "packages.txt").read_bytes()).hexdigest()
    assert any(line.startswith("numpy==") for line in (runs / "again" / "packages.txt").read_text().splitlines())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert env["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert env["cpu_cores"] == os.cpu_count() and env["kernel"] == platform.release() and env["cpu_model"]

    missing = run_harness("run", "--reproduce", tmp_path / "nowhere", "--runs-dir", runs)
    assert missing.returncode == 2 and "no result.json" in missing.stderr


def test_what_differs_between_two_environments_is_said_in_words():
    base = Environment(
        harness="0.1",
        python="3.11.7",
        platform="Linux",
        runner="docker",
        device="cuda",
        driver="550.1",
        gpu_details=[{"power_limit_w": 700.0, "sm_clock_mhz": 1980}],
    )
    other = dataclasses.replace(base, driver="555.2", gpu_details=[{"power_limit_w": 500.0, "sm_clock_mhz": 1980}])

    class Run:
        def __init__(self, env, sha="a", data_sha="d"):
            self.environment = env
            self.submission = type("S", (), {"sha256": sha})()
            self.data = type("D", (), {"data_sha256": data_sha})()

    assert compare(Run(base), Run(base)) == []
    said = compare(Run(base), Run(other, sha="b"))
    assert "driver: 550.1 -> 555.2" in said and "gpu 0 power_limit_w at start: 700.0 -> 500.0" in said
    assert said[0].startswith("the entry's files changed")


@pytest.mark.gpu
def test_a_real_gpu_gives_its_energy_counter_and_fingerprint(tmp_path):
    """Runs only where a GPU is: NVML's total-energy counter (Volta and newer) and the start-of-run facts."""
    import time

    from harness.monitor import Monitor

    gpus, note = Gpus.open("0")
    if gpus is None:
        pytest.skip(f"no GPU here: {note}")
    (facts,) = gpus.fingerprint()
    assert facts["name"] and facts["uuid"].startswith("GPU-") and facts["power_limit_w"] > 50
    assert facts["sm_clock_mhz"] is not None and facts["memory_clock_mhz"] and facts["temperature_c"] is not None
    monitor = Monitor(lambda: (None, None), gpus, "", 0.1, tmp_path / "metrics.csv")
    monitor.start(time.monotonic())
    time.sleep(1.5)
    (gpu,) = monitor.stop().gpus
    assert gpu.energy_method == "nvml_energy_counter" and gpu.energy_j is not None and gpu.energy_j > 0
    gpus.close()


@pytest.mark.docker
def test_under_docker_snapshots_come_from_the_volumes_host_side(tmp_path, docker_client, runtime_image):
    """The watcher reads the checkpoint volume from the host; the scored folder (a copy of the volume)
    is recognised as the last snapshot by its bytes, so the final point is not counted twice."""
    from tests.docker_support import small_runner

    o = options(tmp_path, STEPWISE, runner="docker", image=runtime_image)
    result = graded_run(o, small_runner(runtime_image), Progress(quiet=True))
    assert result.status.value == "scored", result.reason
    points = result.curve.points
    assert len(points) >= 2 and all(p.status == "scored" for p in points), [p.detail for p in points]
    assert points[-1].final and sum(p.final for p in points) == 1
    assert [p.seconds for p in points] == sorted(p.seconds for p in points)
    short = result.environment.image.split("(", 1)[1].split(")")[0]  # the id the run used (the tag may move since)
    assert result.environment.image_digest.startswith(short) and len(result.environment.image_digest) == 71


def test_a_grading_cannot_resume_with_another_target_or_curve(tmp_path):
    from harness.organizer.grade import GradeError, make_plan

    out = tmp_path / "grading"
    plan = make_plan(out, RunOptions(curve=True, target=0.9), [CENTROID], None)
    assert plan["options"]["curve"] is True and plan["options"]["target"] == 0.9
    assert make_plan(out, RunOptions(curve=True, target=0.9), [CENTROID], None)["entries"] == plan["entries"]
    with pytest.raises(GradeError, match="--target 0.9 -> 0.85"):
        make_plan(out, RunOptions(curve=True), [CENTROID], None)
    with pytest.raises(GradeError, match="--curve True -> False"):
        make_plan(out, RunOptions(target=0.9), [CENTROID], None)
