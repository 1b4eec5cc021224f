"""What each hostile entry (tests/hostile/) must end in, whatever isolating runner grades it.

One row per entry: the run's settings where they differ from the defaults below, and a check on
the result (a RunResult), the run directory and the phases' logs. tests/test_sandbox_hostile.py
grades every entry through the sandbox runner against this table; its rows were written from the
Docker runner's assertions (tests/test_docker_hostile.py, test_verdict_integrity.py,
test_hostile_inputs.py), so the two runners are held to the same outcomes.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.model import Outcome, RunResult, Status
from harness.options import PREDICT_FLOOR_S, default_predict_budget
from tests.helpers import WakeUps
from tests.test_verdict_integrity import BUDGET, CHANCE_CEILING, DEADLINE_ENTRIES, GRACE, assert_deadline_held

DEFAULTS = dict(budget_s=3.0, grace_s=1.0, predict_budget_s=20.0, train_per_class=20, eval_per_class=10)
# Small limits so hostile runs end fast; a row may raise one (runner=...).
RUNNER_LIMITS = dict(
    memory="256m",
    cpus=1.0,
    pids_limit=256,
    checkpoint_limit="64m",
    output_limit="8m",
    events_limit="1m",
    shm_size="64m",
    tmp_size="64m",
)


def log(run: Path, phase: str) -> str:
    path = run / f"{phase}.log"
    return path.read_text(errors="replace") if path.is_file() else ""


@dataclass
class Expected:
    check: Callable[..., None]  # the result, the run directory, the staged entry (and WakeUps if timed)
    run: dict = field(default_factory=dict)  # RunOptions fields over DEFAULTS
    runner: dict = field(default_factory=dict)  # runner options over RUNNER_LIMITS
    log_limit: int | None = None
    data: str = "synthetic"  # or "heldout": the verdict-integrity pool (300 held-out images)
    refused: str | None = None  # the entry is refused before it runs, with this in the message
    timed: bool = False  # check measures the deadline: it also takes the machine's wake-ups (tests.helpers)


# How long after its last signal a runner may see a phase gone. The harness sends on time; the runner
# then waits for the exit: after a SIGKILL at the deadline, Docker took 0.53 s to report the
# container gone at a load of 9 on 2 cores. Signals' own times are held to 0.1 s where the deadline
# is the test (tests/test_verdict_integrity.py).
EXIT_SLACK_S = 1.0


def _killed_after_sigterm(r: RunResult, run: Path, entry: Path) -> None:
    assert r.train.outcome is Outcome.KILLED_AT_DEADLINE
    assert [s.name for s in r.train.signals] == ["SIGTERM"]
    term = r.train.budget_s - r.train.grace_s
    assert term <= r.train.seconds < term + EXIT_SLACK_S, r.train
    assert r.status is Status.SCORED, "the model saved before the deadline counts"


def _killed_after_sigkill(r: RunResult, run: Path, entry: Path) -> None:
    assert r.train.outcome is Outcome.KILLED_AT_DEADLINE
    assert [s.name for s in r.train.signals] == ["SIGTERM", "SIGKILL"]
    assert r.train.budget_s <= r.train.seconds < r.train.budget_s + EXIT_SLACK_S, "ended soon after the deadline"
    assert r.status is Status.SCORED


def _children_gone(r: RunResult, run: Path, entry: Path) -> None:
    """The phase ends with its main process, before its SIGTERM was due: its children are not waited for."""
    assert r.train.outcome is Outcome.COMPLETED and r.train.seconds < r.train.budget_s - r.train.grace_s
    assert r.status is Status.SCORED


def _fork_bomb(r: RunResult, run: Path, entry: Path) -> None:
    assert r.train.outcome in (Outcome.NO_CHECKPOINT, Outcome.OOM, Outcome.KILLED_AT_DEADLINE), r.train
    assert r.status is Status.FAILED


def _oom(r: RunResult, run: Path, entry: Path) -> None:
    assert r.train.outcome is Outcome.OOM, r.train
    assert "memory" in r.train.detail and r.status is Status.FAILED


def _network(r: RunResult, run: Path, entry: Path) -> None:
    text = log(run, "train")
    assert "NETWORK-OK" not in text and "FOUND" not in text, text
    assert text.count("blocked") == 4 and "interfaces: ['lo']" in text
    assert r.status is Status.SCORED


def _write_outside(r: RunResult, run: Path, entry: Path) -> None:
    allowed = {
        "train": {"/checkpoints/evil", "/tmp/evil", "/dev/shm/evil"},
        "predict": {"/output/evil", "/tmp/evil", "/dev/shm/evil"},
    }
    for phase, ok in allowed.items():
        wrote = {line.split()[1] for line in log(run, phase).splitlines() if line.startswith("WROTE")}
        assert wrote == ok, (phase, wrote)
    assert [c["name"] for c in r.train.checkpoints] == ["evil", "model.npy"]
    assert r.status is Status.SCORED


def _write_data(r: RunResult, run: Path, entry: Path) -> None:
    text = log(run, "train")
    assert "WROTE" not in text and text.count("refused") == 5, text
    assert r.status is Status.SCORED


def _log_flood(r: RunResult, run: Path, entry: Path) -> None:
    size = (run / "train.log").stat().st_size
    assert 2**20 <= size < 2**20 + 4096
    assert "log capped" in log(run, "train")
    assert r.train.outcome is Outcome.KILLED_AT_DEADLINE and r.status is Status.SCORED


def _huge_checkpoint(r: RunResult, run: Path, entry: Path) -> None:
    # Docker's /checkpoints is a 64 MiB tmpfs (ENOSPC); the sandbox stops every file at RLIMIT_FSIZE
    # (EFBIG) and kills the phase past the cap, whichever comes first.
    assert r.train.outcome is Outcome.CRASHED, r.train
    assert "/checkpoints is full" in log(run, "train")
    assert sum(c["bytes"] for c in r.train.checkpoints) <= 64 * 2**20
    assert r.status is Status.FAILED


def _bad_predictions(r: RunResult, run: Path, entry: Path) -> None:
    assert r.predict.outcome is Outcome.COMPLETED
    assert r.status is Status.INVALID_PREDICTIONS and r.reason


def _events_flood(r: RunResult, run: Path, entry: Path) -> None:
    assert r.train.seconds < 10, "killed by the events watchdog long before the deadline"
    assert "events file passed its cap" in log(run, "train")


def _scored(r: RunResult, run: Path, entry: Path) -> None:
    assert r.status is Status.SCORED, (r.status, r.reason, r.train.detail)


def _deep_nesting(r: RunResult, run: Path, entry: Path) -> None:
    _scored(r, run, entry)
    assert "nested deeper than 32" in r.train.detail


def _tiny_flood(r: RunResult, run: Path, entry: Path) -> None:
    _scored(r, run, entry)
    assert "more than 20000 events; later ones dropped" in r.train.detail


def _blank_lines(r: RunResult, run: Path, entry: Path) -> None:
    assert r.status is Status.INVALID_PREDICTIONS and "byte limit for 100 predictions" in r.reason


def _control_chars(r: RunResult, run: Path, entry: Path) -> None:
    assert r.status is Status.INVALID_PREDICTIONS
    assert "'0,\\x1b[31m1\\x1b]0;title\\x07' are not two integers" in r.reason
    assert b"\x1b]0;pwned-title\x07" in (run / "train.log").read_bytes(), "the log file is the raw record"


def _not_built(r: RunResult, run: Path, entry: Path) -> None:
    # The sandbox never builds an entry's Dockerfile: no untimed work, no network, the harness's runtime.
    assert r.build is None and r.train.outcome is Outcome.COMPLETED and r.train.seconds < 3
    assert r.status is Status.SCORED


def _chance(r: RunResult, run: Path, entry: Path) -> None:
    assert r.status is Status.SCORED, r.reason
    assert r.total == 300 and r.accuracy <= CHANCE_CEILING, f"{r.accuracy:.0%} of the held-out labels"
    key = json.loads((run / "result.json").read_text())["data"]["heldout_order_key"]
    assert key and key not in log(run, "train") + log(run, "predict"), "the secret order key reached the entry"


def _snoop(r: RunResult, run: Path, entry: Path) -> None:
    secrets = (entry / "host_paths.txt").read_text().split()
    for phase in ("train", "predict"):
        text = log(run, phase)
        assert "FOUND" not in text, text
        assert all(f"denied {path}" in text for path in secrets) and "denied /etc/shadow" in text
        assert "uid 10001 euid 10001" in text and "CapEff 0000000000000000" in text and "NoNewPrivs 1" in text
    assert "npz /data/train.npz: ['images.npy', 'labels.npy', 'classes.npy']" in log(run, "train")
    assert "npz /data/test.npz: ['images.npy']" in log(run, "predict"), "predict sees images only"
    assert r.status is Status.SCORED


def _no_nested_userns(r: RunResult, run: Path, entry: Path) -> None:
    text = log(run, "train")
    assert "UNSHARED" not in text and "refused unshare" in text, text
    assert r.status is Status.SCORED


def set_id_problems(run: Path) -> list[str]:
    """What the setuid-shell entry left with special rights, as its logs and the run directory show:
    train's files as predict saw them (after the harness's strip), anything in the run directory."""
    problems = []
    seen = [line.split() for line in log(run, "predict").splitlines() if line.startswith("SEEN ")]
    names = {name for _, name, _ in seen}
    # A hard link and its first name: Docker's copy-out keeps one of the two (a tar link is refused).
    if not ({"sh-both", "late-renamed", "setgid-folder/inner-sh"} <= names and names & {"sh", "late-link"}):
        problems.append(f"predict did not see train's files: {sorted(names)}")
    for _, name, mode in seen:
        if int(mode, 8) & 0o6000 or not (stat.S_ISREG(int(mode, 8)) or stat.S_ISDIR(int(mode, 8))):
            problems.append(f"/checkpoints/{name} was handed to predict as {mode}")
    for path in [run, *run.rglob("*")]:
        mode = path.lstat().st_mode
        if mode & 0o6000 or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            problems.append(f"{path} is {oct(mode)} in the run directory")
    return problems


def _set_id_inert(r: RunResult, run: Path, entry: Path) -> None:
    for phase, place in (("train", "/checkpoints"), ("predict", "/output")):
        text = log(run, phase)
        (mount,) = [line for line in text.splitlines() if line.startswith(f"MOUNT {place} ")]
        assert "nosuid" in mount.split()[2].split(","), mount  # a set-id file gives nothing inside
        assert "refused null-device" in text and "refused zero-device" in text, "mknod worked in the sandbox"
        assert "SETID sh" in text, "the trick itself ran"
    problems = set_id_problems(run)
    assert not problems, problems
    assert r.status is Status.SCORED, (r.status, r.reason)


def _deadline(r: RunResult, run: Path, entry: Path, wake_ups: WakeUps) -> None:
    assert_deadline_held(json.loads((run / "result.json").read_text()), run.name, wake_ups)


def _predict_budget_is_the_default(r: RunResult, run: Path) -> float:
    """Under the default options predict's budget is the default for the training budget (the floor
    for a short one), the train phase was told it, and no predict warning was needed."""
    default = default_predict_budget(r.train.budget_s)
    assert r.predict.budget_s == default == PREDICT_FLOOR_S, r.predict.budget_s
    assert f"HAET_PREDICT_BUDGET_S {default:g}" in log(run, "train")
    assert r.predict.seconds <= default + EXIT_SLACK_S, f"predict ran {r.predict.seconds}s of a {default}s budget"
    assert not [w for w in r.warnings if "predict phase" in w], r.warnings
    # predict's compute is recorded and shown: the entry kept a core busy, so its CPU seconds are well above 0
    assert r.predict.cpu_seconds is not None and r.predict.cpu_seconds > 2.0, r.predict
    saved = json.loads((run / "result.json").read_text())["predict"]
    assert saved["seconds"] == r.predict.seconds and saved["cpu_seconds"] == r.predict.cpu_seconds
    assert saved["gpu_busy_seconds"] is None, "a cpu run has no GPU to be busy"
    report = (run / "report.md").read_text()
    assert f"{r.predict.seconds:.2f} s of {default:.0f} s budget" in report
    assert f"CPU {r.predict.cpu_seconds:.1f} s" in report
    return default


def _trained_in_predict(marker: str):
    """predict-training, predict-self-training: they train until their own HAET_BUDGET_S deadline,
    so they stop before the default budget's SIGTERM and score."""

    def check(r: RunResult, run: Path, entry: Path) -> None:
        _predict_budget_is_the_default(r, run)
        assert r.status is Status.SCORED, (r.status, r.reason)
        assert r.predict.outcome is Outcome.COMPLETED and r.predict.seconds > 10, r.predict
        assert f"{marker} steps=" in log(run, "predict") and f"budget={PREDICT_FLOOR_S:g}" in log(run, "predict")

    return check


