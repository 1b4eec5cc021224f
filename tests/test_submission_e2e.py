"""End-to-end checks of the bundled submission as the harness runs it: subprocesses, HAET_* env."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("torch")
pytest.importorskip("yaml")

SUBMISSION_DIR = Path(__file__).resolve().parents[1] / "submission"
FAST = ["--set", "width=0.125", "--set", "batch_size=32", "--set", "ckpt_every_s=1"]


def synthetic_data(root, n_train=200, n_test=50):
    """A toy problem (each class has its own mean colour); only the plumbing is checked here."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (10, 3))

    def make(n):
        labels = np.arange(n) % 10
        images = np.clip(colours[labels][:, None, None, :] + rng.normal(0, 30, (n, 32, 32, 3)), 0, 255)
        return images.astype(np.uint8), labels.astype(np.int64)

    (root / "train").mkdir()
    (root / "test").mkdir()
    x, y = make(n_train)
    np.savez(root / "train" / "train.npz", images=x, labels=y, classes=np.array([f"c{i}" for i in range(10)]))
    x, y = make(n_test)
    np.savez(root / "test" / "test.npz", images=x)
    return y


def phase_env(tmp_path, data, budget, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAET_")}
    env.update(
        HAET_DATA=str(data),
        HAET_CHECKPOINTS=str(tmp_path / "ckpt"),
        HAET_EVENTS=str(tmp_path / "events.jsonl"),
        HAET_BUDGET_S=str(budget),
        HAET_DEADLINE=f"{time.time() + budget:.3f}",
        HAET_SEED="0",
        HAET_DEVICE="cpu",
        HAET_GRACE_S="2",
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def events(tmp_path):
    path = tmp_path / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow  # its epoch plan must end before SIGTERM: a starved epoch overran it
def test_train_then_predict_writes_valid_csv(tmp_path):
    labels = synthetic_data(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "out").mkdir()
    # 24 s: the imports, the data and the plan took up to 16 s of a 16 s budget on a busy machine,
    # leaving no epoch to see; training then runs, by the clock, until its own end before SIGTERM.
    budget = 24
    env = phase_env(tmp_path, tmp_path / "train", budget=budget)
    t0 = time.time()
    train = subprocess.run(
        [sys.executable, "train.py", "--preset", "all", *FAST],
        cwd=SUBMISSION_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=budget + 30,
    )
    assert train.returncode == 0, train.stderr
    assert time.time() - t0 < budget - 2, "training must end before the SIGTERM (deadline - grace)"
    assert any(n.startswith("ckpt-") for n in os.listdir(tmp_path / "ckpt"))
    kinds = [e["event"] for e in events(tmp_path)]
    assert "config" in kinds and "epoch" in kinds and kinds[-1] == "done"
    assert all("time" in e for e in events(tmp_path))

    env = phase_env(tmp_path, tmp_path / "test", budget=60, HAET_OUTPUT=str(tmp_path / "out"))
    pred = subprocess.run(
        [sys.executable, "predict.py"], cwd=SUBMISSION_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert pred.returncode == 0, pred.stderr
    lines = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "index,label"
    rows = [tuple(map(int, line.split(","))) for line in lines[1:]]
    assert [i for i, _ in rows] == list(range(len(labels)))
    assert all(0 <= label < 10 for _, label in rows)


def test_planned_epochs_end_training_early_and_predict_averages_the_ensemble(tmp_path):
    """A plan of 3 epochs of a 2-member ensemble with time to spare: the loop stops after exactly
    3 epochs, long before the deadline, and predict.py reads the ensemble checkpoint."""
    labels = synthetic_data(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "out").mkdir()
    env = phase_env(tmp_path, tmp_path / "train", budget=300)
    t0 = time.time()
    train = subprocess.run(
        [sys.executable, "train.py", *FAST, "--set", "members=2", "--set", "epochs=3"],
        cwd=SUBMISSION_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert train.returncode == 0, train.stderr
    assert time.time() - t0 < 120
    config = next(e for e in events(tmp_path) if e["event"] == "config")
    assert (config["members"], config["planned_epochs"]) == (2, 3)
    assert [e["epoch"] for e in events(tmp_path) if e["event"] == "epoch"] == [1, 2, 3]
    assert events(tmp_path)[-1]["stopped_by_signal"] == 0

    env = phase_env(tmp_path, tmp_path / "test", budget=60, HAET_OUTPUT=str(tmp_path / "out"))
    pred = subprocess.run(
        [sys.executable, "predict.py"], cwd=SUBMISSION_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert pred.returncode == 0, pred.stderr
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()[1:]
    assert len(rows) == len(labels)


@pytest.mark.slow  # its first epoch must come within 30 s: on a starved core the set-up alone took that
def test_sigterm_saves_and_exits_zero_within_grace(tmp_path):
    synthetic_data(tmp_path)
    (tmp_path / "ckpt").mkdir()
    env = phase_env(tmp_path, tmp_path / "train", budget=120)
    proc = subprocess.Popen(
        [sys.executable, "train.py", "--preset", "default", *FAST],
        cwd=SUBMISSION_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 30
        while not any(e["event"] == "epoch" for e in events(tmp_path)):  # mid-training
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        t0 = time.time()
        assert proc.wait(timeout=10) == 0, proc.communicate()
        assert time.time() - t0 < 5  # well inside the harness's grace
    finally:
        if proc.poll() is None:
            proc.kill()
    done = [e for e in events(tmp_path) if e["event"] == "done"]
    assert done and done[0]["stopped_by_signal"] == 1
    assert any(n.startswith("ckpt-") for n in os.listdir(tmp_path / "ckpt"))


def test_missing_env_var_is_named(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAET_")}
    proc = subprocess.run(
        [sys.executable, "train.py"], cwd=SUBMISSION_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "HAET_DATA" in proc.stderr
