"""Predict is not a second training budget (harness/predict_rule.py, docs/security.md).

The hostile entry predict-training keeps its training set beside its model and goes on training
in predict until its own HAET_BUDGET_S deadline. Under the default options its predict phase
gets the default budget for the training budget and no more; its time and CPU seconds are in
result.json and the report. An organizer who grants more with --predict-budget gets a warning
naming the predict phase, and under --strict-predict the run fails. The same entry and its two
siblings run under the sandbox (tests/test_sandbox_hostile.py) and Docker
(tests/test_docker_hostile.py) against the table in tests/hostile_outcomes.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.console import Progress
from harness.model import Status
from harness.monitor import Monitor, Sample
from harness.options import PREDICT_FLOOR_S, RunOptions, default_predict_budget
from harness.run import graded_run
from harness.runners.local import LocalRunner
from tests.helpers import only_run_dir, run_harness, stage_hostile
from tests.hostile_outcomes import DEFAULTS, EXPECTED

GRANTED_S = PREDICT_FLOOR_S + 8  # over the default for a 3 s training budget; the entry, which stops 4.5 s
# before its own deadline (grace and margins), then runs past the default


def test_the_default_follows_the_training_budget():
    assert default_predict_budget(3) == default_predict_budget(90) == PREDICT_FLOOR_S == 20
    assert default_predict_budget(600) == 60
    assert RunOptions(budget_s=600).predict_budget_s == 60 and RunOptions(budget_s=30).predict_budget_s == 20


def test_the_monitor_integrates_cpu_and_gpu_busy_seconds(tmp_path):
    monitor = Monitor(lambda: (None, None), None, "", 0.5, None)
    monitor.samples = [
        Sample(0.0, 0.0, 1, []),
        Sample(0.5, 200.0, 1, [{"util": 50.0}, {"util": 100.0}]),
        Sample(1.5, 100.0, 1, [{"util": None}, {"util": 100.0}]),
        Sample(2.0, None, None, []),
    ]
    assert monitor.compute() == (2.0, 1.75)  # 2 cores x 0.5 s + 1 core x 1 s; 1.5 x 0.5 s + 1 x 1 s
    assert Monitor(lambda: (None, None), None, "", 0.5, None).compute() == (None, None)
    monitor.stop()
    assert not list(tmp_path.iterdir()), "a monitor without a csv path writes no metrics.csv"


def test_predict_training_is_cut_at_the_default_under_the_local_runner(tmp_path, synthetic_npz):
    entry = stage_hostile("predict-training", tmp_path / "predict-training")
    options = RunOptions(
        **{**DEFAULTS, "predict_budget_s": None},
        submission=entry,
        data=synthetic_npz,
        device="cpu",
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        run_id="local",
    )
    result = graded_run(options, LocalRunner(), Progress(quiet=True))
    EXPECTED["predict-training"].check(result, tmp_path / "runs" / "local", entry)


def _granted(tmp_path: Path, synthetic_npz: str, *extra: str):
    entry = stage_hostile("predict-training", tmp_path / "predict-training")
    runs = tmp_path / "runs"
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
        "3",
        "--grace",
        "1",
        "--predict-budget",
        GRANTED_S,
        "--train-per-class",
        "20",
        "--eval-per-class",
        "10",
        "--runs-dir",
        runs,
        "--cache-dir",
        tmp_path / "cache",
        *extra,
    )
    run = only_run_dir(runs)
    return proc, run, json.loads((run / "result.json").read_text())


def test_a_granted_predict_budget_is_said_and_a_longer_predict_is_a_warning(tmp_path, synthetic_npz):
    proc, run, result = _granted(tmp_path, synthetic_npz)
    assert proc.returncode == 0, proc.stderr[-2000:]
    granted = next(w for w in result["warnings"] if "granted" in w)
    assert granted.startswith(f"the predict phase was granted {GRANTED_S - PREDICT_FLOOR_S:g}s over its default")
    assert f"warning: {granted}" in proc.stdout + proc.stderr, "said at the start, on the console"
    seconds = result["predict"]["seconds"]
    assert PREDICT_FLOOR_S < seconds <= GRANTED_S, "the entry trained until its own deadline, past the default"
    over = next(w for w in result["warnings"] if w.startswith("the predict phase ran"))
    assert f"ran {seconds:.1f}s, over the default predict budget of {PREDICT_FLOOR_S:g}s" in over
    assert "predict-phase compute can buy accuracy" in over
    assert result["status"] == Status.SCORED.value, "a warning, not a failure, without --strict-predict"
    report = (run / "report.md").read_text()
    assert over in report and granted in report


def test_strict_predict_fails_a_predict_longer_than_the_default(tmp_path, synthetic_npz):
    proc, run, result = _granted(tmp_path, synthetic_npz, "--strict-predict")
    assert proc.returncode == 3, "graded but not scored"
    assert result["status"] == Status.FAILED.value and result["accuracy"] is None
    assert result["reason"].startswith("--strict-predict: the predict phase ran"), result["reason"]
    assert result["options"]["strict_predict"] is True
    assert result["reason"] in (run / "report.md").read_text()
