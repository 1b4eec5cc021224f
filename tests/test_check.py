"""`harness check`: passes against its own baseline, fails against one it cannot meet."""

from __future__ import annotations

import json

import pytest

from tests.helpers import CENTROID, ROOT, SHARED_TARBALL, read_json, run_harness, synthetic_data

CPU_BASELINE = ROOT / "benchmarks" / "baselines" / "cpu-centroid.json"


def check(baseline, out, *extra):
    return run_harness("check", "--baseline", baseline, "--out", out, "--runner", "local", *extra)


@pytest.mark.skipif(not SHARED_TARBALL.is_file(), reason=f"shared CIFAR-10 tarball {SHARED_TARBALL} is absent")
def test_committed_cpu_baseline_passes(tmp_path):
    proc = check(CPU_BASELINE, tmp_path / "out")  # the default data cache: decoded once per machine
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "out" / "summary.md").read_text().startswith("# Regression check: PASS")
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'tests="3" failures="0"' in junit


def test_update_then_pass_then_fail_against_an_unmeetable_baseline(tmp_path):
    data = synthetic_data(tmp_path)
    baseline = tmp_path / "baseline.json"
    common = ["--cache-dir", tmp_path / "cache"]
    made = check(
        baseline,
        tmp_path / "out0",
        "--update-baseline",
        "--submission",
        CENTROID,
        "--data",
        data,
        "--budget",
        "6",
        "--repeats",
        "2",
        "--device",
        "cpu",
        "--train-per-class",
        "30",
        "--eval-per-class",
        "20",
        *common,
    )
    assert made.returncode == 0, made.stderr
    recorded = read_json(baseline)
    assert recorded["kind"] == "haet-baseline" and recorded["accuracy"]["total"] == 400
    assert recorded["options"]["budget"] == 6 and recorded["options"]["repeats"] == 2
    # This CPU is shared and a centroid "epoch" takes a fraction of a second: only a collapse of
    # throughput is a regression here (the committed CPU baseline does the same).
    recorded["tolerances"]["throughput_drop"] = 0.9
    baseline.write_text(json.dumps(recorded))

    passed = check(baseline, tmp_path / "out1", *common)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "# Regression check: PASS" in passed.stdout

    # Options that would make the comparison unfair are refused.
    unfair = check(baseline, tmp_path / "out2", "--budget", "60", *common)
    assert unfair.returncode == 2 and "differs from the baseline" in unfair.stderr

    recorded["accuracy"].update(mean=0.99, correct=396, total=400)
    recorded["throughput"]["images_per_s"] = 1e12
    baseline.write_text(json.dumps(recorded))
    failed = check(baseline, tmp_path / "out3", *common)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    summary = (tmp_path / "out3" / "summary.md").read_text()
    assert summary.startswith("# Regression check: REGRESSION")
    assert "| accuracy | **FAIL** |" in summary and "| throughput | **FAIL** |" in summary
    junit = (tmp_path / "out3" / "junit.xml").read_text()
    assert 'failures="2"' in junit and '<failure message="accuracy: baseline 99.00%' in junit
    assert read_json(tmp_path / "out3" / "check.json")["passed"] is False


def test_missing_baseline_is_a_usage_error(tmp_path):
    proc = check(tmp_path / "none.json", tmp_path / "out")
    assert proc.returncode == 2 and "--update-baseline" in proc.stderr
