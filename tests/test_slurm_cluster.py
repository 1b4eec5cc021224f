"""`grade --backend slurm` against the real single-node cluster (deploy/slurm/start-cluster.sh):
the same leaderboard as a local grade, a task cancelled or killed from outside is requeued and not
counted, a killed client resumes without re-running or double counting, --detach/--status and Ctrl-C
without a terminal. Skipped, with the reason, where the cluster cannot start."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tests import helpers
from tests.helpers import CENTROID, ENTRIES, ROOT, read_json, run_harness, stage_hostile
from tests.slurm_support import queue, slow_entry, state, wait_for

pytestmark = pytest.mark.usefixtures("slurm_cluster")
ENV = {"HAET_SLURM_POLL_S": "0.5"}
SLURM = ["--backend", "slurm", "--cpus-per-task", "1", "--mem", "1G"]  # two runs at a time on the 2-CPU node


# Two seeds of 4 s unless a test asks for more: every run queues on the one 2-CPU node.
grade_args = partial(helpers.grade_args, repeats=2, budget=4)


def slurm(tmp_path: Path, out: Path, *entries, **kwargs) -> subprocess.CompletedProcess:
    kwargs["extra"] = [*SLURM, *kwargs.get("extra", ())]
    return run_harness(*grade_args(tmp_path, out, *entries, **kwargs), env=ENV, timeout=600)


def start(args: list) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def final_results(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/seed-*/result.json") if ".stale-" not in p.parent.name)


def started_task(out: Path, key: str):
    """The task of `key`, once it started and its harness made the run's directory; else None."""
    task = state(out)["runs"].get(key, {}).get("task")
    began = task and (out / ".slurm" / "tasks" / f"{task}.start.json").exists() and (out / key).is_dir()
    return task if began else None


def test_slurm_and_local_grade_give_the_same_leaderboard(tmp_path):
    entries = [CENTROID, ENTRIES / "crash", stage_hostile("ignore-sigterm", tmp_path / "ignore-sigterm")]
    local = run_harness(*grade_args(tmp_path, tmp_path / "local", *entries), timeout=600)
    assert local.returncode == 0, local.stderr
    on_slurm = slurm(tmp_path, tmp_path / "slurm", *entries, extra=["--max-parallel", "2"])
    assert on_slurm.returncode == 0, on_slurm.stderr
    assert "submitted 6 run(s) as job array(s)" in on_slurm.stderr
    # The test cluster's MaxArraySize is 5 (deploy/slurm/start-cluster.sh): the plan is split, the
    # second array waiting for the first so that --max-parallel holds for the whole plan.
    arrays = state(tmp_path / "slurm")["arrays"]
    assert [len(a["runs"]) for a in arrays] == [5, 1]
    second = (tmp_path / "slurm" / ".slurm" / "scripts" / f"{arrays[1]['job_id']}.sh").read_text()
    assert "#SBATCH --array=0-0%2" in second
    tasks = tmp_path / "slurm" / ".slurm" / "tasks"
    first_ended = max(read_json(p)["at"] for p in tasks.glob(f"{arrays[0]['job_id']}_*.end.json"))
    (second_started,) = [read_json(p)["at"] for p in tasks.glob(f"{arrays[1]['job_id']}_*.start.json")]
    assert second_started > first_ended  # ISO UTC times compare as text

    compared = ["entry", "rank", "accuracy_mean", "seeds_failed", "accuracy_seed_0", "accuracy_seed_1"]
    board_local = rows(tmp_path / "local" / "leaderboard.csv")
    board_slurm = rows(tmp_path / "slurm" / "leaderboard.csv")
    assert [{k: r[k] for k in compared} for r in board_slurm] == [{k: r[k] for k in compared} for r in board_local]
    assert [r["entry"] for r in board_slurm] == ["centroid", "ignore-sigterm", "crash"]
    assert float(board_slurm[0]["accuracy_mean"]) > 0.3 and float(board_slurm[2]["accuracy_mean"]) == 0.0

    runs_local, runs_slurm = rows(tmp_path / "local" / "runs.csv"), rows(tmp_path / "slurm" / "runs.csv")
    same = ["entry", "seed", "status", "accuracy_counted", "train_outcome", "data_sha256", "submission_sha256"]
    assert [{k: r[k] for k in same} for r in runs_slurm] == [{k: r[k] for k in same} for r in runs_local]
    sigterm = [r for r in runs_slurm if r["entry"] == "ignore-sigterm"]
    # The entry's own kill is its result, as locally.
    assert {r["train_outcome"] for r in sigterm} == {"killed_at_deadline"}
    for r in runs_slurm:  # the per-run table says where and how each ran
        assert r["slurm_job"] and r["node"] and r["attempts"] == "1", r
        assert r["slurm_state"] == ("FAILED" if r["entry"] == "crash" else "COMPLETED"), r
    assert all(r["slurm_job"] == "" and r["node"] for r in runs_local)