def _predict_past_sigterm(r: RunResult, run: Path, entry: Path) -> None:
    """predict-ignores-sigterm: killed at the default predict budget; no process of it trains past it."""
    default = _predict_budget_is_the_default(r, run)
    assert r.predict.outcome is Outcome.KILLED_AT_DEADLINE, r.predict
    assert [s.name for s in r.predict.signals] == ["SIGTERM", "SIGKILL"]
    assert r.predict.signals[-1].at_s <= default + 0.1
    text = log(run, "predict")
    assert "MAIN-TRAINED" in text and "HELPER-TRAINED" in text, text[-2000:]
    # two processes print to one log, so their lines may interleave: read each stamp by pattern
    late = [float(at) for at in re.findall(r"-TRAINED at ([+-]?[\d.]+)s", text)]
    assert max(late) <= EXIT_SLACK_S, f"trained {max(late)}s past the predict deadline"
    assert r.status is Status.FAILED and r.reason.startswith("predict killed_at_deadline")


HOST_SECRET = "HAET-HOST-" + "SECRET"  # in the bait files below; never in anything of a run


def host_bait(entry: Path, where: Path) -> None:
    """A host folder and a host file the checkpoint-* entries link to (host_paths.txt): the entry
    cannot see them, the harness reading HAET_CHECKPOINTS from outside could."""
    folder = where / "host-bait"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.bin").write_text(HOST_SECRET + " in a host folder\n")
    (folder / "host.npy").write_text(HOST_SECRET + " in a host file\n")
    (entry / "host_paths.txt").write_text(f"{folder}\n{folder / 'host.npy'}\n")


