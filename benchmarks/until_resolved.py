"""Seeds where they matter: `grade --until-resolved` against grading every entry at the maximum.

    python benchmarks/until_resolved.py [--data tar:/work/shared/data/cifar10-jpeg.tar.gz]
        [--repeats 3] [--max-seeds 8] [--budget 5] [--keep DIR]

Five small entries (examples/minimal's colour-mean classifier, a share q of its predictions replaced
by random labels, q = 0, 0.05, 0.1, 0.4, 0.8: two close to the leader, two far below) are graded twice
on the local backend over the same seeds: every entry at --max-seeds seeds, and --repeats seeds for
every entry and more until resolved. Prints one JSON object: the runs and wall time of each grading,
and the leader and its tier (the entries within noise of it) on each board.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = ROOT / "examples" / "minimal"
SHARES = {"q00": 0.0, "q05": 0.05, "q10": 0.1, "q40": 0.4, "q80": 0.8}

PREDICT = '''"""colour-mean, a share Q of its labels replaced by random ones (drawn from the seed and the entry)."""

import os

import numpy as np

Q, SALT = {q}, {salt}
means = np.load(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"))
x = np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"].mean(axis=(1, 2)) / 255.0
labels = (x @ means.T - 0.5 * (means**2).sum(1)).argmax(1)
rng = np.random.default_rng([int(os.environ["HAET_SEED"]), SALT])
swap = rng.random(len(labels)) < Q
labels[swap] = rng.integers(0, len(means), len(labels))[swap]
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\\n" + "".join(f"{{i}},{{label}}\\n" for i, label in enumerate(labels)))
'''


def write_entries(root: Path) -> list[Path]:
    entries = []
    for salt, (name, q) in enumerate(SHARES.items()):
        entry = root / name
        entry.mkdir(parents=True)
        (entry / "submission.yaml").write_text(f"name: {name}\ntrain: python train.py\npredict: python predict.py\n")
        (entry / "train.py").write_text((MINIMAL / "train.py").read_text())
        (entry / "predict.py").write_text(PREDICT.format(q=q, salt=salt))
        entries.append(entry)
    return entries


def grade(entries: list[Path], out: Path, args, repeats: int, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "harness", "grade", *map(str, entries), "--out", str(out)]
    command += ["--data", args.data, "--budget", str(args.budget), "--repeats", str(repeats)]
    command += ["--device", "cpu", "--runner", "local", "--quiet", *extra]
    command += ["--cache-dir", str(args.cache_dir)] if args.cache_dir else []
    start = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds = time.monotonic() - start
    with open(out / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    return {
        "runs": sum(1 for p in out.glob("*/seed-*/result.json") if ".stale-" not in p.parent.name),
        "wall_s": round(seconds, 1),
        "leader": rows[0]["entry"],
        "tier_1": [r["entry"] for r in rows if r["tier"] == "1"],
        "seeds": {r["entry"]: int(r["seeds"]) for r in rows},
        "means": {r["entry"]: round(100 * float(r["accuracy_mean"]), 2) for r in rows},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tar:/work/shared/data/cifar10-jpeg.tar.gz")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=8)
    parser.add_argument("--budget", type=float, default=5)
    parser.add_argument("--cache-dir", type=Path, help="the prepared data cache (default: the harness's)")
    parser.add_argument("--keep", type=Path, help="grade into this directory (kept) instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        entries = write_entries(work / "entries")
        everyone = grade(entries, work / "all", args, args.max_seeds, [])
        until = grade(
            entries, work / "until", args, args.repeats, ["--until-resolved", "--max-seeds", str(args.max_seeds)]
        )
        stopped = json.loads((work / "until" / "grading.json").read_text())["until_resolved"]["stopped"]
    print(
        json.dumps(
            {
                "benchmark": "until_resolved",
                "repeats": args.repeats,
                "max_seeds": args.max_seeds,
                "everyone_at_max": everyone,
                "until_resolved": {**until, "stopped": stopped},
                "runs_saved_percent": round(100 * (1 - until["runs"] / everyone["runs"]), 1),
                "same_leader": everyone["leader"] == until["leader"],
                "same_tier_1": sorted(everyone["tier_1"]) == sorted(until["tier_1"]),
            }
        )
    )


if __name__ == "__main__":
    main()