def harness_run_pids(out: Path, entry: str) -> list[int]:
    """The `harness run` processes a Slurm task started for one entry of this grading (by their command line)."""
    found = []
    marker = f"--runs-dir\0{out}/{entry}\0"
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_text()
        except OSError:
            continue
        if "\0harness\0run\0" in cmdline and marker in cmdline:
            found.append(int(proc.name))
    return found


def test_a_task_cancelled_or_killed_from_outside_is_requeued_and_not_counted(tmp_path):
    out = tmp_path / "grading"
    cancelled, killed = slow_entry(tmp_path / "cancelled", 3), slow_entry(tmp_path / "killed", 3)
    grader = start(grade_args(tmp_path, out, cancelled, killed, repeats=1, budget=8, extra=SLURM))

    task = wait_for(lambda: started_task(out, "cancelled/seed-0"), 120, "the task of `cancelled` to start")
    subprocess.run(["scancel", task], check=True, timeout=30)  # an admin's scancel, not the organizer's
    wait_for(lambda: started_task(out, "killed/seed-0"), 120, "the task of `killed` to start")
    pids = wait_for(lambda: harness_run_pids(out, "killed"), 60, "the harness run of `killed`")
    for pid in pids:  # the harness dies before it can write a result (an OOM kill, a node that goes away)
        os.kill(pid, signal.SIGKILL)
    stdout, stderr = grader.communicate(timeout=300)
    assert grader.returncode == 0, stderr
    assert stderr.count("platform failure") == 2 and "requeued (1/2), not counted" in stderr, stderr

    for entry, first_state in (("cancelled", "CANCELLED"), ("killed", None)):
        result = read_json(out / entry / "seed-0" / "result.json")
        assert result["status"] == "scored" and result["accuracy"] > 0.3, result.get("reason")
        record = read_json(out / entry / "seed-0" / "slurm.json")
        assert record["attempts"] == 2 and len(record["failures"]) == 1, record
        if first_state:
            assert record["failures"][0]["state"] == first_state
        # The failed attempt was kept aside, not deleted, and its partial result never counts.
        stale = list((out / entry).glob("seed-0.stale-*"))
        assert len(stale) == 1
        assert not (stale[0] / "result.json").exists() or read_json(stale[0] / "result.json")["status"] == "interrupted"
    # The stopped attempt finished writing before it was kept aside: nothing strayed into a new attempt.
    assert not list(out.glob("*/seed-0-*"))
    board = rows(out / "runs.csv")
    assert [(r["entry"], r["status"], r["attempts"]) for r in board] == [
        ("cancelled", "scored", "2"),
        ("killed", "scored", "2"),
    ]
    assert all(float(r["accuracy_counted"]) > 0.3 for r in board)


def test_a_killed_client_resumes_without_rerunning_or_double_counting(tmp_path):
    out = tmp_path / "grading"
    slow = slow_entry(tmp_path / "slow", 2)
    args = grade_args(tmp_path, out, slow, repeats=3, budget=6, extra=[*SLURM, "--max-parallel", "1"])
    client = start(args)
    done = wait_for(lambda: final_results(out) or None, 180, "a first result")
    wait_for(lambda: len(list((out / ".slurm" / "tasks").glob("*.start.json"))) >= 2, 120, "a second task to start")
    client.kill()  # SIGKILL: no chance to save anything more
    client.communicate(timeout=30)
    first = {p: p.read_bytes() for p in done}
    (job_id,) = [a["job_id"] for a in state(out)["arrays"]]

    resumed = slurm(tmp_path, out, slow, repeats=3, budget=6, extra=["--max-parallel", "1"])
    assert resumed.returncode == 0, resumed.stderr
    assert "0 to submit" in resumed.stderr and "still in Slurm's queue" in resumed.stderr
    assert [a["job_id"] for a in state(out)["arrays"]] == [job_id], "nothing may be submitted twice"
    assert sorted(queue([job_id])) == [f"{job_id}_{i}" for i in range(3)]
    for path, content in first.items():
        assert path.read_bytes() == content
    assert len(final_results(out)) == 3 and not list(out.glob("*/seed-*.stale-*"))
    runs = rows(out / "runs.csv")
    assert [(r["seed"], r["status"], r["attempts"]) for r in runs] == [(str(s), "scored", "1") for s in range(3)]
    board = rows(out / "leaderboard.csv")
    assert len(board) == 1 and board[0]["seeds_failed"] == "0"


