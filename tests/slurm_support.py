"""The real single-node Slurm cluster for the tests (deploy/slurm/start-cluster.sh), or a visible skip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import CENTROID, ROOT, copy_entry

START = ROOT / "deploy" / "slurm" / "start-cluster.sh"


def cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=15)
    return done.returncode == 0 and done.stdout.split()[:1] in (["idle"], ["mixed"], ["allocated"], ["completing"])


@pytest.fixture(scope="session")
def slurm_started() -> None:
    """Start the cluster once per session (idempotent script); skip with its reason when it cannot."""
    if cluster_answers():
        return
    if os.geteuid() != 0:
        pytest.skip(
            "no Slurm cluster answers and the tests are not root: run `bash deploy/slurm/start-cluster.sh` "
            "as root to run the Slurm tests"
        )
    start = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    if start.returncode != 0 or not cluster_answers():
        pytest.skip(f"the single-node Slurm cluster could not start: {start.stderr.strip()[-500:]}")


@pytest.fixture
def slurm_cluster(slurm_started) -> None:
    """The started cluster with none of this user's jobs queued: a job an earlier test cancelled
    still counts against the job limit while it completes (once, "sbatch refused" with 7 queued)."""
    wait_for(lambda: not user_jobs(), 120, "the jobs of earlier tests to leave the queue")


def user_jobs() -> list[str]:
    """This user's tasks that count against a job limit."""
    done = subprocess.run(
        ["squeue", "-h", "-r", "-u", str(os.getuid()), "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.splitlines()


def slow_entry(dst: Path, seconds: float) -> Path:
    """centroid, after sleeping `seconds` at the start of training: a run long enough to act on."""
    entry = copy_entry(CENTROID, dst)
    train = (entry / "train.py").read_text()
    (entry / "train.py").write_text(f"import time\ntime.sleep({seconds})\n" + train)
    (entry / "submission.yaml").write_text(f"name: {dst.name}\ntrain: python train.py\npredict: python predict.py\n")
    return entry


def state(out: Path) -> dict:
    try:
        return json.loads((out / "slurm.json").read_text())
    except (OSError, ValueError):
        return {"arrays": [], "runs": {}}


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def queue(job_ids: list[str]) -> dict[str, str]:
    """squeue's view of these arrays' tasks: {task: state}, ended ones included."""
    if not job_ids:
        return {}
    done = subprocess.run(
        ["squeue", "-h", "-r", "--states=all", "-j", ",".join(job_ids), "-o", "%i|%T"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(line.split("|", 1) for line in done.stdout.splitlines() if "|" in line)


def limited_sbatch(directory: Path, limit: int) -> dict[str, str]:
    """PATH with an `sbatch` that enforces a per-user submit limit of `limit` jobs (array tasks count one
    each), then runs the real sbatch; its refusal is Slurm's own text for QOS MaxSubmitJobsPerUser.

    A shim, and the only one in these tests: that limit needs Slurm's accounting database (slurmdbd
    with MariaDB), which the single-node test cluster does not run; slurm.conf's MaxJobCount is global
    and counts ended jobs until MinJobAge, so it cannot stand in for it."""
    directory.mkdir(parents=True, exist_ok=True)
    real = shutil.which("sbatch")
    shim = directory / "sbatch"
    shim.write_text(f"""#!/bin/bash
script="${{@: -1}}"
spec=$(sed -n 's/^#SBATCH --array=\\([0-9]*\\)-\\([0-9]*\\).*/\\1 \\2/p' "$script")
set -- "$@"
asked=1
if [ -n "$spec" ]; then read first last <<<"$spec"; asked=$((last - first + 1)); fi
queued=$(squeue -h -r -u "$(id -un)" -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED | wc -l)
if [ $((queued + asked)) -gt {limit} ]; then
    echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2
    echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy" \\
         "(job submit limit, user's size and/or time limits)" >&2
    exit 1
fi
exec {real} "$@"
""")
    shim.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ['PATH']}"}
