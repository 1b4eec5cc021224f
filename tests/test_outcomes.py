"""Every outcome of a graded run, with real processes and real signals (local runner)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from harness.model import from_dict
from tests.helpers import CENTROID, ROOT, only_run_dir, pid_alive, read_json, run_harness

TRAIN_OK = (CENTROID / "train.py").read_text()


def grade(tmp_path, submission, data, *extra):
    runs = tmp_path / "runs"
    proc = run_harness(
        "run",
        "--submission",
        str(submission),
        "--runner",
        "local",
        "--device",
        "cpu",
        "--data",
        data,
        "--train-per-class",
        "20",
        "--eval-per-class",
        "10",
        "--runs-dir",
        str(runs),
        "--cache-dir",
        str(tmp_path / "cache"),
        *extra,
    )
    run = only_run_dir(runs)
    return proc, run, read_json(run / "result.json")


def test_completed_run_is_scored_with_every_file(tmp_path, synthetic_npz):
    proc, run, result = grade(tmp_path, CENTROID, synthetic_npz, "--budget", "30")
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "scored" and result["train"]["outcome"] == "completed"
    assert result["accuracy"] == result["correct"] / result["total"] and result["total"] == 100
    assert result["accuracy"] > 0.5, "the synthetic classes are easy for nearest-mean"
    assert result["data"]["data_sha256"] and result["environment"]["python"]
    for name in (
        "result.json",
        "events.jsonl",
        "train.log",
        "predict.log",
        "metrics.csv",
        "predictions.csv",
        "report.md",
        "report.html",
    ):
        assert (run / name).is_file(), name
    assert not (run / ".work").exists(), "data copies and checkpoints are cleaned up"
    assert '"train_acc"' in (run / "events.jsonl").read_text()
    assert from_dict(result).train.checkpoints[0]["name"] == "model.npy"
    assert "accuracy" in proc.stderr and "scored" in proc.stderr  # the summary table


def test_submission_ignoring_sigterm_is_killed_at_the_deadline(tmp_path, synthetic_npz, make_submission):
    sub = make_submission(
        "stubborn",
        TRAIN_OK
        + """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(0.1)
""",
    )
    proc, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "3", "--grace", "1")
    train = result["train"]
    assert train["outcome"] == "killed_at_deadline"
    assert [s["name"] for s in train["signals"]] == ["SIGTERM", "SIGKILL"]
    assert 2.0 <= train["signals"][0]["at_s"] < 2.5 and 3.0 <= train["signals"][1]["at_s"] < 3.5
    assert 3.0 <= train["seconds"] < 4.0 and train["exit_code"] == -signal.SIGKILL
    assert result["status"] == "scored", "the last saved model still counts under the rules"


def test_graceful_submission_stops_on_sigterm(tmp_path, synthetic_npz, make_submission):
    sub = make_submission(
        "graceful",
        """
import signal, sys, time
def stop(*_):
    __import__("runpy").run_path("save.py")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(0.05)
""",
    )
    (sub / "save.py").write_text(TRAIN_OK)
    proc, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "3", "--grace", "1.5")
    assert result["train"]["outcome"] == "killed_at_deadline"
    assert [s["name"] for s in result["train"]["signals"]] == ["SIGTERM"]
    assert result["train"]["exit_code"] == 0 and result["train"]["seconds"] < 3.0
    assert result["status"] == "scored"


def test_children_that_outlive_the_submission_are_killed(tmp_path, synthetic_npz, make_submission):
    pid_file = tmp_path / "escaped.pid"
    sub = make_submission(
        "escaper",
        f"""
import os, time
if os.fork() == 0:          # double fork + setsid: no longer in the submission's session
    os.setsid()
    if os.fork() == 0:
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        while True:
            time.sleep(0.1)
    os._exit(0)
while not os.path.exists({str(pid_file)!r}):
    time.sleep(0.01)
