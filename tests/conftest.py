"""Shared fixtures: data (the shared CIFAR-10 tarball when present, else synthetic) and
throwaway submissions written into tmp_path."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED_TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
CENTROID = ROOT / "tests" / "submissions" / "centroid"


def synthetic_arrays(n_per_class: int, n_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: each class has its own mean colour plus noise."""
    colours = np.random.default_rng(12345).integers(30, 225, size=(n_classes, 3))  # the same in every split
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    noise = rng.normal(0, 25, size=(len(labels), 32, 32, 3))
    images = np.clip(colours[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory) -> str:
    """An npz source with 60 train and 20 test images per class."""
    path = tmp_path_factory.mktemp("data") / "synthetic.npz"
    train_x, train_y = synthetic_arrays(60, seed=1)
    test_x, test_y = synthetic_arrays(20, seed=2)
    classes = np.array([f"class{i}" for i in range(10)])
    np.savez(path, train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y, classes=classes)
    return f"npz:{path}"


def write_image_tree(root: Path, per_class: dict[str, int], fmt: str = "PNG") -> None:
    images, labels = synthetic_arrays(max(per_class.values()), n_classes=3)
    for split, count in per_class.items():
        for c, name in enumerate(["cat", "dog", "frog"]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(images[labels == c][i]).save(folder / f"{i:04d}.{fmt.lower()}", fmt)


def write_tar(path: Path, tree: Path, prefix: str = "set") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname=prefix)
    return path


@pytest.fixture
def make_submission(tmp_path):
    """Write a submission whose train/predict scripts are the given Python source."""

    def make(name: str, train: str, predict: str | None = None, yaml: str | None = None) -> Path:
        directory = tmp_path / "entries" / name
        directory.mkdir(parents=True)
        (directory / "submission.yaml").write_text(
            yaml or f"name: {name}\ntrain: python train.py\npredict: python predict.py\n"
        )
        (directory / "train.py").write_text(textwrap.dedent(train))
        (directory / "predict.py").write_text(textwrap.dedent(predict or (CENTROID / "predict.py").read_text()))
        return directory

    return make


def run_harness(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """The harness as a user runs it: a real process."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def only_run_dir(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")
