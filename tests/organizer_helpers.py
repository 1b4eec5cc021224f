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


# Entries broken in exactly one way: colour-mean with one file replaced, so each fails one check.
BROKEN = {
    "bad-manifest": {"submission.yaml": "name: My Entry\ntrain: python train.py\n"},
    "missing-script": {"submission.yaml": "name: missing-script\ntrain: python train.py\npredict: python infer.py\n"},
    "predict-crash": {  # looks for a checkpoint under another name than train saved
        "predict.py": "import os\nimport numpy as np\n"
                      "np.load(os.path.join(os.environ['HAET_CHECKPOINTS'], 'weights.npy'))\n"},
    "bad-predictions": {  # predictions for only the first 10 images
        "predict.py": "import os\nwith open(os.path.join(os.environ['HAET_OUTPUT'], 'predictions.csv'), 'w') as f:\n"
                      "    f.write('index,label\\n' + ''.join(f'{i},0\\n' for i in range(10)))\n"},
}


def entry(name: str, tmp: Path) -> Path:
    """A fixture entry: one under tests/entries, or a broken variant of colour-mean written into tmp."""
    if name not in BROKEN:
        return ENTRIES / name
    directory = copy_entry(ROOT / "examples" / "minimal", tmp / name)
    for file, text in BROKEN[name].items():
        (directory / file).write_text(text)
    return directory


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
