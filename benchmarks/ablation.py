"""The ablation table of the bundled submission: every preset graded through the harness.

    python benchmarks/ablation.py --budget 90 --seeds 3 --device cpu \
        --data tar:../shared/data/cifar10-jpeg.tar.gz [--presets baseline,sam,...]

Each preset runs as its own copy of submission/ whose train command is
`python train.py --preset NAME`; a row `NAME+KEY=VALUE+...` adds `--set KEY=VALUE` for each
override (`default+width=0.25+epochs=20`: the default preset, 20 planned epochs of width 0.25),
graded by `python -m harness run --repeats SEEDS`
on the same seeds (the same 5000 training images and 1000 held-out images per
seed for every preset). Each preset's row is kept in
benchmarks/results/TABLE-DEVICE-BUDGETs.json, so `--presets NAME` re-measures one row
and keeps the others; the table rendered from that file goes into docs/results.md between
markers, and the text around it is left alone. Run directories stay under --runs-dir.

`--table compile` keeps rows apart from the ablation's, for eager against compiled
(`default,default+compile=true`); run it with `--runner sandbox`, whose private /tmp gives each
run a cold Inductor cache, as a graded run in a fresh container has.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import events  # noqa: E402
from harness.files import atomic_write_text  # noqa: E402
from harness.model import SeriesResult  # noqa: E402
from harness.report import read_result  # noqa: E402

PRESETS = ["baseline", "ip", "sam", "sam-ip", "gc", "meta", "all", "default"]  # the paper's rows, then ours
RESULTS = ROOT / "docs" / "results.md"
ROWS_DIR = ROOT / "benchmarks" / "results"


def train_command(row: str) -> str:
    """`python train.py --preset NAME [--set KEY=VALUE ...]` for a row `NAME[+KEY=VALUE...]`."""
    preset, *overrides = row.split("+")
    return " ".join([f"python train.py --preset {preset}"] + [f"--set {o}" for o in overrides])


def grade_preset(preset: str, args, scratch: Path) -> dict:
    slug = re.sub(r"[^A-Za-z0-9._-]", "-", preset)
    entry = scratch / slug
    shutil.copytree(ROOT / "submission", entry, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = (entry / "submission.yaml").read_text()
    manifest = re.sub(r"^train:.*$", f"train: {train_command(preset)}", manifest, flags=re.M)
    (entry / "submission.yaml").write_text(manifest)
    run_id = f"{args.table}-{slug}-{args.device}-{args.budget:g}s"
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--submission",
        str(entry),
        "--runner",
        args.runner,
        "--device",
        args.device,
        "--data",
        args.data,
        "--budget",
        f"{args.budget:g}",
        "--repeats",
        str(args.seeds),
        "--seed",
        str(args.seed),
        "--runs-dir",
        str(args.runs_dir),
        "--run-id",
        run_id,
        "--quiet",
    ]
    print(f"[ablation] {preset}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, cwd=ROOT, check=False)
    return summarize(preset, max(args.runs_dir.glob(f"{run_id}*"), key=lambda p: p.stat().st_mtime), args)


def summarize(preset: str, run_dir: Path, args) -> dict:
    """One table row from a graded run directory (its result.json and each repeat's events)."""
    result = read_result(run_dir / "result.json")
    repeats = result.repeats if isinstance(result, SeriesResult) else [result]
    epochs, per_epoch, modes = [], [], []
    for _, directory in zip(repeats, sorted(run_dir.glob("repeat-*")) or [run_dir]):
        log = events.read(directory / "events.jsonl")  # the harness's one reader of events.jsonl
        config = next((e for e in log.events if e.get("event") == "config"), {})
        if "compile_mode" in config:
            modes.append(f"{config['compile_mode']} {config.get('compile_s', 0):.0f} s")
        reached, last = events.epochs(log.events), events.last_epoch(log.events)
        if reached:
            epochs.append(reached)
        if last:
            per_epoch.append(last[1] / last[0])  # time of the last epoch event / its epoch
    accuracies = [r.accuracy or 0.0 for r in repeats]
    return {
        "preset": preset,
        "run": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
        "accuracies": accuracies,
        "mean": statistics.fmean(accuracies),
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "epochs": statistics.fmean(epochs) if epochs else None,
        "s_per_epoch": statistics.fmean(per_epoch) if per_epoch else None,
        "statuses": [r.status.value for r in repeats],
        "compile": modes,  # per seed: the mode the entry trained in and the seconds it spent compiling
        "setting": (
            f"runner `{args.runner}`, {args.seeds} seeds (from {args.seed}), data `{_shown(args.data)}`, "
            f"{platform.machine()} with {_cores()} cores{_gpu_note(args)}"
        ),
        "measured": datetime.date.today().isoformat(),
    }


def merge_rows(name: str, key: str, new_rows: list[dict]) -> list[dict]:
    """Rows kept from earlier invocations of table `name`, replaced by the new ones, in PRESETS order."""
    path = ROWS_DIR / f"{name}-{key}.json"
    rows = {r["preset"]: r for r in (json.loads(path.read_text())["rows"] if path.exists() else [])}
    rows.update({r["preset"]: r for r in new_rows})
    ordered = sorted(rows.values(), key=lambda r: (PRESETS + [r["preset"]]).index(r["preset"]))
    atomic_write_text(path, json.dumps({"rows": ordered}, indent=1) + "\n")
    return ordered


def table(rows: list[dict], args) -> str:
    settings = sorted({r["setting"] for r in rows})
    rows_named = "" if args.presets == ",".join(PRESETS) else f" --presets {','.join(r['preset'] for r in rows)}"
    lines = [
        f"Budget {args.budget:g} s, device `{args.device}`; " + "; ".join(settings) + ". Command: "
        f"`python benchmarks/ablation.py --budget {args.budget:g} --seeds {args.seeds} --device {args.device}"
        f"{rows_named}{'' if args.table == 'ablation' else f' --table {args.table} --runner {args.runner}'}`.",
        "",
        "| preset | accuracy (mean ± std) | per seed | epochs reached | s / epoch | compile | status | measured |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        per_seed = ", ".join(f"{a:.1%}" for a in r["accuracies"])
        epochs = f"{r['epochs']:.1f}" if r["epochs"] is not None else "n/a"
        speed = f"{r['s_per_epoch']:.2f}" if r["s_per_epoch"] is not None else "n/a"
        status = "all scored" if set(r["statuses"]) == {"scored"} else ", ".join(r["statuses"])
        compiled = ", ".join(r.get("compile") or ["n/a"])
        lines.append(
            f"| {r['preset']} | {r['mean']:.1%} ± {r['std']:.1%} | {per_seed} | {epochs} | {speed} "
            f"| {compiled} | {status} | {r.get('measured', 'n/a')} |"
        )
    return "\n".join(lines)


def _shown(data: str) -> str:
    """A data source as the table shows it: local paths relative to the repository."""
    kind, sep, path = data.partition(":")
    return f"{kind}:{os.path.relpath(path, ROOT)}" if sep and os.path.isabs(path) else data


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _gpu_note(args) -> str:
    if args.device != "cuda":
        return ", no GPU used"
    from harness.monitor import Gpus

    gpus, _ = Gpus.open("0")
    return f", GPU: {gpus.info[0]['name']}" if gpus else ""


def write_section(name: str, key: str, body: str) -> None:
    begin, end = f"<!-- {name}:{key}:begin -->", f"<!-- {name}:{key}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Results of the bundled submission\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + f"\n\n## {name.capitalize()}: {key}\n\n{block}\n"
    atomic_write_text(RESULTS, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=90)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--runner", default="local", choices=["local", "sandbox", "docker"])
    parser.add_argument("--table", default="ablation", choices=["ablation", "compile"])
    parser.add_argument("--data", default=f"tar:{ROOT.parent / 'shared' / 'data' / 'cifar10-jpeg.tar.gz'}")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    args = parser.parse_args()
    args.runs_dir = args.runs_dir.resolve()
    key = f"{args.device}-{args.budget:g}s"
    with tempfile.TemporaryDirectory(prefix="haet-ablation-") as scratch:
        for preset in args.presets.split(","):
            row = grade_preset(preset, args, Path(scratch))
            print(json.dumps(row), flush=True)
            # each row is kept the moment it is measured: an interrupted sweep loses only the row it was on
            body = table(merge_rows(args.table, key, [row]), args)
            write_section(args.table, key, body)
    print(body)


if __name__ == "__main__":
    main()