"""
        + TRAIN_OK,
    )
    proc, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "20")
    escaped = int(pid_file.read_text())
    assert result["train"]["outcome"] == "completed"
    assert result["train"]["stray_processes_killed"] >= 1
    assert any("outlived the command" in w for w in result["warnings"])
    assert not pid_alive(escaped)
    assert result["status"] == "scored"


def test_a_bounded_fork_storm_is_cleaned_up(tmp_path, synthetic_npz, make_submission):
    sub = make_submission(
        "forker",
        TRAIN_OK
        + """
import os, time
for _ in range(6):              # 64 processes, each still forking when the deadline comes
    os.fork()
while True:
    time.sleep(0.05)
""",
    )
    proc, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "3", "--grace", "1")
    assert result["train"]["outcome"] == "killed_at_deadline"
    assert result["status"] == "scored"
    leftovers = subprocess.run(["pgrep", "-f", str(sub / "train.py")], capture_output=True, text=True)
    assert leftovers.stdout == ""


def test_no_checkpoint_fails_without_predicting(tmp_path, synthetic_npz, make_submission):
    sub = make_submission("forgetful", "print('trained, saved nothing')\n")
    proc, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "10")
    assert proc.returncode == 3
    assert result["status"] == "failed" and result["train"]["outcome"] == "no_checkpoint"
    assert result["predict"]["outcome"] == "not_started"
    assert "nothing was saved" in result["reason"] and result["accuracy"] is None


def test_crash_reports_exit_code_and_log_tail(tmp_path, synthetic_npz, make_submission):
    sub = make_submission("crasher", "print('loading'); raise RuntimeError('boom: out of ideas')\n")
    proc, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "10")
    assert proc.returncode == 3
    assert result["train"]["outcome"] == "crashed" and result["train"]["exit_code"] == 1
    assert any("boom: out of ideas" in line for line in result["train"]["log_tail"])
    assert result["status"] == "failed" and "exited with code 1" in result["reason"]
    assert "boom: out of ideas" in (run / "train.log").read_text()


def test_bad_predictions_are_invalid_with_the_reason(tmp_path, synthetic_npz, make_submission):
    sub = make_submission(
        "liar",
        TRAIN_OK,
        predict="""
import os
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\\n" + "".join(f"{i},{99 if i == 7 else 0}\\n" for i in range(100)))
""",
    )
    proc, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "10")
    assert proc.returncode == 3
    assert result["status"] == "invalid_predictions"
    assert result["reason"] == "predictions.csv line 9: label 99 is outside 0..9"
    assert result["accuracy"] is None and (run / "predictions.csv").is_file()


def test_predictions_never_written(tmp_path, synthetic_npz, make_submission):
    sub = make_submission("mute", TRAIN_OK, predict="print('forgot to write')\n")
    _, _, result = grade(tmp_path, sub, synthetic_npz, "--budget", "10")
    assert result["status"] == "invalid_predictions" and result["reason"] == "predictions.csv was not written"
    assert result["predict"]["outcome"] == "no_predictions"


def test_predict_past_its_budget_fails(tmp_path, synthetic_npz, make_submission):
    sub = make_submission("slowpoke", TRAIN_OK, predict="import time\ntime.sleep(60)\n")
    _, _, result = grade(tmp_path, sub, synthetic_npz, "--budget", "10", "--predict-budget", "2")
    assert result["predict"]["outcome"] == "killed_at_deadline" and result["predict"]["seconds"] < 3
    assert result["status"] == "failed" and result["reason"].startswith("predict killed_at_deadline")


def test_predict_sees_no_labels_and_read_only_checkpoints(tmp_path, synthetic_npz, make_submission):
    sub = make_submission(
        "curious",
        TRAIN_OK,
        predict=(CENTROID / "predict.py").read_text()
        + """
