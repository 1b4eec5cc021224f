"""Harness benchmarks (issue: graded run). Prints one JSON object per measurement.

    python benchmarks/harness_overhead.py [--data tar:../shared/data/cifar10-jpeg.tar.gz] [--only NAME]

  data_prep          decoding the source cold (empty cache) and loading it cached
  harness_overhead   wall time of a whole run minus its train and predict seconds (cached data)
  deadline           train seconds minus budget for a submission that ignores SIGTERM
  monitor            throughput of a CPU workload with and without 10 Hz sampling of its tree

Targets: overhead <= 5 s, deadline <= 0.5 s, monitor < 1 % slower.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import data  # noqa: E402
from harness.monitor import Monitor  # noqa: E402
from harness.runners.base import PhaseSpec  # noqa: E402
from harness.runners.local import LocalRunner  # noqa: E402

CENTROID = ROOT / "tests" / "submissions" / "centroid"
STUBBORN_TRAIN = (
    (CENTROID / "train.py").read_text()
    + """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(0.1)
"""
)
WORKLOAD = """
import numpy as np, time
a = np.random.default_rng(0).random((256, 256), dtype=np.float32)
start = time.perf_counter()
for _ in range({steps}):
    a = np.tanh(a @ a * 0.01)
print(time.perf_counter() - start)
"""


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def harness_run(tmp: Path, submission: Path, source: str, *extra: str) -> dict:
    runs = tmp / "runs"
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--submission",
            str(submission),
            "--runner",
            "local",
            "--device",
            "cpu",
            "--data",
            source,
            "--runs-dir",
            str(runs),
            "--cache-dir",
            str(tmp / "cache"),
            "--quiet",
            *extra,
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    wall = time.monotonic() - start
    newest = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    result = json.loads((newest / "result.json").read_text())
    result["_wall"] = wall
    return result


def bench_data_prep(tmp: Path, source: str) -> None:
    cache = tmp / "prep-cache"
    start = time.monotonic()
    data.load_pool(source, cache)
    cold = time.monotonic() - start
    cached = []
    for _ in range(3):
        start = time.monotonic()
        data.load_pool(source, cache)
        cached.append(time.monotonic() - start)
    emit(benchmark="data_prep", source=source, cold_s=round(cold, 2), cached_s=round(statistics.median(cached), 2))


def bench_overhead(tmp: Path, source: str) -> None:
    harness_run(tmp, CENTROID, source, "--budget", "30")  # fill the cache
    overheads = []
    for _ in range(5):
        r = harness_run(tmp, CENTROID, source, "--budget", "30")
        overheads.append(r["_wall"] - r["train"]["seconds"] - r["predict"]["seconds"])
    emit(
        benchmark="harness_overhead",
        runs=5,
        median_s=round(statistics.median(overheads), 2),
        max_s=round(max(overheads), 2),
        target_s=5.0,
    )


def bench_deadline(tmp: Path, source: str) -> None:
    sub = tmp / "stubborn"
    shutil.copytree(CENTROID, sub)
    (sub / "train.py").write_text(STUBBORN_TRAIN)
    late = []
    for budget in (5, 10, 20):
        r = harness_run(tmp, sub, source, "--budget", str(budget), "--grace", "2")
        late.append(r["train"]["seconds"] - budget)
    emit(
        benchmark="deadline",
        budgets=[5, 10, 20],
        past_deadline_s=[round(x, 3) for x in late],
        max_s=round(max(late), 3),
        target_s=0.5,
    )


def bench_monitor(tmp: Path, steps: int = 20000, rounds: int = 5) -> None:
    runner = LocalRunner()
    script = tmp / "workload.py"
    script.write_text(WORKLOAD.format(steps=steps))
    (tmp / "ck").mkdir(exist_ok=True)

    def once(monitored: bool) -> float:
        spec = PhaseSpec(
            phase="train",
            command=[sys.executable, str(script)],
            submission_dir=tmp,
            data_dir=tmp,
            checkpoints_dir=tmp / "ck",
            events_file=tmp / "events.jsonl",
            output_dir=None,
            log_path=tmp / "workload.log",
            budget_s=600,
            grace_s=10,
            seed=0,
            device="cpu",
        )
        (tmp / "workload.log").unlink(missing_ok=True)
        handle = runner.start(spec)
        monitor = Monitor(handle.sample, None, "", 0.1, tmp / "metrics.csv", False) if monitored else None
        if monitor:
            monitor.start(handle.deadline.started_monotonic)
        handle.wait(600)
        if monitor:
            monitor.stop()
        handle.finish()
        return float((tmp / "workload.log").read_text().split()[-1])

    plain, sampled = [], []
    for _ in range(rounds):  # interleaved, so drift of the machine hits both alike
        plain.append(once(False))
        sampled.append(once(True))
    slower = statistics.median(sampled) / statistics.median(plain) - 1
    emit(
        benchmark="monitor",
        rounds=rounds,
        interval_s=0.1,
        plain_median_s=round(statistics.median(plain), 3),
        sampled_median_s=round(statistics.median(sampled), 3),
        slower_percent=round(100 * slower, 2),
        target_percent=1.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
    parser.add_argument("--data", default=f"tar:{default}")
    parser.add_argument("--only", choices=["data_prep", "harness_overhead", "deadline", "monitor"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="haet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        benches = {
            "data_prep": lambda: bench_data_prep(tmp, args.data),
            "harness_overhead": lambda: bench_overhead(tmp, args.data),
            "deadline": lambda: bench_deadline(tmp, args.data),
            "monitor": lambda: bench_monitor(tmp),
        }
        for name, bench in benches.items():
            if args.only in (None, name):
                bench()


if __name__ == "__main__":
    main()
