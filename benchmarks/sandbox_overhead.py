"""Sandbox runner overhead per phase and deadline precision (docs/benchmarks.md, "Sandbox runner").

    .venv/bin/python benchmarks/sandbox_overhead.py [--repeats 10] [--runners sandbox,local]

Per phase (train, with its checkpoints bound writable; predict, with its output folder):
  start -> first instruction   the wall clock just before runner.start() -> the wall clock the
                               entry reads as its first statement (bwrap's namespaces and mounts,
                               the cgroup, the interpreter's own start-up); target <= 0.3 s
  exit -> finished             the command has exited -> finish() returned (caps checked, links
                               removed, checkpoint times read, cgroup removed)
The local runner is measured the same way as the baseline: the difference is the sandbox's cost.
Deadline precision: a phase that ignores SIGTERM, budget 3 s, grace 1 s: seconds measured by the
clock minus the budget (target <= 0.5 s past the deadline).
Run it on a quiet machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.clock import supervise  # noqa: E402
from harness.runners import make_runner  # noqa: E402
from harness.runners.base import PhaseSpec  # noqa: E402

FIRST = ["python", "-c", "import time; print(repr(time.time()), flush=True)"]
STUBBORN = [
    "python",
    "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\nwhile True: time.sleep(0.01)",
]


def spec(tmp: Path, phase: str, command: list[str], budget: float = 30.0, grace: float = 1.0) -> PhaseSpec:
    for d in ("sub", "data", "ck", "ev", "out"):
        (tmp / d).mkdir(exist_ok=True)
    return PhaseSpec(
        phase=phase,
        command=command,
        submission_dir=tmp / "sub",
        data_dir=tmp / "data",
        checkpoints_dir=tmp / "ck",
        events_file=tmp / "ev" / "events.jsonl",
        output_dir=tmp / "out" if phase == "predict" else None,
        log_path=tmp / f"{phase}.log",
        budget_s=budget,
        grace_s=grace,
        seed=0,
        device="cpu",
    )


def one_phase(runner, phase: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        s = spec(Path(d), phase, FIRST)
        before = time.time()
        handle = runner.start(s)
        code = None
        while code is None:
            code = handle.wait(5)
        exited = time.monotonic()
        handle.finish()
        finished = time.monotonic() - exited
        first = float(s.log_path.read_text().split()[0])
        return first - before, finished


def deadline(runner) -> float:
    with tempfile.TemporaryDirectory() as d:
        s = spec(Path(d), "train", STUBBORN, budget=3.0, grace=1.0)
        handle = runner.start(s)
        result = supervise(handle)
        handle.finish()
        return result.seconds - s.budget_s


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s (max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--runners", default="sandbox,local")
    args = parser.parse_args()
    rows, raw = [], {}
    for name in args.runners.split(","):
        runner = make_runner(name)
        one_phase(runner, "train")  # warm the page cache
        for phase in ("train", "predict"):
            samples = [one_phase(runner, phase) for _ in range(args.repeats)]
            first, finished = [s[0] for s in samples], [s[1] for s in samples]
            raw[f"{name} / {phase}"] = {"start_to_first_instruction_s": first, "exit_to_finished_s": finished}
            rows.append(f"| {name} | {phase} | {summary(first)} | {summary(finished)} |")
        late = [deadline(runner) for _ in range(args.repeats)]
        raw[f"{name} / deadline_past_budget_s"] = late
        rows.append(f"| {name} | ignores SIGTERM, budget 3 s | past the deadline: {summary(late)} | |")
        if name == "sandbox":
            enforced = runner.describe()["memory_enforced"]
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}, "
        f"Python {platform.python_version()}" + (f", sandbox memory: {enforced}" if "sandbox" in args.runners else "")
    )
    print(f"repeats: {args.repeats}\n")
    print("| runner | phase | start → first instruction | exit → finished |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))
    print("\n" + json.dumps(raw, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
