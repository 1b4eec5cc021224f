import json
from pathlib import Path

import pytest

from harness.contract import ContractError, load_submission, phase_environment, submission_digest
from tests.helpers import CENTROID, ROOT, run_harness


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "submission.yaml").write_text(text)
    return tmp_path


def test_loads_the_bundled_fixture():
    sub = load_submission(CENTROID)
    assert sub.name == "centroid"
    assert sub.train == ["python", "train.py"] and sub.predict == ["python", "predict.py"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\n", "`train` must be a command line"),
        ("name: Bad_Name\ntrain: a\npredict: b\n", "must match [a-z0-9-]+"),
        ("name: x\ntrain: a\npredict: b\nextra: 1\n", "unknown key(s) extra"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: x\ntrain: [unclosed\n", "not valid YAML"),
        ("name: x\ntrain: 'python \"train.py'\npredict: b\n", "cannot be parsed"),
    ],
)
def test_malformed_manifest_names_the_problem(tmp_path, text, message):
    with pytest.raises(ContractError) as err:
        load_submission(write(tmp_path, text))
    assert message in str(err.value)


def test_missing_manifest_and_directory(tmp_path):
    with pytest.raises(ContractError, match="submission.yaml is missing"):
        load_submission(tmp_path)
    with pytest.raises(ContractError, match="does not exist"):
        load_submission(tmp_path / "nope")


def test_digest_changes_with_content(tmp_path):
    write(tmp_path, "name: x\ntrain: a\npredict: b\n")
    before = submission_digest(tmp_path)
    (tmp_path / "train.py").write_text("print(1)")
    assert submission_digest(tmp_path) != before


def test_phase_environment_has_every_variable(tmp_path):
    from harness.clock import Deadline
    from harness.runners.base import PhaseSpec

    spec = PhaseSpec(
        phase="train",
        command=["x"],
        submission_dir=tmp_path,
        data_dir=tmp_path,
        checkpoints_dir=tmp_path,
        events_file=tmp_path / "e",
        output_dir=None,
        log_path=tmp_path / "log",
        budget_s=90,
        grace_s=7.5,
        seed=3,
        device="cpu",
        predict_budget_s=20,
    )
    deadline = Deadline(started_monotonic=0.0, started_unix=910.5, budget_s=90, grace_s=7.5)
    env = phase_environment(spec, deadline, data="/d", checkpoints="/c", events="/e", output="/o")
    assert env["HAET_BUDGET_S"] == "90" and env["HAET_DEADLINE"] == "1000.500" and env["HAET_SEED"] == "3"
    assert env["HAET_GRACE_S"] == "7.5" and env["HAET_DATA"] == "/d"
    assert env["HAET_PREDICT_BUDGET_S"] == "20", "train is told predict's budget, to plan by"
    assert "HAET_OUTPUT" not in env
    assert set(env) >= {"HAET_DATA", "HAET_CHECKPOINTS", "HAET_EVENTS", "HAET_DEVICE", "HAET_CONTRACT"}


@pytest.mark.parametrize(
    "yaml, message",
    [
        (None, "submission.yaml is missing"),
        ("name: x\ntrain: python nothere.py\npredict: python predict.py\n", "names nothere.py"),
        ("name: x\ntrain: no-such-binary-xyz\npredict: python predict.py\n", "'no-such-binary-xyz' is not installed"),
    ],
)
def test_cli_rejects_bad_submissions_with_one_message(tmp_path, synthetic_npz, yaml, message):
    sub = tmp_path / "entry"
    sub.mkdir()
    (sub / "predict.py").write_text("")
    if yaml:
        (sub / "submission.yaml").write_text(yaml)
    proc = run_harness(
        "run",
        "--submission",
        str(sub),
        "--runner",
        "local",
        "--device",
        "cpu",
        "--data",
        synthetic_npz,
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "tar:/no/such.tar.gz"], "does not exist"),
        (["--data", "ftp:x"], "unknown data source"),
        (["--budget", "10", "--grace", "10"], "--grace must be"),
        (["--repeats", "0"], "--repeats must be at least 1"),
    ],
)
def test_cli_rejects_bad_options(tmp_path, synthetic_npz, args, message):
    base = [
        "run",
        "--submission",
        str(CENTROID),
        "--runner",
        "local",
        "--device",
        "cpu",
        "--data",
        synthetic_npz,
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    proc = run_harness(*base, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_the_local_runtime_is_described(tmp_path):
    proc = run_harness("runtime", "--json")
    runtime = json.loads(proc.stdout)
    assert proc.returncode == 0 and runtime["python"].count(".") == 2
    assert runtime["packages"]["numpy"] and "torch" in runtime["packages"]
    assert runtime["torch_compile"] == hasattr(__import__("torch"), "compile")


# torch.compile of a tiny function on CPU, as an entry runs (uid 10001, no network, read-only root, no GPU)
# with /tmp mounted exec as the Docker runner mounts it: Inductor loads the kernels it compiles there, and a
# Docker tmpfs is noexec unless told.
COMPILE_PROBE = """
import torch
f = torch.compile(lambda x: torch.sin(x) * 2 + x)
x = torch.randn(64)
assert torch.allclose(f(x), torch.sin(x) * 2 + x)
print("compiled")
"""


@pytest.mark.docker
@pytest.mark.parametrize("image_fixture", ["runtime_image", "cuda_runtime_image"], ids=["cpu", "cuda"])  # all we build
def test_the_image_is_what_the_contract_says(image_fixture, request, docker_client):
    """The runtime table in docs/submission-contract.md against `harness runtime --image`; where it
    says torch.compile, a compile works in the image."""
    image = request.getfixturevalue(image_fixture)
    rows = [
        line
        for line in (ROOT / "docs" / "submission-contract.md").read_text().splitlines()
        if line.startswith(f"| `{image}` |")
    ]
    assert len(rows) == 1, f"the contract has a row for {image}"
    python, *packages, compile_, compiler = [cell.strip() for cell in rows[0].strip("|").split("|")][1:]
    proc = run_harness("runtime", "--image", image, "--json", timeout=300)
    runtime = json.loads(proc.stdout)
    assert runtime["python"] == python
    assert [v or "absent" for v in runtime["packages"].values()] == packages
    assert ("yes" if runtime["torch_compile"] else "no") == compile_
    assert (runtime["c_compiler"] or "absent") == compiler
    # torch.compile fails without a C compiler: an image with torch.compile must have one. The CPU
    # image's torch 1.13 has no torch.compile, so it needs none (and has none).
    assert runtime["c_compiler"] or not runtime["torch_compile"], "torch.compile without a C compiler"
    if runtime["torch_compile"]:
        out = docker_client.containers.run(
            image,
            ["python", "-c", COMPILE_PROBE],
            entrypoint=[],
            user="10001:10001",
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": "rw,exec,nosuid,nodev,size=1g,mode=1777"},
            environment={"CUDA_VISIBLE_DEVICES": ""},
            remove=True,
        )
        assert out.decode().strip().endswith("compiled")
