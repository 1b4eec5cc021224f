"""An entry as a new user keeps it: in a private folder (mode 0700, as home folders and `mktemp -d`
make them), with files only its owner may read, a set-uid helper, or a named pipe. The phases run
as uid 10001, which cannot read such a folder as it is: every graded run stages a copy the phases
can read (harness/staging.py), digests that copy, and refuses what cannot be copied."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from harness.console import Progress
from harness.contract import submission_digest
from harness.errors import ContractError
from harness.model import Status
from harness.options import RunOptions
from harness.run import graded_run
from harness.runners.local import LocalRunner
from harness.runners.sandbox import SandboxRunner, find_bwrap, probe
from tests.docker_support import small_runner
from tests.helpers import CENTROID, copy_entry, run_harness

# Prints how the phase sees its own files: owner-only files must be readable, set-uid bits gone.
SHOW_MODES = (
    "import os, stat\n"
    "for name in ('train.py', 'helper.sh'):\n"
    "    print('MODE', name, oct(stat.S_IMODE(os.stat(name).st_mode)), flush=True)\n"
)


def private_entry(tmp_path: Path) -> Path:
    """The centroid entry in a folder of mode 0700, every file 0600 (umask 077), the folders 0700,
    plus a set-uid helper; owned by whoever runs the tests (root here): uid 10001 reads none of it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    entry = copy_entry(CENTROID, home / "entry")
    train = entry / "train.py"
    train.write_text(SHOW_MODES + train.read_text())
    (entry / "helper.sh").write_text("#!/bin/sh\necho helper\n")
    for path in [entry, *entry.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    (entry / "helper.sh").chmod(0o4755)
    home.chmod(0o700)
    return entry


def options(tmp_path: Path, entry: Path, data: str, **extra) -> RunOptions:
    return RunOptions(
        submission=entry,
        data=data,
        budget_s=20.0,
        grace_s=2.0,
        predict_budget_s=30.0,
        device="cpu",
        train_per_class=20,
        eval_per_class=10,
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        run_id="private",
        **extra,
    )


def assert_scored_from_the_staged_copy(result, entry: Path, run: Path) -> None:
    assert result.status is Status.SCORED, (result.reason, result.train.detail)
    log = (run / "train.log").read_text()
    assert "MODE train.py 0o644" in log, "an owner-only file is readable in the phase"
    assert "MODE helper.sh 0o755" in log, "no set-uid bit reaches the phase"
    assert result.submission.path == str(entry.resolve()), "the result names the entry the user gave"
    assert result.submission.sha256 == submission_digest(entry)
    assert not (run / ".work").exists(), "the staged copy is removed with the run's work folder"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o700 and (entry / "helper.sh").stat().st_mode & stat.S_ISUID


@pytest.mark.docker
def test_an_entry_in_a_private_folder_validates_and_scores_under_docker(tmp_path, runtime_image, synthetic_npz):
    """Before staging: `can't open file '/submission/train.py': [Errno 13] Permission denied`."""
    entry = private_entry(tmp_path)
    proc = run_harness(
        "validate", entry, "--json", "--smoke-budget", "8", "--runner", "docker", "--image", runtime_image
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], report
    result = graded_run(options(tmp_path, entry, synthetic_npz), small_runner(runtime_image), Progress(quiet=True))
    assert_scored_from_the_staged_copy(result, entry, tmp_path / "runs" / "private")


def test_an_entry_in_a_private_folder_validates_and_scores_in_the_sandbox(tmp_path, synthetic_npz):
    refused = probe(find_bwrap())
    if refused:
        pytest.skip(f"the sandbox cannot run here: {refused}")
    entry = private_entry(tmp_path)
    proc = run_harness("validate", entry, "--json", "--smoke-budget", "8", "--runner", "sandbox")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], report
    result = graded_run(options(tmp_path, entry, synthetic_npz), SandboxRunner(), Progress(quiet=True))
    assert_scored_from_the_staged_copy(result, entry, tmp_path / "runs" / "private")


@pytest.mark.parametrize("trick", ["fifo", "link-out"])
def test_what_cannot_be_staged_is_refused_before_a_run_exists(tmp_path, synthetic_npz, trick):
    entry = copy_entry(CENTROID, tmp_path / "entry")
    if trick == "fifo":
        os.mkfifo(entry / "model.pipe")  # a phase reading it would block; the old digest skipped it
        message = r"model.pipe is a named pipe \(FIFO\); remove it"
    else:
        os.symlink("/etc", entry / "host-etc")
        message = "host-etc is a symlink that points out of the entry"
    with pytest.raises(ContractError, match=message):
        graded_run(options(tmp_path, entry, synthetic_npz), LocalRunner(), Progress(quiet=True))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_repeats_share_one_staged_copy_removed_at_the_end(tmp_path, synthetic_npz):
    entry = copy_entry(CENTROID, tmp_path / "entry")
    result = graded_run(options(tmp_path, entry, synthetic_npz, repeats=2), LocalRunner(), Progress(quiet=True))
    run = tmp_path / "runs" / "private"
    assert (
        result.status is Status.SCORED
        and [r.submission.sha256 for r in result.repeats] == [submission_digest(entry)] * 2
    )
    assert not any(p.name == ".work" for p in run.rglob("*")), "every staged and work folder is gone"