def test_detach_status_and_collect_round_trip(tmp_path):
    out = tmp_path / "grading"
    slow = slow_entry(tmp_path / "slow", 3)
    entries = [slow, ENTRIES / "crash"]
    detached = slurm(tmp_path, out, *entries, budget=8, extra=["--detach", "--max-parallel", "1"])
    assert detached.returncode == 0, detached.stderr
    assert "detached" in detached.stderr and "submitted 4 run(s)" in detached.stderr
    assert not (out / "leaderboard.csv").exists() or len(final_results(out)) < 4

    status = run_harness("grade", "--status", out)
    assert status.returncode == 0, status.stderr
    counts = r"4 runs: \d done, \d failed, \d running, \d queued, 0 not submitted"
    assert re.search(counts, status.stdout), status.stdout
    assert "min left" in status.stdout

    # A local grade must not touch runs that Slurm is still writing.
    local = run_harness(*grade_args(tmp_path, out, *entries, budget=8))
    assert local.returncode == 2 and "still in Slurm's queue" in local.stderr

    def all_ended():
        answer = run_harness("grade", "--status", out).stdout
        return "every run has ended" in answer and answer

    final_status = wait_for(all_ended, 240, "every task to end", interval=1)
    assert "2 done, 2 failed, 0 running, 0 queued" in final_status

    collected = slurm(tmp_path, out, *entries, budget=8, extra=["--max-parallel", "1"])
    assert collected.returncode == 0, collected.stderr
    assert "0 still in Slurm's queue, 0 to submit" in collected.stderr, collected.stderr
    assert collected.stderr.count(": scored") == 2 and collected.stderr.count(": failed") == 2  # collected once each
    runs = rows(out / "runs.csv")
    assert sorted((r["entry"], r["status"], r["slurm_state"]) for r in runs) == [
        ("crash", "failed", "FAILED"),
        ("crash", "failed", "FAILED"),
        ("slow", "scored", "COMPLETED"),
        ("slow", "scored", "COMPLETED"),
    ]
    assert "nothing left to run" in run_harness("grade", "--status", out).stdout


def test_ctrl_c_without_a_terminal_detaches_and_says_so(tmp_path):
    out = tmp_path / "grading"
    slow = slow_entry(tmp_path / "slow", 3)
    client = start(grade_args(tmp_path, out, slow, repeats=1, budget=8, extra=SLURM))
    wait_for(lambda: state(out)["arrays"] or None, 120, "the submission")
    client.send_signal(signal.SIGINT)
    _, stderr = client.communicate(timeout=60)
    assert client.returncode == 130, stderr
    assert "without a terminal" in stderr and "detaching" in stderr
    (job_id,) = [a["job_id"] for a in state(out)["arrays"]]
    assert not any(a["cancelled_by_organizer"] for a in state(out)["arrays"])
    # The run goes on in Slurm and ends on its own; the next grade collects it.
    wait_for(lambda: set(queue([job_id]).values()) == {"COMPLETED"}, 180, "the task to complete", interval=1)
    collected = slurm(tmp_path, out, slow, repeats=1, budget=8)
    assert collected.returncode == 0, collected.stderr
    assert read_json(out / "slow" / "seed-0" / "result.json")["status"] == "scored"


def test_resume_across_backends_submits_only_runs_without_a_final_result(tmp_path):
    out = tmp_path / "grading"
    first = run_harness(*grade_args(tmp_path, out, CENTROID))  # locally: centroid's 2 seeds
    assert first.returncode == 0, first.stderr
    local_results = {p: p.read_bytes() for p in final_results(out)}
    assert len(local_results) == 2
    both = slurm(tmp_path, out, CENTROID, ENTRIES / "crash")
    assert both.returncode == 0, both.stderr
    assert "2 run(s) already done" in both.stderr and "submitted 2 run(s)" in both.stderr
    assert sorted(state(out)["runs"]) == ["crash/seed-0", "crash/seed-1"]
    for path, content in local_results.items():
        assert path.read_bytes() == content
    runs = rows(out / "runs.csv")
    assert [(r["entry"], r["slurm_job"] != "") for r in runs] == [
        ("centroid", False),
        ("centroid", False),
        ("crash", True),
        ("crash", True),
    ]


