import csv
import subprocess
import sys
import time

import pytest

from harness.monitor import Gpus, Monitor
from harness.runners.local import LocalRunner
from tests.fake_nvml import FakeNvml


def run_monitor(tmp_path, gpus, note="", seconds=0.35, sample=lambda: (150.0, 2**30)):
    monitor = Monitor(sample, gpus, note, 0.05, tmp_path / "metrics.csv")
    monitor.start(time.monotonic())
    time.sleep(seconds)
    return monitor.stop()


def test_gpu_metrics_are_sampled_and_summarised(tmp_path):
    """What the harness makes of the readings: means, peaks, energy since the start, units, the CSV."""
    fake = FakeNvml(util=[20.0, 80.0], mem_used=[2**30, 5 * 2**30, 3 * 2**30], power_mw=250_000)
    gpus, note = Gpus.open("0", fake)
    assert note == ""
    summary = run_monitor(tmp_path, gpus)
    assert summary.samples >= 4
    (gpu,) = summary.gpus
    assert gpu.name == "NVIDIA Fake 100", "NVML's bytes are decoded"
    assert gpu.util_max == 80.0 and 20.0 < gpu.util_mean < 80.0, "a mean and a peak over the changing series"
    assert gpu.memory_used_peak_bytes == 5 * 2**30, "the peak, not the last reading"
    assert gpu.power_mean_w == 250.0 and gpu.temperature_max_c == 65  # mW -> W
    assert gpu.energy_j == pytest.approx(summary.samples - 1 + 1, abs=1)  # 1 J per read past the first
    assert summary.cpu_percent_mean == 150.0 and summary.rss_peak_bytes == 2**30
    assert summary.warnings == []
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary.samples
    assert float(rows[-1]["gpu0_power_w"]) == 250.0
    assert {float(r["gpu0_util"]) for r in rows} == {20.0, 80.0}, "every sample, not a summary, in the CSV"


def test_energy_is_integrated_from_power_without_a_counter(tmp_path):
    gpus, _ = Gpus.open("0", FakeNvml(power_mw=100_000, energy_counter=False))
    summary = run_monitor(tmp_path, gpus, seconds=0.5)
    # 100 W for the time between the first and last sample
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    span = float(rows[-1]["t_s"]) - float(rows[0]["t_s"])
    assert summary.gpus[0].energy_j == pytest.approx(100 * span, rel=0.05)


def test_an_idle_gpu_under_a_cuda_claim_is_flagged(tmp_path):
    gpus, _ = Gpus.open(None, FakeNvml(util=0.0))
    summary = run_monitor(tmp_path, gpus)
    assert any("claims cuda but GPU 0" in w and "stayed idle" in w for w in summary.warnings)


def test_without_nvml_gpu_fields_are_null_and_said_so(tmp_path):
    class Missing(FakeNvml):
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    gpus, note = Gpus.open("0", Missing())
    assert gpus is None and "No GPU was visible to the harness" in note
    summary = run_monitor(tmp_path, gpus, note)
    assert summary.gpus is None and "NVML Shared Library Not Found" in summary.gpu_note
    with open(tmp_path / "metrics.csv") as f:
        assert next(csv.reader(f)) == ["t_s", "cpu_percent", "rss_bytes"]


def test_an_unknown_gpu_is_reported_not_raised():
    gpus, note = Gpus.open("3", FakeNvml(gpus=1))
    assert gpus is None and "GPU '3' could not be opened" in note


def test_the_local_runner_measures_a_busy_process_tree(tmp_path):
    """Real psutil sampling over the whole tree: a busy parent and its busy child."""
    from harness.runners.base import PhaseSpec

    (tmp_path / "ck").mkdir()
    spec = PhaseSpec(
        phase="train",
        command=[
            sys.executable,
            "-c",
            "import os, time\nos.fork()\nend = time.time() + 1.5\nwhile time.time() < end: pass\n",
        ],
        submission_dir=tmp_path,
        data_dir=tmp_path,
        checkpoints_dir=tmp_path / "ck",
        events_file=tmp_path / "events.jsonl",
        output_dir=None,
        log_path=tmp_path / "train.log",
        budget_s=10,
        grace_s=1,
        seed=0,
        device="cpu",
    )
    handle = LocalRunner().start(spec)
    summary = run_monitor(tmp_path, None, seconds=1.2, sample=handle.sample)
    handle.wait(5)
    handle.finish()
    assert summary.cpu_percent_max > 20  # other work shares this machine's cores: no tighter bound
    assert summary.rss_peak_bytes > 12 * 2**20, "two interpreters' memory, not one"


@pytest.mark.gpu
def test_real_nvml_reads_a_real_gpu(tmp_path):
    """Runs only where a GPU is: the real pynvml path, no stand-in."""
    gpus, note = Gpus.open("0")
    if gpus is None:
        pytest.skip(f"no GPU here: {note}")
    busy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import torch, time\nx = torch.randn(8192, 8192, device='cuda')\nend = time.time() + 4\n"
                "while time.time() < end: x = (x @ x).tanh()\ntorch.cuda.synchronize()\n"
            ),
        ]
    )
    time.sleep(1)
    summary = run_monitor(tmp_path, gpus, seconds=2.5)
    busy.wait()
    gpu = summary.gpus[0]
    assert gpu.name and gpu.util_max > 50 and gpu.power_max_w > 50 and gpu.energy_j > 10
    assert gpu.memory_used_peak_bytes > 2**28 and gpu.sm_clock_mean_mhz > 0


def test_a_cuda_run_records_gpu_metrics_in_its_result(tmp_path, synthetic_npz):
    """The whole run in-process, NVML stood in: GPU facts reach result.json, metrics.csv and the report."""
    import json

    from harness.console import Progress
    from harness.options import RunOptions
    from harness.run import graded_run
    from tests.helpers import CENTROID

    fake = FakeNvml(util=0.0)
    options = RunOptions(
        submission=CENTROID,
        data=synthetic_npz,
        budget_s=20,
        grace_s=2,
        device="cuda",
        train_per_class=20,
        eval_per_class=10,
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        monitor_interval_s=0.05,
    )
    opened = []

    def open_gpus(selector):
        opened.append(selector)
        return Gpus.open(selector, fake)

    result = graded_run(options, LocalRunner(), Progress(quiet=True), open_gpus=open_gpus)
    assert opened == ["0"], "NVML is opened once per run, for the default GPU"
    assert result.monitor.gpu_status.value == "monitored"
    assert result.status.value == "scored"
    assert result.environment.gpus == ["0: NVIDIA Fake 100 (GPU-fake-0)"] and result.environment.driver == "999.1"
    assert result.environment.cuda == "13.0"
    assert result.monitor.gpus[0].power_mean_w == 250.0
    assert any("stayed idle" in w for w in result.warnings)
    run_dir = tmp_path / "runs" / result.run_id
    assert json.loads((run_dir / "result.json").read_text())["monitor"]["gpus"][0]["name"] == "NVIDIA Fake 100"
    assert "gpu0_power_w" in (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert fake.shutdown
