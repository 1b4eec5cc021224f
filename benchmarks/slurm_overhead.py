"""Scheduling overhead of `grade --backend slurm` per run, on the local single-node cluster
(deploy/slurm/start-cluster.sh). Prints one JSON object per run and one summary.

    python benchmarks/slurm_overhead.py [--runs 8] [--budget 3] [--max-parallel 1] [--poll 2]

For every graded run (a copy of tests/submissions/centroid whose train.py first writes the wall
clock into its events):

  queue_s       sbatch of the array -> the task starts on its node (start marker): Slurm's own latency
  startup_s     the task starts -> the entry's training starts (the run's clock): the harness's start-up,
                the same as a local grade's
  submit_to_clock_s   queue_s + startup_s: submit -> the run's clock starts
  collect_s     the run's result.json is written -> the grader has collected it (polling: --poll)

With --max-parallel 1 the queue time of later runs includes the runs before them; the summary's
`first_queue_s` is the pure scheduling latency, `queue_gap_s` the median gap between one task's end
and the next one's start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.synthetic import write_synthetic_npz  # noqa: E402

CENTROID = ROOT / "tests" / "submissions" / "centroid"
STAMP = (
    "import json, os, time\n"
    "open(os.environ['HAET_EVENTS'], 'a').write(json.dumps({'event': 'clock', 'wall': time.time()}) + '\\n')\n"
)


def iso(text: str) -> float:
    """A marker's UTC time (`date -u +%Y-%m-%dT%H:%M:%S.%NZ`: nanoseconds, cut to microseconds)."""
    return datetime.fromisoformat(text.rstrip("Z")[:26] + "+00:00").timestamp()


def entry(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("train.py", "predict.py"):
        code = (CENTROID / name).read_text()
        (dst / name).write_text(STAMP + code if name == "train.py" else code)
    (dst / "submission.yaml").write_text(f"name: {dst.name}\ntrain: python train.py\npredict: python predict.py\n")
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="graded runs (one entry, this many seeds)")
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--max-parallel", type=int, default=1)
    parser.add_argument("--poll", type=float, default=2.0, help="the grader's squeue interval (HAET_SLURM_POLL_S)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="slurm-overhead-") as tmp:
        tmp = Path(tmp)
        data = write_synthetic_npz(tmp / "data.npz", 60, 30, seed=0, noise=500.0)
        out = tmp / "grading"
        stamped = entry(tmp / "stamped")
        argv = [
            sys.executable,
            "-m",
            "harness",
            "grade",
            str(stamped),
            "--out",
            str(out),
            "--data",
            f"npz:{data}",
            "--train-per-class",
            "30",
            "--eval-per-class",
            "20",
            "--budget",
            str(args.budget),
            "--repeats",
            str(args.runs),
            "--device",
            "cpu",
            "--runner",
            "local",
            "--cache-dir",
            str(tmp / "cache"),
            "--backend",
            "slurm",
            "--cpus-per-task",
            "1",
            "--mem",
            "1G",
            "--max-parallel",
            str(args.max_parallel),
            "--quiet",
        ]
        t0 = time.time()
        done = subprocess.run(
            argv, cwd=ROOT, env={**os.environ, "HAET_SLURM_POLL_S": str(args.poll)}, capture_output=True, text=True
        )
        wall = time.time() - t0
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        state = json.loads((out / "slurm.json").read_text())
        submitted = {key: a["submitted_at"] for a in state["arrays"] for key in a["runs"]}
        rows = []
        for key, record in sorted(state["runs"].items()):
            tasks = out / ".slurm" / "tasks"
            start = json.loads((tasks / f"{record['task']}.start.json").read_text())
            end = json.loads((tasks / f"{record['task']}.end.json").read_text())
            events = [json.loads(line) for line in (out / key / "events.jsonl").read_text().splitlines()]
            clock = next(e["wall"] for e in events if e.get("event") == "clock")
            written = (out / key / "result.json").stat().st_mtime
            row = {
                "run": key,
                "task": record["task"],
                "queue_s": round(iso(start["at"]) - submitted[key], 3),
                "startup_s": round(clock - iso(start["at"]), 3),
                "submit_to_clock_s": round(clock - submitted[key], 3),
                "collect_s": round(record["collected_at"] - written, 3),
                "_start": iso(start["at"]),
                "_end": iso(end["at"]),
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}))
        rows.sort(key=lambda r: r["_start"])
        gaps = [b["_start"] - a["_end"] for a, b in zip(rows, rows[1:])] if args.max_parallel == 1 else []
        print(
            json.dumps(
                {
                    "benchmark": "slurm_overhead",
                    "runs": len(rows),
                    "budget_s": args.budget,
                    "poll_s": args.poll,
                    "max_parallel": args.max_parallel,
                    "wall_s": round(wall, 1),
                    "first_queue_s": rows[0]["queue_s"],
                    "queue_gap_median_s": round(statistics.median(gaps), 3) if gaps else None,
                    "startup_median_s": round(statistics.median(r["startup_s"] for r in rows), 3),
                    "collect_median_s": round(statistics.median(r["collect_s"] for r in rows), 3),
                    "collect_max_s": round(max(r["collect_s"] for r in rows), 3),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
