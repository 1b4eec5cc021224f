"""The sandbox runner is for hosts without Docker: it works where the Docker SDK is not installed.

A graded run under `--runner sandbox` in a fresh interpreter in which `import docker` fails (as it
does without the SDK), and so does any import of the harness's Docker runner: the run scores, and
nothing tried to import either. The sandbox's own modules are also read for such an import, which
needs no bwrap to check."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runners.sandbox import find_bwrap, probe
from tests.helpers import MINIMAL, ROOT

HIDDEN = ("docker", "harness.runners.docker")

# Run in the child: hide the SDK and the Docker runner, check that they are hidden, grade, then
# say which of them anything tried to import.
WITHOUT_DOCKER = f"""
import importlib.abc, json, sys

HIDDEN = {HIDDEN!r}
tried = []


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == hidden or name.startswith(hidden + ".") for hidden in HIDDEN):
            tried.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
for name in HIDDEN:
    try:
        __import__(name)
        sys.exit(f"{{name}} was not hidden")
    except ModuleNotFoundError:
        pass
tried.clear()
from harness.cli import main

code = main(sys.argv[1:])
print("TRIED " + json.dumps(tried))
sys.exit(code)
"""


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_sandbox_module_imports_docker_or_the_docker_runner():
    modules = sorted((ROOT / "harness" / "runners" / "sandbox").rglob("*.py"))
    assert modules
    bad = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imports_of(path) if any(name == h or name.startswith(h + ".") for h in HIDDEN)
        )
        for path in modules
    }
    assert {path: names for path, names in bad.items() if names} == {}


def test_a_sandboxed_run_scores_where_the_docker_sdk_is_not_installed(tmp_path, synthetic_npz):
    refused = probe(find_bwrap())
    if refused:
        pytest.skip(f"the sandbox cannot run here: {refused}")
    runs = tmp_path / "runs"
    args = [
        "run",
        "--submission",
        str(MINIMAL),
        "--runner",
        "sandbox",
        "--device",
        "cpu",
        "--data",
        synthetic_npz,
        "--budget",
        "30",
        "--predict-budget",
        "30",
        "--train-per-class",
        "10",
        "--eval-per-class",
        "5",
        "--runs-dir",
        str(runs),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--run-id",
        "r",
    ]
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_DOCKER, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert "hidden by the test" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((runs / "r" / "result.json").read_text())
    assert result["status"] == "scored", result.get("reason")
    assert result["environment"]["runner"] == "sandbox" and result["environment"]["isolated"] is True
    tried = json.loads(proc.stdout.rpartition("TRIED ")[2].splitlines()[0])
    assert tried == [], f"a sandboxed run tried to import {tried}"
