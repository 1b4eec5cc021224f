"""Hostile submissions through the Docker runner: each ends in a clear outcome, the harness keeps
running, another run's files and containers are untouched, nothing of the hostile run is left."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest

from harness.console import Progress
from harness.model import Outcome, Status
from harness.options import RunOptions
from harness.run import graded_run
from tests.docker_support import harness_leftovers, small_runner
from tests.helpers import folder_state, stage_hostile
from tests.hostile_outcomes import DEFAULTS, EXPECTED, host_bait

pytestmark = pytest.mark.docker
HOSTILE = Path(__file__).parent / "hostile"
# The table's settings with a longer budget. The phase's clock runs from before the container is
# created (HAET_DEADLINE is in its environment); the engine creates and starts one in a fraction of
# a second alone, but in over 2 s while the suite's other workers load the 2 cores, and a 3 s budget
# then killed entries before their first save. The checks read the budget from the result.
SETTINGS = {**{k: DEFAULTS[k] for k in ("grace_s", "predict_budget_s")}, "budget_s": 6.0}


@pytest.fixture
def other_run(tmp_path, docker_client, runtime_image):
    """A neighbour: another run's directory with a secret, and a live container of a live harness."""
    runs = tmp_path / "runs"
    other = runs / "other-run"
    other.mkdir(parents=True)
    (other / "result.json").write_text('{"secret": "HAET-OTHER-RUN-SECRET"}')
    (other / "train.log").write_text("HAET-OTHER-RUN-SECRET\n")
    runner = small_runner(runtime_image, cleanup=False)
    container = docker_client.containers.run(
        runtime_image,
        ["sleep", "600"],
        detach=True,
        init=True,
        network_mode="none",
        entrypoint=[],
        labels=runner.labels("train", "other-run"),
    )
    before = folder_state(other)
    yield runs, other
    try:
        container.reload()
        assert container.status == "running", "a live run's container was touched"
        assert folder_state(other) == before, "another run's files changed"
    finally:
        container.remove(force=True)


def grade(
    name: str,
    runs: Path,
    tmp_path: Path,
    image: str,
    synthetic_npz: str,
    budget=SETTINGS["budget_s"],
    grace=SETTINGS["grace_s"],
    predict_budget=SETTINGS["predict_budget_s"],
    submission: Path | None = None,
    **runner_options,
):
    run_id = f"{name}-{uuid.uuid4().hex[:6]}"  # unique on the engine: other test sessions may run beside
    runner = small_runner(image, **runner_options)
    options = RunOptions(
        submission=submission or HOSTILE / name,
        data=synthetic_npz,
        budget_s=budget,
        grace_s=grace,
        predict_budget_s=predict_budget,
        device="cpu",
        runs_dir=runs,
        cache_dir=tmp_path / "cache",
        train_per_class=20,
        eval_per_class=10,
        run_id=run_id,
        monitor_interval_s=0.5,
    )
    t0 = time.monotonic()
    result = graded_run(options, runner, Progress(quiet=True))
    return result, runs / run_id, time.monotonic() - t0


def log(run: Path, phase: str) -> str:
    return (run / f"{phase}.log").read_text(errors="replace")


@pytest.fixture
def hostile(tmp_path, other_run, runtime_image, synthetic_npz, docker_client):
    runs, _ = other_run
    submissions_before = folder_state(HOSTILE)

    def run(name: str, **kwargs):
        result, run_dir, seconds = grade(name, runs, tmp_path, runtime_image, synthetic_npz, **kwargs)
        assert (run_dir / "result.json").is_file(), "the harness finished the run and wrote its result"
        assert harness_leftovers(docker_client, run_dir.name) == [], "containers or volumes of the run were left"
        assert folder_state(HOSTILE) == submissions_before, "the submission directory was modified"
        return result, run_dir, seconds

    return run


@pytest.mark.parametrize("name", ["sleep-forever", "ignore-sigterm", "fork-children"])
def test_the_phase_ends_at_its_deadline_or_with_its_main_process(hostile, name):
    """The table's checks: killed at SIGTERM, killed at SIGKILL, and done when the main process is
    (the fixture asserts that no container of the run is left, the children's included)."""
    result, run, _ = hostile(name)
    EXPECTED[name].check(result, run, HOSTILE / name)


def test_fork_bomb_is_contained(hostile):
    result, run, seconds = hostile("fork-bomb")
    assert result.train.outcome in (Outcome.NO_CHECKPOINT, Outcome.OOM), result.train
    assert result.status is Status.FAILED and seconds < 30


def test_memory_hog_is_reported_as_oom(hostile):
    result, run, _ = hostile("oom", budget=EXPECTED["oom"].run["budget_s"])
    assert result.train.outcome is Outcome.OOM, result.train
    assert "memory" in result.train.detail and result.status is Status.FAILED


def test_network_is_unreachable(hostile):
    result, run, _ = hostile("network")
    text = log(run, "train")
    assert "NETWORK-OK" not in text and "FOUND" not in text, text
    assert text.count("blocked") == 4 and "interfaces: ['lo']" in text
    assert result.status is Status.SCORED


