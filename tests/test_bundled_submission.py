"""The graded run a user starts first: the bundled ResNet-9 entry, end to end, on CPU."""

import json

import pytest

from tests.helpers import ROOT, SHARED_TARBALL, copy_entry, only_run_dir, read_json, run_harness

# The bundled entry on a machine so loaded that its budget plan outlasts the whole budget: the plan
# never returns, and only the SIGKILL at the deadline ends the phase.
SLOW_START = """import time

import train  # first, as when train.py runs: its SIGTERM handler is installed before torch is imported
import budget

budget.plan_budget = lambda *args: time.sleep(3600)
train.main()
"""


@pytest.mark.slow
def test_bundled_submission_is_scored_on_cpu(tmp_path, synthetic_npz):
    if SHARED_TARBALL.exists():  # the run the issue names: shared CIFAR-10, 90 s on CPU
        data, budget, floor = f"tar:{SHARED_TARBALL}", "90", 0.35
        # The default data cache, as the check and Docker tarball tests use: CIFAR-10 is decoded once
        # per machine (11 CPU s), not again on this test's one core ahead of its budget.
        extra = []
    else:  # a user's machine without the tarball: the contract still holds on synthetic data
        data, budget, floor = synthetic_npz, "30", 0.3
        extra = ["--cache-dir", str(tmp_path / "cache"), "--train-per-class", "60", "--eval-per-class", "20"]
    proc = run_harness(
        "run",
        "--submission",
        str(ROOT / "submission"),
        "--runner",
        "local",
        "--device",
        "cpu",
        "--data",
        data,
        "--budget",
        budget,
        "--runs-dir",
        str(tmp_path / "runs"),
        *extra,
        timeout=600,
    )
    run = only_run_dir(tmp_path / "runs")
    result = read_json(run / "result.json")
    assert proc.returncode == 0, (result["reason"], (run / "train.log").read_text()[-3000:])
    assert result["status"] == "scored"
    assert result["train"]["outcome"] in ("completed", "killed_at_deadline")
    assert result["train"]["seconds"] <= float(budget) + 0.5
    # the default predict budget for 90 s or 30 s is its floor, 20 s; predict.py drops views rather than overrun it
    assert result["predict"]["budget_s"] == 20 and result["predict"]["outcome"] == "completed"
    print((run / "predict.log").read_text()[-300:])  # how many test-time views fit, for the record
    # Accuracy targets are measured by the ablation (docs/results.md); this only catches a broken model.
    assert result["accuracy"] >= floor
    assert any(e.get("event") == "epoch" for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()))


def test_a_start_too_slow_to_train_still_leaves_a_model_to_score(tmp_path, synthetic_npz):
    """The rules score the last model saved: the entry saves an untrained one before its budget
    plan, so a run whose set-up outlasts the budget is scored (at chance) instead of failing. The
    budgets leave room for imports that took 16 s of a 20 s budget on a loaded 2-core machine."""
    entry = copy_entry(ROOT / "submission", tmp_path / "entry")
    (entry / "slow_start.py").write_text(SLOW_START)
    manifest = entry / "submission.yaml"
    manifest.write_text(manifest.read_text().replace("train: python train.py", "train: python slow_start.py"))
    proc = run_harness(
        "run",
        "--submission",
        entry,
        "--runner",
        "local",
        "--device",
        "cpu",
        "--data",
        synthetic_npz,
        "--budget",
        "30",
        "--predict-budget",
        "60",
        "--runs-dir",
        tmp_path / "runs",
        "--cache-dir",
        tmp_path / "cache",
        "--train-per-class",
        "60",
        "--eval-per-class",
        "20",
        timeout=300,
    )
    run = only_run_dir(tmp_path / "runs")
    result = read_json(run / "result.json")
    assert proc.returncode == 0 and result["status"] == "scored", (result["reason"], (run / "train.log").read_text())
    assert result["train"]["outcome"] == "killed_at_deadline"
    assert [c["name"] for c in result["train"]["checkpoints"]] == ["ckpt-000001.pt"]
    kinds = [json.loads(line).get("event") for line in (run / "events.jsonl").read_text().splitlines()]
    assert "checkpoint" in kinds and "config" not in kinds, "saved before the plan, which never ended"
    assert "checkpoint step 0, epoch 0" in (run / "predict.log").read_text()
