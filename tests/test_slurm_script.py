"""The batch script `grade --backend slurm` submits: its #SBATCH lines (GPU, time, throttle, site
options), its split below MaxArraySize, and that each task runs the local grader's own command.
GPU GRES cannot exist on this machine, so the GPU lines are checked here, as text."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from harness.console import Progress
from harness.errors import UsageError
from harness.options import RunOptions
from harness.organizer.plan import Grading, make_plan
from harness.organizer.slurm import script
from tests.helpers import CENTROID, ENTRIES, entry, grade_args, run_harness, synthetic_data


def sbatch_lines(text: str) -> list[str]:
    """The options sbatch reads: #SBATCH lines before the first command (it ignores any later one)."""
    found = []
    for line in text.splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            break
        if line.startswith("#SBATCH "):
            found.append(line.removeprefix("#SBATCH "))
    return found


def make_script(options: RunOptions, site: script.SiteOptions | None = None, count: int = 3) -> str:
    commands = [["python", "-m", "harness", "run", "--seed", str(i)] for i in range(count)]
    return script.batch_script(
        commands,
        [f"e/seed-{i}" for i in range(count)],
        Path("/grading"),
        Path("/work"),
        options,
        site or script.SiteOptions(),
    )


def test_cuda_asks_slurm_for_one_gpu_and_hands_its_index_to_the_run():
    cuda = make_script(RunOptions(device="cuda", runner="docker"))
    assert "--gres=gpu:1" in sbatch_lines(cuda)
    assert '"${run[@]}" --gpu "${SLURM_JOB_GPUS%%,*}"' in cuda
    cpu = make_script(RunOptions(device="cpu", runner="local"))
    assert not any("gres" in line for line in sbatch_lines(cpu))
    assert "--gpu" not in cpu


def test_time_limit_is_budget_plus_predict_budget_plus_setup_margin():
    local = RunOptions(budget_s=600, predict_budget_s=120, runner="local")
    assert script.time_limit_s(local) == 600 + 120 + script.SETUP_MARGIN_S
    assert f"--time={script.slurm_time(1320)}" in sbatch_lines(make_script(local))
    assert script.slurm_time(1320) == "0-00:22:00"
    # Docker may build an entry's own Dockerfile first: its build timeout is added.
    docker = RunOptions(budget_s=600, predict_budget_s=120, runner="docker", build_timeout_s=300)
    assert script.time_limit_s(docker) == 600 + 120 + script.SETUP_MARGIN_S + 300
    # the default predict budget follows the training budget: a tenth of 600 s
    assert script.time_limit_s(RunOptions(budget_s=600, runner="local")) == 600 + 60 + script.SETUP_MARGIN_S
    assert script.slurm_time(61) == "0-00:02:00"  # rounded up to whole minutes, never down
    assert script.slurm_time(26 * 3600 + 1) == "1-02:01:00"


def test_resources_come_from_the_run_limits_or_the_site(monkeypatch):
    monkeypatch.setenv("HAET_DOCKER_MEMORY", "2g")
    monkeypatch.setenv("HAET_DOCKER_CPUS", "3")
    lines = sbatch_lines(make_script(RunOptions(runner="docker")))
    assert "--cpus-per-task=3" in lines and f"--mem={2048 + script.HARNESS_MEMORY_MB}M" in lines
    lines = sbatch_lines(make_script(RunOptions(), script.SiteOptions(cpus_per_task=1, mem="1G")))
    assert "--cpus-per-task=1" in lines and "--mem=1G" in lines


def test_throttle_and_array_range():
    assert "--array=0-2%2" in sbatch_lines(make_script(RunOptions(), script.SiteOptions(max_parallel=2)))
    assert "--array=0-2" in sbatch_lines(make_script(RunOptions()))


def test_arrays_are_split_below_max_array_size():
    parts = script.split(2500, 1001)
    assert [len(p) for p in parts] == [1001, 1001, 498]
    assert [i for p in parts for i in p] == list(range(2500))
    assert script.split(5, None) == [range(0, 5)]
    # Each part is its own array numbered from 0: no index reaches MaxArraySize.
    lines = sbatch_lines(make_script(RunOptions(), count=len(parts[0])))
    assert "--array=0-1000" in lines


