"""The bundled entry's accuracy under the sandbox runner against the local runner (docs/benchmarks.md,
"Sandbox runner"): the same seeds, one runner after the other for each seed.

    .venv/bin/python benchmarks/sandbox_accuracy.py --budget 90 --seeds 3 \
        --data tar:../shared/data/cifar10-jpeg.tar.gz [--runners local,sandbox]

Each seed grades `submission/` once per runner with `python -m harness run --device cpu
--seed K`, alternating runners so that a drift of the machine hits both. Prints one row per
runner (mean and standard deviation of the held-out accuracy, per-seed values, training seconds)
and the per-seed paired differences, and keeps everything in
benchmarks/results/sandbox-vs-local-cpu-BUDGETs.json. The sandbox is "within noise" when the
mean paired difference is inside the seeds' own spread. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def grade(runner: str, seed: int, args) -> dict:
    run_id = f"sandbox-accuracy-{runner}-seed{seed}-{args.budget:g}s"
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--submission",
        str(ROOT / "submission"),
        "--runner",
        runner,
        "--device",
        "cpu",
        "--data",
        args.data,
        "--budget",
        f"{args.budget:g}",
        "--seed",
        str(seed),
        "--runs-dir",
        str(args.runs_dir),
        "--run-id",
        run_id,
        "--quiet",
    ]
    print(f"[sandbox-accuracy] {' '.join(command[3:])}", flush=True)
    subprocess.run(command, cwd=ROOT, check=False)
    run = max(args.runs_dir.glob(f"{run_id}*"), key=lambda p: p.stat().st_mtime)
    result = json.loads((run / "result.json").read_text())
    train = result.get("train") or {}
    return {
        "runner": runner,
        "seed": seed,
        "status": result["status"],
        "accuracy": result.get("accuracy"),
        "train_s": train.get("seconds"),
        "run": str(run),
        "memory_enforced": result["environment"].get("memory_enforced"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=90)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runners", default="local,sandbox")
    parser.add_argument("--data", default=f"tar:{ROOT.parent / 'shared' / 'data' / 'cifar10-jpeg.tar.gz'}")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    args = parser.parse_args()
    runners = args.runners.split(",")
    rows = [grade(runner, seed, args) for seed in range(args.seed, args.seed + args.seeds) for runner in runners]
    lines = [
        f"machine: {platform.node()}, Python {platform.python_version()}, budget {args.budget:g} s, "
        f"--device cpu, seeds {args.seed}..{args.seed + args.seeds - 1}",
        "",
        "| runner | mean accuracy | std | per seed | train seconds (mean) |",
        "| --- | --- | --- | --- | --- |",
    ]
    by_runner = {r: [row for row in rows if row["runner"] == r] for r in runners}
    for runner, mine in by_runner.items():
        accs = [row["accuracy"] for row in mine if row["accuracy"] is not None]
        secs = [row["train_s"] for row in mine if row["train_s"] is not None]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        lines.append(
            f"| {runner} | {statistics.mean(accs) if accs else float('nan'):.4f} | {std:.4f} | "
            + ", ".join(f"{a:.4f}" for a in accs)
            + f" | {statistics.mean(secs) if secs else float('nan'):.1f} |"
        )
    if len(runners) == 2:
        first, second = by_runner[runners[0]], by_runner[runners[1]]
        diffs = [
            b["accuracy"] - a["accuracy"]
            for a, b in zip(first, second)
            if a["accuracy"] is not None and b["accuracy"] is not None
        ]
        if diffs:
            lines += [
                "",
                f"paired difference ({runners[1]} - {runners[0]}) per seed: "
                + ", ".join(f"{d:+.4f}" for d in diffs)
                + f"; mean {statistics.mean(diffs):+.4f}",
            ]
    print("\n".join(lines))
    out = ROOT / "benchmarks" / "results" / f"sandbox-vs-local-cpu-{args.budget:g}s.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"table": lines, "rows": rows}, indent=1) + "\n")
    print(f"\nkept in {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
