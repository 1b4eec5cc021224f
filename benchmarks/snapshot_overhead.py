"""Do the curve's snapshots stall the entry? (issue: accuracy against time). Prints one JSON object.

    python benchmarks/snapshot_overhead.py [--size-mb 26] [--period 1.5] [--budget 40] [--rounds 3]

An entry saves a checkpoint of `--size-mb` (ResNet-9's EMA weights: ~26 MB) every `--period`
seconds, the way the bundled entry does (a temporary file, fsync, rename; the two newest kept),
and records how long each save took (write + fsync + rename) in its events. The same entry runs
under the local runner with --no-curve and with --curve (which copies the folder, ~52 MB, after
each save while training goes on), alternating, `--rounds` times each. Reported: the saves'
median, p95 and max latency, the train phase's saves per run, and the snapshots taken.

Target: the median save no more than 10% slower with snapshots, and no save delayed by more than
one copy. Run it on a quiet machine: the numbers go in docs/benchmarks.md ("Curve snapshots").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.synthetic import write_synthetic_npz  # noqa: E402

SAVER = """
import json, os, time
SIZE, PERIOD = {size}, {period}
ckpt, events = os.environ["HAET_CHECKPOINTS"], os.environ["HAET_EVENTS"]
stop = float(os.environ["HAET_DEADLINE"]) - float(os.environ["HAET_GRACE_S"]) - 1.0
payload = os.urandom(SIZE)
seq = 0
while time.time() + PERIOD < stop:
    time.sleep(PERIOD)
    seq += 1
    start = time.perf_counter()
    tmp = os.path.join(ckpt, f".ckpt-{{seq:06d}}.tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(ckpt, f"ckpt-{{seq:06d}}.pt"))
    if seq > 2:
        os.unlink(os.path.join(ckpt, f"ckpt-{{seq - 2:06d}}.pt"))
    latency = time.perf_counter() - start
    with open(events, "a") as f:
        f.write(json.dumps({{"event": "save", "seq": seq, "latency_s": latency, "time": time.time()}}) + "\\n")
"""
PREDICT = """
import os
import numpy as np
n = len(np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"])
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\\n" + "".join(f"{i},0\\n" for i in range(n)))
"""


def run(tmp: Path, entry: Path, source: str, budget: float, curve: bool, index: int) -> dict:
    run_id = f"{'curve' if curve else 'plain'}-{index}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--submission",
            str(entry),
            "--runner",
            "local",
            "--device",
            "cpu",
            "--data",
            source,
            "--budget",
            str(budget),
            "--train-per-class",
            "20",
            "--eval-per-class",
            "10",
            "--curve-per-class",
            "10",
            "--curve" if curve else "--no-curve",
            "--runs-dir",
            str(tmp / "runs"),
            "--run-id",
            run_id,
            "--cache-dir",
            str(tmp / "cache"),
            "--quiet",
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    run_dir = tmp / "runs" / run_id
    latencies = []
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "save":
            latencies.append(event["latency_s"])
    result = json.loads((run_dir / "result.json").read_text())
    return {"latencies": latencies, "snapshots": result["curve"]["snapshots_seen"] if result.get("curve") else 0}


def summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "saves": len(ordered),
        "median_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=26.0)
    parser.add_argument("--period", type=float, default=1.5)
    parser.add_argument("--budget", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        entry = tmp / "saver"
        entry.mkdir()
        (entry / "submission.yaml").write_text("name: saver\ntrain: python train.py\npredict: python predict.py\n")
        (entry / "train.py").write_text(SAVER.format(size=int(args.size_mb * 2**20), period=args.period))
        (entry / "predict.py").write_text(PREDICT)
        source = f"npz:{write_synthetic_npz(tmp / 'data.npz', 30, 30)}"
        plain, curved, snapshots = [], [], []
        for i in range(args.rounds):
            plain += run(tmp, entry, source, args.budget, False, i)["latencies"]
            with_curve = run(tmp, entry, source, args.budget, True, i)
            curved += with_curve["latencies"]
            snapshots.append(with_curve["snapshots"])
    without, with_ = summary(plain), summary(curved)
    print(
        json.dumps(
            {
                "benchmark": "snapshot_overhead",
                "size_mb": args.size_mb,
                "period_s": args.period,
                "budget_s": args.budget,
                "rounds": args.rounds,
                "without_curve": without,
                "with_curve": with_,
                "snapshots_per_run": snapshots,
                "median_slowdown": round(with_["median_ms"] / without["median_ms"] - 1, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