def _no_host_bytes(r: RunResult, run: Path, entry: Path) -> None:
    folder = Path((entry / "host_paths.txt").read_text().split()[0])
    assert (folder / "model.bin").read_text().startswith(HOST_SECRET), "the host's files are untouched"
    logs = [p for p in run.rglob("*") if p.is_file() and p.suffix in (".log", ".json", ".csv", ".md", ".html")]
    for path in logs:
        assert HOST_SECRET not in path.read_text(errors="replace"), f"a host file reached {path.name}"
    assert not any("host" in c["name"] for c in r.train.checkpoints), r.train.checkpoints


def _checkpoint_swap(r: RunResult, run: Path, entry: Path) -> None:
    _no_host_bytes(r, run, entry)
    assert "swapping" in log(run, "train")
    assert "FILE model.npy" in log(run, "predict"), "predict prints what it is given: the check above can see"
    assert "model.npy" in [c["name"] for c in r.train.checkpoints]
    assert r.curve is not None and any(not p.final for p in r.curve.points), "the watcher copied while it swapped"
    assert r.status is Status.SCORED, (r.status, r.reason)


def _checkpoint_maze(r: RunResult, run: Path, entry: Path) -> None:
    _no_host_bytes(r, run, entry)
    assert r.train.checkpoints == [] and "could not be read in full" in r.train.detail, r.train
    assert r.predict.outcome is Outcome.NOT_STARTED and r.status is Status.FAILED


