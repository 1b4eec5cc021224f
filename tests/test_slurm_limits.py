"""`grade --backend slurm` against what a site allows, on the real single-node cluster (2 CPUs,
MaxArraySize 5): defaults fitted to the partition's nodes, an explicit request no node can run refused
before submitting, a grading bigger than the user's job limit submitted in waves, a requeue under
--max-parallel that does not wait for its whole array, and squeue's answers at scale."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import CENTROID, ENTRIES, read_json, run_harness
from tests.slurm_support import limited_sbatch, slow_entry, state, wait_for
from tests.test_slurm_cluster import ENV, SLURM, grade_args, rows, start, started_task

pytestmark = pytest.mark.usefixtures("slurm_cluster")


def test_a_grading_above_the_users_job_limit_goes_out_in_waves(tmp_path):
    from harness.organizer.slurm import client

    limit = client.submit_limit(None)
    if limit is None:
        pytest.skip("the test cluster runs without accounting (HAET_SLURM_ACCOUNTING=0): no per-user job limit")
    out = tmp_path / "grading"
    repeats = limit // 2 + 1  # two entries: more runs than the user may queue
    done = run_harness(
        *grade_args(tmp_path, out, CENTROID, ENTRIES / "crash", repeats=repeats, extra=SLURM), env=ENV, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert f"the site lets this user queue at most {limit} job(s)" in done.stderr
    assert "wait for room under the job limit" in done.stderr
    assert "sbatch refused" not in done.stderr  # read from sacctmgr, never learned the hard way
    arrays = state(out)["arrays"]
    assert sum(len(a["runs"]) for a in arrays) == 2 * repeats
    first_wave = [a for a in arrays if a["submitted_at"] - arrays[0]["submitted_at"] < 1]
    assert sum(len(a["runs"]) for a in first_wave) <= limit
    runs = rows(out / "runs.csv")
    assert sorted((r["entry"], r["status"]) for r in runs) == (
        [("centroid", "scored")] * repeats + [("crash", "failed")] * repeats
    )
    assert all(r["attempts"] == "1" for r in runs)


def test_a_limit_sacctmgr_does_not_show_is_learned_from_sbatchs_refusal(tmp_path):
    out = tmp_path / "grading"
    env = {**ENV, **limited_sbatch(tmp_path / "bin", limit=3)}
    # No --cpus-per-task/--mem: the defaults (8 CPUs) are fitted to the 2-CPU node, not left pending.
    done = run_harness(
        *grade_args(tmp_path, out, CENTROID, ENTRIES / "crash", repeats=2, extra=["--backend", "slurm"]),
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "the defaults do not fit any node of the default partition: using --cpus-per-task 2" in done.stderr
    assert "sbatch refused 4 task(s) for a job limit with 0 of this grading queued" in done.stderr, done.stderr
    assert "waiting in Slurm's queue:" in done.stderr
    arrays = state(out)["arrays"]
    assert sum(len(a["runs"]) for a in arrays) == 4 and all(len(a["runs"]) <= 2 for a in arrays), arrays
    runs = rows(out / "runs.csv")
    assert sorted((r["entry"], r["status"]) for r in runs) == [("centroid", "scored")] * 2 + [("crash", "failed")] * 2
    assert all(r["attempts"] == "1" for r in runs)


def test_a_request_no_node_can_run_is_refused_before_submitting(tmp_path):
    out = tmp_path / "grading"
    done = run_harness(
        *grade_args(tmp_path, out, CENTROID, repeats=1, extra=["--backend", "slurm", "--cpus-per-task", "64"]),
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "--cpus-per-task 64: no node of the default partition has more than 2 CPUs" in done.stderr
    assert "lower --cpus-per-task or choose another --partition" in done.stderr
    assert not state(out)["arrays"]


def test_a_purged_job_id_is_nothing_queued_not_an_error():
    from harness.organizer.slurm import client

    # Slurm 22.05's squeue exits 1 ("Invalid job id specified") when every id asked about is unknown,
    # as after MinJobAge: the grader must then ask sacct and the markers, not retry squeue forever.
    assert subprocess.run(["squeue", "-h", "-j", "999999"], capture_output=True, timeout=30).returncode == 1
    assert client.tasks(["999999"]) == {}


def test_pending_tasks_are_read_from_one_record_per_array():
    from harness.organizer.slurm import client

    stray = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--hold",
            "--array=0-2,4%2",
            "--mem=10M",
            "--output=/dev/null",
            "--job-name=haet-test-compact",
            "--wrap",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    job_id = stray.stdout.strip().split(";")[0]
    try:
        found = client.tasks([job_id])
        assert sorted(found) == sorted(f"{job_id}_{i}" for i in (0, 1, 2, 4))
        assert {t.state for t in found.values()} == {"PENDING"}
        assert {t.reason for t in found.values()} == {"JobHeldUser"}
    finally:
        subprocess.run(["scancel", job_id], timeout=30)


def test_the_state_file_is_written_only_when_it_changed(tmp_path):
    from harness.organizer.slurm import state as store

    state = store.load(tmp_path)
    store.save(tmp_path, state)
    first = (tmp_path / "slurm.json").stat().st_ino  # a rewrite is a new file renamed over it
    store.save(tmp_path, state)
    assert (tmp_path / "slurm.json").stat().st_ino == first
    state["runs"]["a/seed-0"] = {"task": "1_0"}
    store.save(tmp_path, state)
    assert (tmp_path / "slurm.json").stat().st_ino != first


def test_a_requeued_run_under_max_parallel_does_not_wait_for_its_whole_array(tmp_path):
    out = tmp_path / "grading"
    slow = slow_entry(tmp_path / "slow", 4)
    grader = start(grade_args(tmp_path, out, slow, repeats=3, budget=10, extra=[*SLURM, "--max-parallel", "1"]))
    task = wait_for(lambda: started_task(out, "slow/seed-0"), 120, "the first task to start")
    subprocess.run(["scancel", task], check=True, timeout=30)  # an admin's scancel: a platform failure
    _, stderr = grader.communicate(timeout=400)
    assert grader.returncode == 0, stderr
    assert "requeued (1/2), not counted" in stderr
    first, again = state(out)["arrays"]
    assert again["runs"] == ["slow/seed-0"]
    markers = out / ".slurm" / "tasks"
    requeued_start = read_json(markers / f"{again['job_id']}_0.start.json")["at"]
    last_end = read_json(markers / f"{first['job_id']}_2.end.json")["at"]
    assert requeued_start < last_end, "the requeued run waited for the whole original array"
    runs = rows(out / "runs.csv")
    assert [(r["seed"], r["status"], r["attempts"]) for r in runs] == [
        ("0", "scored", "2"),
        ("1", "scored", "1"),
        ("2", "scored", "1"),
    ]


def test_runs_that_can_never_start_stop_the_grading_at_once_with_the_option_to_change(tmp_path):
    out = tmp_path / "grading"
    # The test cluster's partition `short` has MaxTime 1 minute: no run's time limit fits, and Slurm
    # keeps such a job pending (PartitionTimeLimit) instead of refusing it.
    done = run_harness(
        *grade_args(tmp_path, out, CENTROID, repeats=1, extra=[*SLURM, "--partition", "short"]), env=ENV, timeout=300
    )
    assert done.returncode == 2, done.stderr
    (array,) = state(out)["arrays"]
    assert "1 run(s) can never start: Slurm's pending reason is PartitionTimeLimit" in done.stderr, done.stderr
    assert f"`scancel {array['job_id']}`, then grade again with another --partition" in done.stderr
    subprocess.run(["scancel", array["job_id"]], timeout=30)
