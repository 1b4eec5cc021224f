"""`harness validate`: a correct entry passes; each broken entry fails the right check, with its fix."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import CENTROID, copy_entry, entry, run_harness


def validate_json(entry, *extra, runner="local"):
    proc = run_harness("validate", entry, "--json", "--smoke-budget", "8", "--runner", runner, *extra)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    return proc.returncode, report, {c["id"]: c for c in report["checks"]}


def test_correct_entry_passes_every_check():
    code, report, checks = validate_json(CENTROID)
    assert code == 0 and report["ok"], report
    for cid in (
        "manifest",
        "commands",
        "symlinks",
        "size",
        "weights",
        "trains",
        "checkpoint",
        "predict",
        "predictions",
        "learns",
    ):
        assert checks[cid]["status"] == "pass", checks[cid]
    assert checks["network"]["status"] == "skip"  # the local runner cannot prove it


@pytest.mark.docker
def test_docker_validation_proves_no_network_on_the_cpu_image(runtime_image):
    code, report, checks = validate_json(CENTROID, runner="docker")  # no --image: the CPU image is chosen
    assert code == 0 and report["ok"], report
    assert checks["network"]["status"] == "pass", checks["network"]


def test_checklist_text_names_each_failure_and_its_fix(tmp_path):
    proc = run_harness("validate", entry("missing-script", tmp_path), "--runner", "local")
    assert proc.returncode == 1
    assert "[FAIL] train and predict commands exist" in proc.stdout
    assert "infer.py" in proc.stdout and "fix: add the missing script" in proc.stdout
    assert "[SKIP] smoke run" in proc.stdout
    assert "result: 1 check(s) failed: commands" in proc.stdout


@pytest.mark.parametrize(
    "fixture, failing, fix",
    [
        ("bad-manifest", "manifest", "name: [a-z0-9-]+"),
        ("missing-script", "commands", "add the missing script"),
        ("crash", "trains", "run the train command by hand"),
        ("no-checkpoint", "checkpoint", "HAET_CHECKPOINTS"),
        ("predict-crash", "predict", "load what train saved"),
        ("bad-predictions", "predictions", "exactly one row per test image"),
    ],
)
def test_broken_fixture_fails_with_its_fix(fixture, failing, fix, tmp_path):
    code, report, checks = validate_json(entry(fixture, tmp_path))
    assert code == 1 and not report["ok"]
    failed = [c["id"] for c in report["checks"] if c["status"] == "fail"]
    assert failed == [failing], report
    assert fix in checks[failing]["fix"]
    assert checks[failing]["detail"]


def test_model_weights_are_refused(tmp_path):
    entry = copy_entry(CENTROID, tmp_path / "entry")
    (entry / "pretrained.pth").write_bytes(os.urandom(2 * 2**20))
    code, report, checks = validate_json(entry, "--no-smoke")
    assert code == 1
    assert checks["weights"]["status"] == "fail" and "pretrained.pth" in checks["weights"]["detail"]
    assert "pretrained models" in checks["weights"]["fix"]


def test_symlink_leaving_the_directory_is_refused(tmp_path):
    entry = copy_entry(CENTROID, tmp_path / "entry")
    (entry / "data").symlink_to("/etc")
    (entry / "inside.py").symlink_to("train.py")  # inside: fine
    code, report, checks = validate_json(entry, "--no-smoke")
    assert code == 1
    assert checks["symlinks"]["status"] == "fail"
    assert "data -> /etc" in checks["symlinks"]["detail"] and "inside.py" not in checks["symlinks"]["detail"]


def test_size_limit(tmp_path):
    entry = copy_entry(CENTROID, tmp_path / "entry")
    (entry / "notes.txt").write_bytes(b"x" * 300_000)
    code, report, checks = validate_json(entry, "--no-smoke", "--max-size-mb", "0.1")
    assert code == 1 and checks["size"]["status"] == "fail"
    assert "remove datasets" in checks["size"]["fix"]


def test_missing_directory():
    proc = run_harness("validate", "/nonexistent/entry")
    assert proc.returncode == 1 and "[FAIL] the entry can be read" in proc.stdout and "does not exist" in proc.stdout


def test_a_learner_cut_short_by_the_smoke_budget_is_told_to_raise_it(tmp_path):
    """An entry still training at the smoke deadline gets the --smoke-budget hint, not "broken"."""
    slow = copy_entry(CENTROID, tmp_path / "slow")
    (slow / "train.py").write_text(
        "import os, time, numpy as np\n"
        "np.save(os.path.join(os.environ['HAET_CHECKPOINTS'], 'model.npy'), np.zeros((10, 3072), np.float32))\n"
        "time.sleep(600)  # a heavy recipe: two steps in the smoke budget\n"
    )
    code, report, checks = validate_json(slow, "--smoke-budget", "4")
    assert checks["learns"]["status"] == "warn", checks["learns"]
    assert "still running at the 4s deadline" in checks["learns"]["detail"]
    assert "--smoke-budget 60" in checks["learns"]["fix"]


def test_a_quick_entry_that_does_not_learn_is_pointed_at_its_predictions(tmp_path):
    lazy = copy_entry(CENTROID, tmp_path / "lazy")
    (lazy / "train.py").write_text(
        "import os, numpy as np\n"
        "np.save(os.path.join(os.environ['HAET_CHECKPOINTS'], 'model.npy'), np.zeros((10, 3072), np.float32))\n"
    )
    code, report, checks = validate_json(lazy)
    assert checks["learns"]["status"] == "warn", checks["learns"]
    assert "check that predictions use the trained checkpoint" in checks["learns"]["fix"]


@pytest.mark.parametrize("handles, status", [(False, "warn"), (True, "pass")])
def test_an_entry_that_ignores_sigterm_is_told_to_save_and_exit(tmp_path, handles, status):
    """A common mistake, caught with its one-line fix: train that does not stop on SIGTERM."""
    entry = copy_entry(CENTROID, tmp_path / "stubborn")
    handler = "lambda *_: sys.exit(0)" if handles else "signal.SIG_IGN"
    (entry / "train.py").write_text(
        (CENTROID / "train.py").read_text()
        + f"\nimport signal, sys, time\nsignal.signal(signal.SIGTERM, {handler})\nwhile True:\n    time.sleep(0.1)\n"
    )
    code, report, checks = validate_json(entry, "--smoke-budget", "4")
    assert checks["sigterm"]["status"] == status, checks["sigterm"]
    if not handles:
        assert "on SIGTERM, save the model and exit" in checks["sigterm"]["fix"]


def test_predictions_out_of_order_are_pointed_at_the_index(tmp_path):
    """A common mistake: right labels, wrong rows (here in reverse). It scores at chance, and the fix says why."""
    shuffled = copy_entry(CENTROID, tmp_path / "shuffled")
    predict = (CENTROID / "predict.py").read_text().replace("enumerate(labels)", "enumerate(labels[::-1])")
    assert predict != (CENTROID / "predict.py").read_text()
    (shuffled / "predict.py").write_text(predict)
    code, report, checks = validate_json(shuffled)
    assert checks["learns"]["status"] == "warn", checks["learns"]
    assert "each row's index is the image's position in test.npz" in checks["learns"]["fix"]


@pytest.mark.parametrize("runner", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_checkpoint_rewritten_in_place_is_told_to_save_atomically(tmp_path, runner, request):
    """A common mistake: saving over the checkpoint in place, so a kill in mid-write leaves half a file."""
    if runner == "docker":
        request.getfixturevalue("runtime_image")
    entry = copy_entry(CENTROID, tmp_path / "in-place")
    (entry / "train.py").write_text(
        (CENTROID / "train.py").read_text()
        + (
            "for _ in range(3):  # save again every second, straight over the file\n"
            "    time.sleep(1.0)\n"
            "    with open(target, 'wb') as f:\n"
            "        np.save(f, means)\n"
        )
    )
    code, report, checks = validate_json(entry, runner=runner)
    assert checks["atomic"]["status"] == "warn", checks.get("atomic")
    assert "model.npy" in checks["atomic"]["detail"] and "os.replace" in checks["atomic"]["fix"]
    atomic = copy_entry(CENTROID, tmp_path / "atomic")
    (atomic / "train.py").write_text(
        (CENTROID / "train.py").read_text()
        + (
            "for _ in range(3):  # save again every second, the right way\n"
            "    time.sleep(1.0)\n"
            "    with open(target + '.tmp', 'wb') as f:\n"
            "        np.save(f, means)\n"
            "    os.replace(target + '.tmp', target)\n"
        )
    )
    code, report, checks = validate_json(atomic, runner=runner)
    assert checks["checkpoint"]["status"] == "pass" and "atomic" not in checks, "atomic saves are not flagged"