def test_an_array_submitted_but_not_written_down_is_refused_not_run_twice(tmp_path):
    from harness.organizer.slurm.command import job_name

    out = tmp_path / "grading"
    stray = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--job-name={job_name(out)}",
            "--array=0-1",
            "--mem=10M",
            "--output=/dev/null",
            "--wrap",
            "sleep 60",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    job_id = stray.stdout.strip().split(";")[0]
    try:
        proc = slurm(tmp_path, out, CENTROID)
        assert proc.returncode == 2, proc.stderr
        assert f"job array(s) {job_id} of this grading are in Slurm's queue but not in" in proc.stderr
        assert f"scancel {job_id}" in proc.stderr
        assert not state(out)["arrays"], "nothing may be submitted beside it"
    finally:
        subprocess.run(["scancel", job_id], timeout=30)


def test_retries_exhausted_leave_the_run_pending_never_zero(tmp_path):
    out = tmp_path / "grading"
    slow = slow_entry(tmp_path / "slow", 3)
    client = start(grade_args(tmp_path, out, slow, repeats=1, budget=8, extra=[*SLURM, "--retries", "0"]))
    task = wait_for(lambda: started_task(out, "slow/seed-0"), 120, "the task to start")
    subprocess.run(["scancel", task], check=True, timeout=30)
    _, stderr = client.communicate(timeout=300)
    assert client.returncode == 1, stderr
    assert "1 failure(s) exceed --retries 0: not counted, left pending" in stderr
    assert "1 run(s) failed on the cluster more than --retries 0 times" in stderr
    (run,) = rows(out / "runs.csv")
    assert run["status"] == "pending" and run["accuracy_counted"] == "", run  # pending, not a 0
    assert rows(out / "leaderboard.csv")[0]["accuracy_mean"] == ""

    # A new grade command has its own --retries: the run is submitted again.
    again = slurm(tmp_path, out, slow, repeats=1, budget=8, extra=["--retries", "0"])
    assert again.returncode == 0, again.stderr
    assert "submitted 1 run(s)" in again.stderr
    (run,) = rows(out / "runs.csv")
    assert run["status"] == "scored" and run["attempts"] == "2" and float(run["accuracy_counted"]) > 0.3


def test_ctrl_c_on_a_terminal_asks_and_scancel_is_not_a_platform_failure(tmp_path):
    out = tmp_path / "grading"
    slow = slow_entry(tmp_path / "slow", 20)
    primary, secondary = os.openpty()
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            *map(str, grade_args(tmp_path, out, slow, repeats=1, budget=30, extra=SLURM)),
        ],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
    )
    os.close(secondary)
    task = wait_for(lambda: started_task(out, "slow/seed-0"), 120, "the task to start")
    client.send_signal(signal.SIGINT)
    seen = b""
    while b"detach and let them run [d]?" not in seen:
        seen += os.read(primary, 4096)
    os.write(primary, b"c\n")
    assert client.wait(timeout=60) == 130
    os.close(primary)
    job_id = task.split("_")[0]
    assert state(out)["arrays"][0]["cancelled_by_organizer"] is True
    wait_for(lambda: queue([job_id]).get(task) == "CANCELLED", 60, "the organizer's scancel")

    resumed = slurm(tmp_path, out, slow, repeats=1, budget=30)
    assert resumed.returncode == 0, resumed.stderr
    assert "cancelled by the organizer; it runs again" in resumed.stderr and "platform failure" not in resumed.stderr
    record = read_json(out / "slow" / "seed-0" / "slurm.json")
    assert record["attempts"] == 1 and record["failures"] == []  # the organizer's scancel is not a failure
    assert read_json(out / "slow" / "seed-0" / "result.json")["status"] == "scored"


def test_the_start_script_is_idempotent():
    again = subprocess.run(
        ["bash", str(ROOT / "deploy" / "slurm" / "start-cluster.sh")], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "cluster already answers" in again.stderr
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30).stdout
    assert node.split()[0] in ("idle", "mixed", "allocated", "completing")
