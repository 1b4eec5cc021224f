"""`make gpu-check` in its short CPU mode, so the GPU kit cannot rot between GPU loans; run with the
`docker` package hidden, as on a GPU host that has none."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.synthetic import write_synthetic_npz
from tests.helpers import ROOT

pytest.importorskip("torch")  # the bundled submission trains with torch


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gpu_check_passes_in_cpu_mode_without_the_docker_package(tmp_path):
    hidden = tmp_path / "hide"
    (hidden / "docker").mkdir(parents=True)
    (hidden / "docker" / "__init__.py").write_text("raise ImportError('the docker package is hidden for this test')\n")
    data = write_synthetic_npz(tmp_path / "synthetic.npz", train_per_class=500, test_per_class=100)
    baselines = tmp_path / "baselines"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_check",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
            "--work",
            str(tmp_path / "work"),
            "--baselines",
            str(baselines),
            "--data",
            f"npz:{data}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert proc.returncode == 0 and summary["passed"], proc.stderr[-3000:]
    assert [s["name"] for s in summary["steps"]] == ["host", "nvml", "grade-30s", "deadline", "check"]
    grade = summary["steps"][2]["facts"]
    assert grade["status"] == "scored" and grade["accuracy"] > 0.1
    kill = [s["at_s"] for s in summary["steps"][3]["facts"]["signals"] if s["name"] == "SIGKILL"]
    assert kill and kill[0] - 4.0 <= 0.5
    (baseline,) = baselines.iterdir()
    assert json.loads(baseline.read_text())["kind"] == "haet-baseline" and summary["steps"][4]["facts"]["created"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["summary.json", "summary.md", "longest-result.json", "longest-report.html", baseline.name]
    )
    assert "GPU check: PASS" in (tmp_path / "out" / "summary.md").read_text()


def test_the_docker_package_is_really_hidden(tmp_path):
    """The premise of the test above: with the hiding folder first, `import docker` fails."""
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "__init__.py").write_text("raise ImportError('hidden')\n")
    proc = subprocess.run(
        [sys.executable, "-c", "import docker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode != 0 and "hidden" in proc.stderr
