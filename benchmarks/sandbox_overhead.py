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
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import finish_after_exit, past_deadline, phase_spec, summary  # noqa: E402
from harness.runners import make_runner  # noqa: E402

FIRST = ["python", "-c", "import time; print(repr(time.time()), flush=True)"]


def one_phase(runner, phase: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        spec = phase_spec(Path(d), phase, FIRST)
        before = time.time()
        finished = finish_after_exit(runner.start(spec))
        first = float(spec.log_path.read_text().split()[0])
        return first - before, finished


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
            rows.append(f"| {name} | {phase} | {summary(first, 3)} | {summary(finished, 3)} |")
        late = [past_deadline(runner) for _ in range(args.repeats)]
        raw[f"{name} / deadline_past_budget_s"] = late
        rows.append(f"| {name} | ignores SIGTERM, budget 3 s | past the deadline: {summary(late, 3)} | |")
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
