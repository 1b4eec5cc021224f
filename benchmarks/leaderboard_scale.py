"""The leaderboard at competition scale: CPU time, peak memory and page sizes of
`python -m harness leaderboard DIR` on synthetic gradings. Prints one JSON object per size.

    python benchmarks/leaderboard_scale.py [--entries 200 800 2000] [--seeds 5] [--failed 0.03] [--keep DIR]

Each grading is written in the on-disk format the leaderboard reads (grading.json, <entry>/entry.json,
<entry>/seed-<k>/result.json and events.jsonl), every result.json a whole one as the harness writes
it. Entry skills are spread from 40% to 95%, each seed adds training noise (sd 0.8 points), and a
fraction --failed of the seeds crashed (counted as 0). The leaderboard runs in a child process, its
CPU time (user + system) and peak RSS read from getrusage(RUSAGE_CHILDREN) around it.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.model import Outcome, to_dict  # noqa: E402
from tests.test_report import make_result  # noqa: E402

OPTIONS = {
    "data": "tar:cifar.tar.gz",
    "budget": 600.0,
    "train_per_class": 500,
    "eval_per_class": 100,
    "runner": "docker",
    "device": "cuda",
    "repeats": 5,
    "seed": 0,
}


def templates() -> tuple[dict, dict]:
    """A scored and a crashed result.json, as the harness writes them."""
    scored = to_dict(make_result(scored=True))
    failed = to_dict(make_result(scored=False, train_outcome=Outcome.CRASHED))
    failed.update({"status": "failed", "reason": "train crashed (exit code 1)", "accuracy": None, "correct": None})
    return scored, failed


def write_grading(root: Path, entries: int, seeds: int, failed: float, rng: random.Random) -> None:
    scored_t, failed_t = templates()
    plan = []
    for i in range(entries):
        entry_id = f"entry-{i:05d}"
        path = f"/entries/{entry_id}"
        plan.append({"id": entry_id, "path": path, "reference": i == 0})
        d = root / entry_id
        d.mkdir(parents=True)
        (d / "entry.json").write_text(json.dumps({"id": entry_id, "path": path, "invalid": None}))
        skill = rng.uniform(0.40, 0.95)
        for seed in range(seeds):
            run = d / f"seed-{seed}"
            run.mkdir()
            if rng.random() < failed:
                result = copy.deepcopy(failed_t)
            else:
                result = copy.deepcopy(scored_t)
                accuracy = min(1.0, max(0.0, round(skill + rng.gauss(0, 0.008), 3)))
                result.update({"accuracy": accuracy, "correct": round(accuracy * 1000), "total": 1000})
            result["seed"] = seed
            result["started_at"] = f"2026-01-01T00:{seed:02d}:00+00:00"
            result["data"].update({"data_sha256": f"hash-{seed}", "train_count": 5000, "eval_count": 1000})
            (run / "result.json").write_text(json.dumps(result))
            (run / "events.jsonl").write_text(json.dumps({"event": "epoch", "epoch": 10, "t_s": 500.0}) + "\n")
    (root / "grading.json").write_text(
        json.dumps(
            {"kind": "grading", "schema_version": 1, "seeds": list(range(seeds)), "entries": plan, "options": OPTIONS}
        )
    )


def measure(root: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "leaderboard", str(root), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"leaderboard failed: {proc.stderr[-2000:]}")
    # ru_maxrss of the children is the largest child so far (KiB on Linux): sizes run in ascending order
    return {
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        **{
            f"{name}_mb": round((root / name).stat().st_size / 2**20, 2)
            for name in ("leaderboard.html", "leaderboard.md", "leaderboard.csv", "runs.csv")
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, nargs="+", default=[200, 800, 2000])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--failed", type=float, default=0.03, help="fraction of seeds that crashed")
    ap.add_argument("--keep", type=Path, help="write the gradings here and keep them")
    args = ap.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for n in sorted(args.entries):
            root = base / f"grading-{n}"
            write_grading(root, n, args.seeds, args.failed, rng)
            print(
                json.dumps(
                    {
                        "benchmark": "leaderboard_scale",
                        "entries": n,
                        "seeds": args.seeds,
                        "failed": args.failed,
                        **measure(root),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
