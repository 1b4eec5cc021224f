"""Docker runner overhead per phase and deadline precision (docs/benchmarks.md, "Docker runner").

    .venv/bin/python benchmarks/docker_overhead.py [--image haet-runtime:cpu] [--repeats 5]

Per phase (train, with its capped checkpoint volume and holder; predict, with its output volume):
  start -> first output   runner.start() called -> the first byte the command prints reaches the log
                          (volume + holder + create + start + the command's own start-up)
  exit -> removed         the command has exited -> finish() returned (checkpoints copied out,
                          containers and volumes removed)
Deadline precision: a phase that ignores SIGTERM, budget 3 s, grace 1 s: seconds measured by
the clock minus the budget (target <= 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import finish_after_exit, past_deadline, phase_spec, summary  # noqa: E402
from harness.runners.docker import DockerRunner  # noqa: E402

COMMANDS = {
    "sh echo": ["sh", "-c", "echo ready; touch $HAET_CHECKPOINTS/m 2>/dev/null; echo x > ${HAET_OUTPUT:-/tmp}/p"],
    "python print": ["python", "-c", "print('ready', flush=True)"],
}


def one_phase(runner: DockerRunner, phase: str, command: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        spec = phase_spec(Path(d), phase, command)
        t0 = time.monotonic()
        handle = runner.start(spec)
        while not spec.log_path.stat().st_size:
            if time.monotonic() - t0 > 30:
                raise RuntimeError("no output within 30 s")
            time.sleep(0.002)
        return time.monotonic() - t0, finish_after_exit(handle)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", default="haet-runtime:cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runner = DockerRunner(image=args.image, memory="1g", cpus=1.0)
    one_phase(runner, "train", COMMANDS["sh echo"])  # warm the engine's caches
    rows, raw = [], {}
    for label, command in COMMANDS.items():
        for phase in ("train", "predict"):
            samples = [one_phase(runner, phase, command) for _ in range(args.repeats)]
            first, removed = [s[0] for s in samples], [s[1] for s in samples]
            raw[f"{phase} / {label}"] = {"start_to_first_output_s": first, "exit_to_removed_s": removed}
            rows.append(
                f"| {phase} | `{label}` | {summary(first)} | {summary(removed)} | "
                f"{summary([a + b for a, b in samples])} |"
            )
    late = [past_deadline(runner) for _ in range(args.repeats)]
    raw["deadline_past_budget_s"] = late
    info = runner.client.info()
    print(
        f"machine: {platform.node()}, {info.get('NCPU')} CPUs, {info.get('MemTotal', 0) / 2**30:.0f} GiB, "
        f"kernel {info.get('KernelVersion')}, Docker {info.get('ServerVersion')} "
        f"({info.get('Driver')}, cgroup v{info.get('CgroupVersion', '1')}), image {runner.describe()['image']}"
    )
    print(f"repeats: {args.repeats}\n")
    print("| phase | command | start → first output | exit → removed | total overhead |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"\ndeadline precision (ignores SIGTERM, budget 3 s): {summary(late)} past the budget")
    print("\n" + json.dumps(raw, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