import numpy as np, os, stat
z = np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))
print("KEYS", sorted(z.files), "FILES", sorted(os.listdir(os.environ["HAET_DATA"])))
mode = os.stat(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy")).st_mode
print("WRITABLE", bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)))
""",
    )
    _, run, result = grade(tmp_path, sub, synthetic_npz, "--budget", "10")
    log = (run / "predict.log").read_text()
    assert "KEYS ['images'] FILES ['test.npz']" in log and "WRITABLE False" in log
    assert result["status"] == "scored"


def test_repeats_report_mean_and_std_over_different_subsets(tmp_path, synthetic_npz):
    proc, run, result = grade(tmp_path, CENTROID, synthetic_npz, "--budget", "20", "--repeats", "3", "--seed", "5")
    assert proc.returncode == 0, proc.stderr
    assert result["kind"] == "series" and len(result["repeats"]) == 3
    accuracies = [r["accuracy"] for r in result["repeats"]]
    assert result["accuracy_mean"] == pytest.approx(sum(accuracies) / 3)
    assert result["accuracy_std"] >= 0 and result["accuracy"] == result["accuracy_mean"]
    assert [r["seed"] for r in result["repeats"]] == [5, 6, 7]
    assert len({r["data"]["data_sha256"] for r in result["repeats"]}) == 3
    for i in (1, 2, 3):
        assert (run / f"repeat-{i:02d}" / "result.json").is_file()
    assert (run / "report.html").is_file()


def test_a_rerun_never_overwrites_an_earlier_run(tmp_path, synthetic_npz):
    args = [
        "--submission",
        str(CENTROID),
        "--runner",
        "local",
        "--device",
        "cpu",
        "--data",
        synthetic_npz,
        "--train-per-class",
        "20",
        "--eval-per-class",
        "10",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--run-id",
        "same",
        "--budget",
        "20",
    ]
    assert run_harness("run", *args).returncode == 0
    first = (tmp_path / "runs" / "same" / "result.json").read_text()
    assert run_harness("run", *args).returncode == 0
    assert (tmp_path / "runs" / "same" / "result.json").read_text() == first
    assert (tmp_path / "runs" / "same-2" / "result.json").is_file()


def test_ctrl_c_stops_the_submission_and_keeps_a_readable_state(tmp_path, synthetic_npz, make_submission):
    pid_file = tmp_path / "worker.pid"
    sub = make_submission(
        "long",
        TRAIN_OK
        + f"""
import os, time
open({str(pid_file)!r}, "w").write(str(os.getpid()))
while True:
    time.sleep(0.1)
""",
    )
    runs = tmp_path / "runs"
    harness = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--submission",
            str(sub),
            "--runner",
            "local",
            "--device",
            "cpu",
            "--data",
            synthetic_npz,
            "--train-per-class",
            "20",
            "--eval-per-class",
            "10",
            "--budget",
            "120",
            "--runs-dir",
            str(runs),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    harness.send_signal(signal.SIGINT)
    try:
        _, err = harness.communicate(timeout=30)
    finally:  # a harness deaf to SIGINT must not outlive this test and trouble the next ones
        harness.kill()
    assert harness.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert not pid_alive(worker)
    result = read_json(only_run_dir(runs) / "result.json")
    assert result["status"] == "interrupted" and result["train"]["outcome"] == "interrupted"
    assert (only_run_dir(runs) / "train.log").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_a_full_disk_gives_one_clear_message(tmp_path, synthetic_npz):
    runs = tmp_path / "tiny"
    runs.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(runs)]).returncode != 0:
        pytest.skip("tmpfs cannot be mounted here")
    try:
        proc = run_harness(
            "run",
            "--submission",
            str(CENTROID),
            "--runner",
            "local",
            "--device",
            "cpu",
            "--data",
            synthetic_npz,
            "--train-per-class",
            "50",
            "--eval-per-class",
            "10",
            "--budget",
            "10",
            "--runs-dir",
            str(runs),
            "--cache-dir",
            str(tmp_path / "cache"),
        )
    finally:
        subprocess.run(["umount", str(runs)])
    assert proc.returncode == 2
    assert "the disk is full" in proc.stderr and "Traceback" not in proc.stderr