def test_site_options_pass_through_and_bad_ones_are_refused():
    site = script.SiteOptions(
        partition="gpu", account="lab", qos="high", constraint="a100", sbatch_args=["--exclusive", "--mail-type=END"]
    )
    lines = sbatch_lines(make_script(RunOptions(), site.check()))
    for line in (
        "--partition=gpu",
        "--account=lab",
        "--qos=high",
        "--constraint=a100",
        "--exclusive",
        "--mail-type=END",
        "--no-requeue",
    ):
        assert line in lines
    with pytest.raises(UsageError, match="one non-empty line"):
        script.SiteOptions(sbatch_args=["--exclusive\n#SBATCH --partition=other"]).check()
    with pytest.raises(UsageError, match="--sbatch-arg takes one sbatch option"):
        script.SiteOptions(sbatch_args=["exclusive"]).check()


def test_each_task_runs_exactly_the_local_graders_command(tmp_path):
    options = RunOptions(
        data=synthetic_data(tmp_path),
        budget_s=5,
        runner="local",
        cache_dir=tmp_path / "cache",
        train_per_class=30,
        eval_per_class=20,
        repeats=2,
    )
    out = tmp_path / "grading"
    plan = make_plan(out, options, [CENTROID, ENTRIES / "crash"], None)
    grading = Grading(out, plan, options, Progress(quiet=True))
    jobs = grading.jobs()
    text = script.batch_script(
        [grading.command(j, None) for j in jobs], [j.key for j in jobs], out, tmp_path, options, script.SiteOptions()
    )
    arms = dict(re.findall(r"^  (\d+)\) run=\((.*)\) ;;", text, re.M))
    assert len(arms) == len(jobs) == 4
    for index, job in enumerate(jobs):
        assert shlex.split(arms[str(index)]) == grading.command(job, None)


