"""Every hostile entry (tests/hostile/) through the sandbox runner, its outcome asserted
(tests/hostile_outcomes.py: the same outcomes the Docker runner is held to). The harness keeps
running, another run's files are untouched, the entry's folder is unchanged, and nothing of the
phase outlives it: no process, no cgroup."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import psutil
import pytest

from harness.console import Progress
from harness.errors import ContractError, UsageError
from harness.options import RunOptions
from harness.run import graded_run
from harness.runners.local import become_subreaper
from harness.runners.sandbox import SandboxRunner, find_bwrap, probe
from harness.runners.sandbox.cgroup import ROOT as CGROUP_ROOT
from harness.runners.sandbox.cgroup import _own_groups
from tests.helpers import HOSTILE, ROOT, folder_state, measured_deadline, stage_hostile
from tests.hostile_outcomes import DEFAULTS, EXPECTED, RUNNER_LIMITS, host_bait

SECRET = "HAET-OTHER-RUN-" + "SECRET"


@pytest.fixture(scope="module", autouse=True)
def sandbox_works():
    refused = probe(find_bwrap())
    if refused:
        pytest.skip(f"the sandbox cannot run here: {refused}")
    # As a harness that also ran the local runner: orphans come to this process, so a phase that
    # leaves one (even a zombie) shows up in the check below.
    become_subreaper()


def small_runner(log_limit=None, **options) -> SandboxRunner:
    class Small(SandboxRunner):
        def start(self, spec):
            if log_limit is not None:
                spec = dataclasses.replace(spec, log_limit_bytes=log_limit)
            return super().start(spec)

    return Small(**{**RUNNER_LIMITS, **options})


def leftover_cgroups() -> list[Path]:
    groups = _own_groups()
    found = []
    for controller in ("memory", "pids", "cpu"):
        if controller in groups:
            parent = CGROUP_ROOT / controller / groups[controller].lstrip("/")
            # This process's groups only (named haet-<pid>-...): other suites and workers run their own.
            found += list(parent.glob(f"haet-{os.getpid()}-*")) if parent.is_dir() else []
    return found


def stage(name: str, tmp_path: Path, synthetic_npz: str) -> Path:
    entry = stage_hostile(name, tmp_path / "entries" / name)
    if name == "snoop":  # real host files, wherever this checkout lives: the harness's source, the labels
        (entry / "host_paths.txt").write_text(f"{ROOT / 'harness' / 'run.py'}\n{synthetic_npz.split(':', 1)[1]}\n")
    if name.startswith("checkpoint-"):
        host_bait(entry, tmp_path)
    if name == "big-file":
        with open(entry / "weights.bin", "wb") as f:
            f.truncate(3 * 2**30)  # sparse: no disk; reading it whole would take 3 GiB
    return entry


def test_every_hostile_entry_has_an_expected_outcome():
    entries = {p.name for p in HOSTILE.iterdir() if (p / "submission.yaml").is_file()}
    assert entries == set(EXPECTED), f"without a row in tests/hostile_outcomes.py: {sorted(entries - set(EXPECTED))}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.deadline) if EXPECTED[n].timed else n for n in sorted(EXPECTED)]
)
def test_hostile_entry_under_the_sandbox(name, tmp_path, synthetic_npz, heldout_data):
    expected = EXPECTED[name]
    entry = stage(name, tmp_path, synthetic_npz)
    before = folder_state(entry)
    runs = tmp_path / "runs"
    other = runs / "other-run"
    other.mkdir(parents=True)
    (other / "result.json").write_text(f'{{"secret": "{SECRET}"}}')
    others = folder_state(other)
    data = heldout_data["pool"] if expected.data == "heldout" else synthetic_npz
    options = RunOptions(
        **{**DEFAULTS, **expected.run},
        submission=entry,
        data=data,
        device="cpu",
        runs_dir=runs,
        cache_dir=tmp_path / "cache",
        run_id=name,
        monitor_interval_s=0.5,
    )
    runner = small_runner(expected.log_limit, **expected.runner)
    # This worker's earlier tests may have left orphans of their own here (Chromium's crash handler):
    # only what appears during this run is the phase's.
    earlier = set(psutil.Process().children(recursive=True))
    if expected.refused:
        with pytest.raises((ContractError, UsageError), match=expected.refused.replace("(", r"\(").replace(")", r"\)")):
            graded_run(options, runner, Progress(quiet=True))
        assert not (runs / name).exists(), "refused before anything ran"
        return
    with measured_deadline() if expected.timed else contextlib.nullcontext() as wake_ups:
        result = graded_run(options, runner, Progress(quiet=True))
    run = runs / name
    assert (run / "result.json").is_file(), "the harness finished the run and wrote its result"
    assert result.environment.runner == "sandbox" and result.environment.isolated is True
    assert result.environment.memory_enforced in ("cgroup v1", "cgroup v2", "monitor")
    expected.check(result, run, entry, *([wake_ups] if expected.timed else []))
    assert folder_state(entry) == before, "the entry's folder was modified"
    assert folder_state(other) == others, "another run's files changed"
    outlived = [p for p in psutil.Process().children(recursive=True) if p not in earlier]
    assert outlived == [], "a process of the phase outlived it"
    assert leftover_cgroups() == [], "the phase's cgroup was left behind"


def test_memory_is_enforced_by_sampling_without_a_cgroup(tmp_path, synthetic_npz):
    """Where no cgroup is writable, the harness kills the tree over the limit: still `oom`, and the
    result says how the limit was enforced."""
    entry = stage("oom", tmp_path, synthetic_npz)
    options = RunOptions(
        **{**DEFAULTS, **EXPECTED["oom"].run},
        submission=entry,
        data=synthetic_npz,
        device="cpu",
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        run_id="oom",
    )
    result = graded_run(options, small_runner(cgroup=False), Progress(quiet=True))
    assert result.environment.memory_enforced == "monitor"
    EXPECTED["oom"].check(result, tmp_path / "runs" / "oom", entry)
    assert "enforced by sampling" in result.train.detail
