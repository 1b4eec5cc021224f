"""`grade --backend slurm` against what a site allows, on the real single-node cluster (2 CPUs,
MaxArraySize 5): defaults fitted to the partition's nodes, an explicit request no node can run refused
before submitting, and a grading bigger than the user's job limit submitted in waves."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import CENTROID, ENTRIES, run_harness
from tests.slurm_support import limited_sbatch, slurm_cluster, state  # noqa: F401
from tests.test_slurm_cluster import ENV, grade_args, rows

pytestmark = pytest.mark.usefixtures("slurm_cluster")


def test_a_grading_above_the_job_limit_goes_out_in_waves_with_defaults_fitted(tmp_path):
    out = tmp_path / "grading"
    env = {**ENV, **limited_sbatch(tmp_path / "bin", limit=3)}
    # No --cpus-per-task/--mem: the defaults (8 CPUs) are fitted to the 2-CPU node, not left pending.
    done = run_harness(*grade_args(tmp_path, out, CENTROID, ENTRIES / "crash", repeats=3,
                                   extra=["--backend", "slurm"]), env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "the defaults do not fit any node of the default partition: using --cpus-per-task 2" in done.stderr
    assert "sbatch refused 5 task(s) for a job limit" in done.stderr, done.stderr
    assert "waiting in Slurm's queue:" in done.stderr
    arrays = state(out)["arrays"]
    assert sum(len(a["runs"]) for a in arrays) == 6 and all(len(a["runs"]) <= 3 for a in arrays), arrays
    assert len(arrays) >= 2
    runs = rows(out / "runs.csv")
    assert sorted((r["entry"], r["status"]) for r in runs) == [("centroid", "scored")] * 3 + [("crash", "failed")] * 3
    assert all(r["attempts"] == "1" for r in runs)


def test_a_request_no_node_can_run_is_refused_before_submitting(tmp_path):
    out = tmp_path / "grading"
    done = run_harness(*grade_args(tmp_path, out, CENTROID, repeats=1,
                                   extra=["--backend", "slurm", "--cpus-per-task", "64"]), env=ENV, timeout=120)
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

    stray = subprocess.run(["sbatch", "--parsable", "--hold", "--array=0-2,4%2", "--mem=10M", "--output=/dev/null",
                            "--job-name=haet-test-compact", "--wrap", "true"],
                           capture_output=True, text=True, timeout=30, check=True)
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