def test_labels_host_files_and_other_runs_are_out_of_reach(hostile, tmp_path, synthetic_npz):
    entry = tmp_path / "snoop"
    shutil.copytree(HOSTILE / "snoop", entry)
    # real host files, wherever this checkout lives: the harness's source and the labelled dataset
    secrets = [str(Path(__file__).resolve().parents[1] / "harness" / "run.py"), synthetic_npz.split(":", 1)[1]]
    (entry / "host_paths.txt").write_text("\n".join(secrets) + "\n")
    result, run, _ = hostile("snoop", submission=entry)
    EXPECTED["snoop"].check(result, run, entry)  # the one snoop check, shared with the sandbox's table


def test_writes_land_only_in_the_phase_s_own_places(hostile):
    result, run, _ = hostile("write-outside")
    allowed = {
        "train": {"/checkpoints/evil", "/tmp/evil", "/dev/shm/evil"},
        "predict": {"/output/evil", "/tmp/evil", "/dev/shm/evil"},
    }
    for phase, ok in allowed.items():
        wrote = {line.split()[1] for line in log(run, phase).splitlines() if line.startswith("WROTE")}
        assert wrote == ok, (phase, wrote)
    names = [c["name"] for c in result.train.checkpoints]
    assert names == ["evil", "model.npy"], "a checkpoint written in train is kept; predict could not add one"
    assert result.status is Status.SCORED


def test_read_only_data_stays_unchanged(hostile):
    result, run, _ = hostile("write-data")
    text = log(run, "train")
    assert "WROTE" not in text and text.count("refused") == 5, text
    assert result.status is Status.SCORED


def test_log_flood_is_capped(hostile):
    result, run, _ = hostile("log-flood", log_limit=2**20)
    size = (run / "train.log").stat().st_size
    assert 2**20 <= size < 2**20 + 4096
    assert "log capped" in log(run, "train")
    assert result.train.outcome is Outcome.KILLED_AT_DEADLINE and result.status is Status.SCORED


def test_huge_checkpoint_hits_the_disk_cap(hostile):
    result, run, _ = hostile("huge-checkpoint", budget=EXPECTED["huge-checkpoint"].run["budget_s"])
    assert result.train.outcome is Outcome.CRASHED, result.train
    text = log(run, "train")
    assert "No space left on device" in text and "/checkpoints is full" in text
    assert sum(c["bytes"] for c in result.train.checkpoints) <= 64 * 2**20
    assert result.status is Status.FAILED


def test_bad_predictions_are_invalid_not_a_crash(hostile):
    result, run, _ = hostile("bad-predictions")
    assert result.predict.outcome is Outcome.COMPLETED
    assert result.status is Status.INVALID_PREDICTIONS and result.reason


def test_events_flood_is_stopped(hostile):
    result, run, _ = hostile("events-flood", budget=20.0)
    assert result.train.seconds < 10, "killed by the events watchdog long before the deadline"
    assert "events file passed its cap" in log(run, "train")
    assert (run / ".work").exists() is False


def test_nested_user_namespaces_are_refused(hostile):
    result, run, _ = hostile("nested-userns")
    text = log(run, "train")
    assert "UNSHARED" not in text and "refused unshare" in text, text
    assert result.status is Status.SCORED


@pytest.mark.parametrize("name", ["predict-training", "predict-self-training", "predict-ignores-sigterm"])
def test_predict_is_cut_at_the_default_predict_budget(hostile, tmp_path, name):
    """Entries that train in predict get the default predict budget and no more (the table's check,
    shared with the sandbox)."""
    entry = stage_hostile(name, tmp_path / "entries" / name)
    result, run, _ = hostile(name, submission=entry, predict_budget=None)
    EXPECTED[name].check(result, run, entry)


@pytest.mark.parametrize("name", ["checkpoint-swap", "checkpoint-maze"])
def test_checkpoint_walks_never_lead_to_the_host(
    name, other_run, tmp_path, runtime_image, synthetic_npz, docker_client
):
    """The harness reads the checkpoint volume from the host side (its mountpoint), as root: an
    entry's links and swapped folders there point at host paths. The shared table's check."""
    runs, _ = other_run
    entry = stage_hostile(name, tmp_path / name)  # with kit.py, which their predict imports
    host_bait(entry, tmp_path)
    expected = EXPECTED[name]
    run_id = f"{name}-{uuid.uuid4().hex[:6]}"
    settings = {**SETTINGS, **expected.run}
    options = RunOptions(
        submission=entry,
        data=synthetic_npz,
        device="cpu",
        runs_dir=runs,
        train_per_class=20,
        eval_per_class=10,
        cache_dir=tmp_path / "cache",
        run_id=run_id,
        **settings,
    )
    result = graded_run(options, small_runner(runtime_image), Progress(quiet=True))
    expected.check(result, runs / run_id, entry)
    assert harness_leftovers(docker_client, run_id) == []