EXPECTED: dict[str, Expected] = {
    "sleep-forever": Expected(_killed_after_sigterm),
    "ignore-sigterm": Expected(_killed_after_sigkill),
    "fork-children": Expected(_children_gone),
    "fork-bomb": Expected(_fork_bomb),
    # These two end themselves at their limit; a budget past the default's 3 s lets a starved core
    # (a parallel suite) reach it before the deadline, and costs nothing when it is reached at once.
    "oom": Expected(_oom, run=dict(budget_s=15.0)),
    "network": Expected(_network),
    # its test names real host files in host_paths.txt beside it; predict reads every file of the
    # sandbox below 50 MB but the Python packages (4 s from a cold page cache; with them, up to 60 s)
    "snoop": Expected(_snoop, run=dict(predict_budget_s=60.0)),
    "write-outside": Expected(_write_outside),
    "write-data": Expected(_write_data),
    "nested-userns": Expected(_no_nested_userns),
    "setuid-shell": Expected(_set_id_inert),  # tests/test_host_files.py checks the host during the phase
    "log-flood": Expected(_log_flood, log_limit=2**20),
    "huge-checkpoint": Expected(_huge_checkpoint, run=dict(budget_s=15.0)),
    "bad-predictions": Expected(_bad_predictions),
    "events-flood": Expected(_events_flood, run=dict(budget_s=20.0, grace_s=2.0)),
    "events-deep-nesting": Expected(_deep_nesting),
    "events-surrogates": Expected(_scored),
    "events-tiny-flood": Expected(_tiny_flood, run=dict(budget_s=20.0, grace_s=2.0), runner=dict(events_limit="32m")),
    # 16 MiB of predictions: the harness's reader bound is under test, not the output cap (raised past it).
    "predictions-blank-lines": Expected(_blank_lines, runner=dict(output_limit="32m")),
    "control-chars": Expected(_control_chars),
    "networked-build": Expected(_not_built),
    "slow-build": Expected(_not_built),
    "replay-sampler": Expected(
        _chance, data="heldout", run=dict(budget_s=20.0, grace_s=5.0, predict_budget_s=30.0, seed=7, eval_per_class=30)
    ),
    "seed-oracle": Expected(
        _chance, data="heldout", run=dict(budget_s=20.0, grace_s=5.0, predict_budget_s=30.0, seed=7, eval_per_class=30)
    ),
    # The default predict budget (None: the rule of harness/options.py) is what these test.
    "predict-training": Expected(_trained_in_predict("PREDICT-TRAINED"), run=dict(predict_budget_s=None)),
    "predict-self-training": Expected(_trained_in_predict("PREDICT-SELF-TRAINED"), run=dict(predict_budget_s=None)),
    "predict-ignores-sigterm": Expected(_predict_past_sigterm, run=dict(predict_budget_s=None)),
    "yaml-alias-bomb": Expected(_scored, refused="anchors (&name) are not allowed"),
    "big-file": Expected(_scored, refused="more than"),  # with a sparse 3 GiB file put beside it
    # Their tests put host_paths.txt beside them (host_bait).
    "checkpoint-swap": Expected(_checkpoint_swap, run=dict(budget_s=10.0, grace_s=1.0, curve=True, curve_per_class=5)),
    "checkpoint-maze": Expected(_checkpoint_maze),
    **{
        name: Expected(
            _deadline,
            run=dict(budget_s=BUDGET, grace_s=GRACE, predict_budget_s=30.0),
            runner=dict(memory="1g", events_limit="32m"),
            timed=True,
        )
        for name in DEADLINE_ENTRIES
    },
}
