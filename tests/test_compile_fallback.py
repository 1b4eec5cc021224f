"""torch.compile only where it works: the bundled entry tries it once in setup and trains eagerly,
saying why, when it fails; with a C compiler it compiles and still scores in its budget."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, only_run_dir, read_json, run_harness

torch = pytest.importorskip("torch")
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++")


def forced_compile_entry(tmp_path: Path, sets: str) -> Path:
    """The bundled entry with `--set compile=true` and `sets` on its train command."""
    entry = tmp_path / "entry"
    shutil.copytree(ROOT / "submission", entry)
    manifest = entry / "submission.yaml"
    manifest.write_text(
        manifest.read_text().replace("train: python train.py", f"train: python train.py --set compile=true {sets}")
    )
    return entry


def run_entry(tmp_path, data, budget, sets="--set epochs=1", env=None, runner=("--runner", "local")):
    """One graded run of the forced-compile entry. One epoch by default: what is tested is the mode
    the entry chose and that its model is scored, and a fixed epoch count ends the phase early."""
    proc = run_harness(
        "run",
        "--submission",
        forced_compile_entry(tmp_path, sets),
        *runner,
        "--device",
        "cpu",
        "--data",
        data,
        "--budget",
        budget,
        "--runs-dir",
        tmp_path / "runs",
        "--cache-dir",
        tmp_path / "cache",
        "--train-per-class",
        "60",
        "--eval-per-class",
        "20",
        timeout=float(budget) + 240,  # the budget, predict and the harness around them
        env=env,
    )
    run = only_run_dir(tmp_path / "runs")
    result = read_json(run / "result.json")
    assert proc.returncode == 0 and result["status"] == "scored", (
        result["reason"],
        (run / "train.log").read_text()[-3000:],
    )
    (config,) = [e for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()) if e["event"] == "config"]
    return result, config, (run / "train.log").read_text()


def test_forced_compile_without_a_c_compiler_trains_eagerly_and_says_why(tmp_path, synthetic_npz):
    # The local runner's PATH is the harness's Python's folder plus the caller's PATH: give it only
    # that folder, as in an image without a compiler (the PyTorch runtime image has none).
    bare = str(Path(sys.executable).parent)
    assert not any(shutil.which(c, path=bare) for c in COMPILERS), "the venv's bin folder holds a compiler"
    result, config, log = run_entry(tmp_path, synthetic_npz, "60", env={"PATH": bare})
    assert config["compile"] == 0 and config["compile_mode"] == "eager"
    if hasattr(torch, "compile"):  # torch 2.x: Inductor would find no C++ compiler; asked before compiling
        assert config["compile_why"].startswith("no C++ compiler on PATH") and config["compile_s"] == 0
    else:  # torch 1.13 has no torch.compile at all
        assert "has no torch.compile" in config["compile_why"]
    assert f"compile: eager ({config['compile_why']}" in log
    assert result["train"]["seconds"] <= 60.5


@pytest.mark.docker
def test_forced_compile_in_the_cpu_image_trains_eagerly_on_its_torch_1_13(tmp_path, synthetic_npz, runtime_image):
    result, config, log = run_entry(
        tmp_path, synthetic_npz, "60", runner=("--runner", "docker", "--image", runtime_image)
    )
    assert config["compile"] == 0 and config["compile_mode"] == "eager" and config["compile_s"] == 0
    assert config["compile_why"] == "torch 1.13.0a0 has no torch.compile", "the contract's table says 1.13.0a0"
    assert "compile: eager (torch 1.13.0a0 has no torch.compile; 0.0 s)" in log


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(torch, "compile") or not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="needs torch.compile and a C++ compiler",
)
def test_forced_compile_with_a_compiler_compiles_and_scores(tmp_path, synthetic_npz):
    # A cold compile of ResNet-9's forward and backward took 41-52 s on these 2 cores alone under the
    # sandbox (docs/results.md), 128 s when other work shared the cores, and over 138 s on the one
    # core the parallel suite gives this test; the attempt may take half the time left. A 600 s
    # budget lets it (about 290 s), and two epochs of the narrowest width end the phase soon after (a
    # 600 s plan would pick a wider model, 101 s in all), so the test lasts what the compile does.
    # Its own TMPDIR (the local runner passes it on): a cold Inductor cache, as in a fresh container.
    (tmp_path / "tmp").mkdir()
    result, config, log = run_entry(
        tmp_path, synthetic_npz, "600", sets="--set epochs=2 --set width=0.25", env={"TMPDIR": str(tmp_path / "tmp")}
    )
    assert config["compile"] == 1 and config["compile_mode"] == "compiled", log[-3000:]
    assert "compile: compiled (compile: true;" in log
    assert config["compile_s"] > 0 and any(line.startswith("epoch") for line in log.splitlines())
    assert result["train"]["outcome"] == "completed", "the process ends after its final save, not at SIGTERM"
    assert result["train"]["seconds"] <= 600.5
