"""Shared fixtures: data (synthetic, learnable) and throwaway submissions written into tmp_path.
The helpers the tests share are in tests/helpers.py."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.synthetic import colour_images
from tests.helpers import CENTROID, ahead_of_other_workers

# Fixtures for the Docker engine and the Slurm cluster, for every test module that asks for them by name.
pytest_plugins = ["tests.docker_support", "tests.slurm_support"]

# A suite started with `cmd &` from a script inherits SIGINT ignored, and so would every harness it
# starts: the Ctrl-C tests would then wait on a harness that cannot hear them. Restore the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory) -> str:
    """An npz source with 60 train and 20 test images per class."""
    path = tmp_path_factory.mktemp("data") / "synthetic.npz"
    train_x, train_y = colour_images(60, seed=1)
    test_x, test_y = colour_images(20, seed=2)
    classes = np.array([f"class{i}" for i in range(10)])
    np.savez(path, train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y, classes=classes)
    return f"npz:{path}"


@pytest.fixture(scope="session")
def heldout_data(tmp_path_factory) -> dict[str, str]:
    """10 classes; 100 train and 40 test images per class, and a separate eval-only file."""
    root = tmp_path_factory.mktemp("heldout")
    classes = np.array([f"class{i}" for i in range(10)])
    train_x, train_y = colour_images(100, seed=11)
    test_x, test_y = colour_images(40, seed=12)
    eval_x, eval_y = colour_images(40, seed=13)
    np.savez(
        root / "pool.npz",
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        classes=classes,
    )
    np.savez(root / "eval.npz", images=eval_x, labels=eval_y, classes=classes)
    return {"pool": f"npz:{root / 'pool.npz'}", "eval": f"npz:{root / 'eval.npz'}"}


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


@pytest.fixture(autouse=True)
def _one_core_first(request):
    """A test marked `slow` runs its harness (and so its entry) on one core of its own, ahead of the
    other workers' entries. Those spin at the lowest priority until their deadlines, and at equal
    priority they left a 90 s run of the bundled entry at 24 % and a cold compile past its limit;
    on every core, the training left the other workers' deadlines starved. The affinity is per
    thread and inherited, and the entry sizes its threads by it (submission/common.py)."""
    parallel = "PYTEST_XDIST_WORKER" in os.environ  # alone, a test has every core as it is
    if not parallel or not request.node.get_closest_marker("slow") or len(os.sched_getaffinity(0)) < 2:
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cores)})
    try:
        with ahead_of_other_workers():
            yield
    finally:
        os.sched_setaffinity(0, cores)


# Parallel workers (pytest-xdist with `--dist loadgroup`, as `make test` runs the suite). Four kinds of
# tests run in order on one worker each, while the rest spread over the others:
#   slurm  the Slurm cluster's tests share its job limit and its two CPUs;
#   cores  the tests marked `slow` train the bundled entry for real and assert what the CPU bought
#          (an accuracy floor, a compile within its limit, an epoch plan): two at once starved each
#          other on 2 cores (a 90 s run at 33 %, a 20 s run at chance).
#   deadlines  the hostile entries whose deadline is measured to 0.1 s beyond the machine's wake-ups
#          (tests.helpers.machine_wake_ups): six storms at once left a SIGTERM 0.55 s late while a
#          sleeper beside them woke at most 0.12 s late.
#   docker-runner  the Docker runner's own tests: each harness start removes every dead harness's
#          leftovers, so a start in a neighbouring test took the kill -9 test's orphan before the
#          start it asserts on (3 of 4 runs of that file on 3 workers).
# xdist sends the largest group first, so the groups start at once and the rest fills in around them.
# Before xdist's own hook, which reads the groups. Without xdist the marks are inert.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("slurm"))
        elif item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("cores"))
        elif item.get_closest_marker("deadline"):
            item.add_marker(pytest.mark.xdist_group("deadlines"))
        elif item.path.name == "test_docker_runner.py":
            item.add_marker(pytest.mark.xdist_group("docker-runner"))
