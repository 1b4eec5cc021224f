"""What predict-phase compute buys: the hostile entry predict-training before and after the predict rule.

    python benchmarks/predict_budget.py [--data tar:../shared/data/cifar10-jpeg.tar.gz] [--runner sandbox]
                                        [--budget 30] [--seeds 3] [--out runs/predict-budget] [RUN FLAGS...]

predict-training (tests/hostile/) trains a softmax regression in its train phase, keeps its 5000
training images beside the model, and goes on training in predict until its own HAET_BUDGET_S
deadline. Graded three ways at the same training budget and seeds (paired):

  old   --predict-budget 120 (the default before the rule): predict trains ~118 s more
  new   the default predict budget, max(20 s, a tenth of --budget): 20 s at 30 s
  infer the same entry with an `infer-only` file beside it: predict only infers (the control)

With `--learner resnet9` the attacker is the bundled entry itself (benchmarks/entries/predict-retrain/
beside a copy of submission/): train keeps its training set beside its model; predict trains the
ResNet-9 afresh on it for all the predict time it can spare (keeping 25 s to predict), and predicts
with that model when it trained longer than the train phase did, else with train's model.

Flags it does not know go to every `run` (e.g. `--train-per-class 20` on a small data set). Prints
one Markdown table: per configuration the accuracy (mean and per seed), predict's
seconds and sampled CPU seconds, and the predict warnings the result carried. `old` - `infer`
is what predict-phase training bought under the old default; `new` - `infer` what it still buys.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import SHARED_TARBALL, stage_hostile  # noqa: E402

RETRAIN = ROOT / "benchmarks" / "entries" / "predict-retrain"


def stage_retrain(entry: Path) -> None:
    """The bundled entry with the predict-retrain wrappers (and their submission.yaml) over it."""
    shutil.copytree(ROOT / "submission", entry, ignore=shutil.ignore_patterns("__pycache__", "README.md"))
    for path in RETRAIN.iterdir():
        shutil.copy(path, entry / path.name)


CONFIGS = {  # name: (infer only, extra run flags)
    "old": (False, ["--predict-budget", "120"]),
    "new": (False, []),
    "infer": (True, []),
}


def runs_of(result: dict) -> list[dict]:
    return result["repeats"] if result.get("kind") == "series" else [result]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=f"tar:{SHARED_TARBALL}")
    p.add_argument("--runner", default="sandbox", choices=["sandbox", "docker", "local"])
    p.add_argument("--budget", type=float, default=30.0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "predict-budget")
    p.add_argument(
        "--learner",
        default="softmax",
        choices=["softmax", "resnet9"],
        help="the hostile learner: tests/hostile/predict-training, or the bundled ResNet-9 retrained",
    )
    p.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configurations to run (default: all)")
    args, passed = p.parse_known_args()
    out = args.out.resolve()
    runs_dir = out / "runs" / time.strftime("%Y%m%d-%H%M%S")  # a fresh folder: runs are never overwritten
    rows = []
    for name in args.only or CONFIGS:
        infer_only, flags = CONFIGS[name]
        entry = out / "entries" / f"{args.learner}-{name}"
        if not entry.exists():
            stage_retrain(entry) if args.learner == "resnet9" else stage_hostile("predict-training", entry)
            if infer_only:
                (entry / "infer-only").write_text("predict only infers\n")
        run_id = f"{args.learner}-{name}-{args.budget:g}s"
        cmd = [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--submission",
            str(entry),
            "--runner",
            args.runner,
            "--device",
            "cpu",
            "--data",
            args.data,
            "--budget",
            f"{args.budget:g}",
            "--repeats",
            str(args.seeds),
            "--runs-dir",
            str(runs_dir),
            "--run-id",
            run_id,
            "--quiet",
            *flags,
            *passed,
        ]
        print("$ " + " ".join(cmd), flush=True)
        done = subprocess.run(cmd, cwd=ROOT, check=False)
        if not (runs_dir / run_id / "result.json").is_file():
            raise SystemExit(f"the {name} run left no result (exit {done.returncode}); see its error above")
        result = json.loads((runs_dir / run_id / "result.json").read_text())
        runs = runs_of(result)
        acc = [r["accuracy"] or 0.0 for r in runs]
        predict_s = [r["predict"]["seconds"] for r in runs]
        cpu_s = [r["predict"].get("cpu_seconds") or 0.0 for r in runs]
        warned = sum(any("predict phase" in w for w in r["warnings"]) for r in runs)
        rows.append(
            f"| {name} | {' '.join(flags) or 'default'} | {statistics.fmean(acc):.1%} | "
            f"{', '.join(f'{a:.1%}' for a in acc)} | {runs[0]['predict']['budget_s']:g} | "
            f"{statistics.fmean(predict_s):.1f} | {statistics.fmean(cpu_s):.1f} | {warned}/{len(runs)} |"
        )
    print(
        f"\n{args.learner} learner, --budget {args.budget:g} s, runner {args.runner}, "
        f"{args.seeds} seed(s), {args.data}\n"
    )
    print(
        "| config | predict flags | accuracy | per seed | predict budget s | predict s | predict CPU s | "
        "predict warnings |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
