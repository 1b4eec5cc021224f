"""`grade --backend slurm` against what a site allows, on the real single-node cluster (2 CPUs,
MaxArraySize 5): defaults fitted to the partition's nodes, an explicit request no node can run refused
before submitting, and a grading bigger than the user's job limit submitted in waves."""

from __future__ import annotations

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