def test_dry_run_prints_the_script_and_writes_or_submits_nothing(tmp_path):
    out = tmp_path / "grading"
    slurm = ["--device", "cuda", "--backend", "slurm", "--dry-run", "--max-parallel", "1", "--partition", "gpu"]
    proc = run_harness(
        *grade_args(tmp_path, out, CENTROID, repeats=2, budget=5, extra=[*slurm, "--sbatch-arg=--exclusive"])
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# --- array 1 of 1: 2 run(s)")
    lines = sbatch_lines(proc.stdout)
    assert "--array=0-1%1" in lines and "--gres=gpu:1" in lines and "--partition=gpu" in lines
    assert "--exclusive" in lines
    assert proc.stdout.count("-m harness run --submission") == 2
    assert not out.exists(), "a dry run must not create the grading directory"


def test_bad_slurm_options_are_one_clear_message(tmp_path):
    proc = run_harness(
        "grade",
        CENTROID,
        "--out",
        tmp_path / "g",
        "--runner",
        "local",
        "--backend",
        "slurm",
        "--dry-run",
        "--gpus",
        "0,1",
    )
    assert proc.returncode == 2 and "--gpus is for the local backend" in proc.stderr
    proc = run_harness("grade", CENTROID, "--runner", "local")
    assert proc.returncode == 2 and "grade needs --out DIR" in proc.stderr


def test_hostile_entry_paths_stay_one_argument_and_add_no_sbatch_line(tmp_path):
    """A queued entry's folder name is the entry author's choice: quotes, `$(...)`, newlines and a
    fake #SBATCH line must reach the run as one literal argument and change nothing else."""
    hostile = str(tmp_path / "evil'\"$(touch pwned)`touch pwned2`\n#SBATCH --partition=stolen\n; rm -rf x")
    out = tmp_path / "grading"
    (out / ".slurm" / "tasks").mkdir(parents=True)
    text = script.batch_script(
        [["printf", "%s", hostile]], ["evil/seed-0"], out, tmp_path, RunOptions(), script.SiteOptions()
    )
    assert not any("stolen" in line for line in sbatch_lines(text))
    path = tmp_path / "task.sh"
    path.write_text(text)
    done = subprocess.run(
        ["bash", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "0", "SLURMD_NODENAME": "node-1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == hostile
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    start = json.loads((out / ".slurm" / "tasks" / "7_0.start.json").read_text())
    end = json.loads((out / ".slurm" / "tasks" / "7_0.end.json").read_text())
    assert start["node"] == "node-1" and end["exit_code"] == 0 and end["task"] == "7_0"


def test_slurm_options_without_the_slurm_backend_are_refused(tmp_path):
    proc = run_harness(
        "grade", CENTROID, "--out", tmp_path / "g", "--runner", "local", "--detach", "--partition", "gpu"
    )
    assert proc.returncode == 2
    assert "--partition, --detach only mean something with --backend slurm" in proc.stderr
    assert not (tmp_path / "g").exists()


def test_status_of_a_local_grading_counts_every_run_once(tmp_path):
    """--status reads the grading directory alone (no Slurm needed when nothing was submitted): an
    invalid entry's seeds count as failed, as they count 0 on the leaderboard."""
    bad = entry("bad-manifest", tmp_path)
    out = tmp_path / "grading"
    graded = run_harness(*grade_args(tmp_path, out, CENTROID, ENTRIES / "crash", bad, repeats=2, budget=3))
    assert graded.returncode == 0, graded.stderr
    status = run_harness("grade", "--status", out)
    assert status.returncode == 0, status.stderr
    assert "6 runs: 2 done, 4 failed, 0 running, 0 queued, 0 not submitted" in status.stdout
    assert "nothing left to run" in status.stdout


def test_defaults_are_fitted_to_the_partition_and_explicit_requests_no_node_has_are_refused():
    from harness.organizer.slurm import limits

    nodes = [(2, 19000), (4, 8000)]  # (CPUs, MB): neither has the defaults' 8 CPUs and 16 GB
    site = script.SiteOptions()
    note = limits.fit(site, nodes, default_cpus=8, default_mem_mb=16384)
    # The node that gives the most of both: all the memory on the first, half the CPUs on the second.
    assert (site.cpus_per_task, site.mem) == (2, None)
    assert "set --cpus-per-task/--mem to choose" in note
    roomy = script.SiteOptions()
    assert limits.fit(roomy, [(16, 64000)], 8, 16384) is None and roomy.cpus_per_task is None  # fits: unchanged
    with pytest.raises(UsageError, match=r"--mem 32G: no node of partition gpu has more than 19000M; lower --mem"):
        limits.fit(script.SiteOptions(partition="gpu", mem="32G"), nodes, 8, 16384)
    # A plain number is megabytes, as sbatch reads the --mem it is passed (it was read as bytes: 1 MB).
    with pytest.raises(UsageError, match=r"--mem 32768: no node of the default partition has more than 19000M"):
        limits.fit(script.SiteOptions(mem="32768"), nodes, 8, 16384)
    assert script.size_mb("32768") == script.size_mb("32G") == script.size_mb("32gb") == 32768
    with pytest.raises(
        UsageError, match=r"--cpus-per-task 4 with --mem 16G: no node of the default partition has both"
    ):
        limits.fit(script.SiteOptions(cpus_per_task=4, mem="16G"), nodes, 8, 16384)
    # An explicit value that some node has keeps that node; only the default is lowered to it.
    site = script.SiteOptions(cpus_per_task=4)
    limits.fit(site, nodes, 8, 16384)
    assert (site.cpus_per_task, site.mem) == (4, "8000M")


def test_pending_reasons_that_never_clear_are_told_apart():
    from harness.organizer.slurm import limits

    for reason in ("PartitionConfig", "PartitionTimeLimit", "BadConstraints", "PartitionNodeLimit"):
        assert limits.permanent(reason), reason
    for reason in (
        "Resources",
        "Priority",
        "Dependency",
        "JobArrayTaskLimit",
        "AssocMaxJobsLimit",
        "QOSMaxJobsPerUserLimit",
        "ReqNodeNotAvail, UnavailableNodes:vm",
        "PartitionDown",
        "",
    ):
        assert limits.permanent(reason) is None, reason
