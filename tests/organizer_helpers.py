"""Helpers for the organizer-command tests (validate, grade, check, leaderboard)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.synthetic import write_synthetic_npz

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = ROOT / "tests" / "entries"
CENTROID = ROOT / "tests" / "submissions" / "centroid"
SHARED_TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def harness(*args, cwd: Path = ROOT, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` in a real child process."""
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def synthetic_data(tmp: Path, noise: float = 500.0) -> str:
    """A learnable-but-not-trivial dataset: centroid scores ~70%, colour-mean ~25%."""
    return f"npz:{write_synthetic_npz(tmp / 'synthetic.npz', 60, 30, seed=0, noise=noise)}"


def copy_entry(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
