"""The batch script of one job array: what sbatch reads, what --dry-run prints.

Resources come from the run's limits: one GPU (`--gres=gpu:1`) with --device cuda, the CPUs and
memory of the Docker runner's limits (or --cpus-per-task/--mem), and `--time` = budget + predict
budget + a setup margin. The harness's own clock stays the authority: Slurm's limit is only the
safety net for a harness that hangs, so it is generous.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UsageError
from harness.options import RunOptions
from harness.runners.limits import DOCKER_PREFIX, MIB, PhaseLimits, option, parse_size

SETUP_MARGIN_S = 600  # start-up, data preparation, scoring and writing reports, on a slow shared filesystem
HARNESS_MEMORY_MB = 4096  # the harness process, its monitor and the scorer, on top of the entry's limit
TASK_ENV = "SLURM_ARRAY_TASK_ID"


@dataclass
class SiteOptions:
    """What a cluster needs that a run does not: where and how to queue."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch_args: list[str] = field(default_factory=list)
    max_parallel: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    job_name: str = "haet-grade"

    def check(self) -> SiteOptions:
        for value in [self.partition, self.account, self.qos, self.constraint, self.mem, *self.sbatch_args]:
            if value is not None and ("\n" in value or "\r" in value or not value.strip()):
                raise UsageError(f"a Slurm option must be one non-empty line, not {value!r}")
        for arg in self.sbatch_args:
            if not arg.startswith("-"):
                raise UsageError(f"--sbatch-arg takes one sbatch option such as --sbatch-arg=--exclusive, not {arg!r}")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise UsageError("--max-parallel must be at least 1")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise UsageError("--cpus-per-task must be at least 1")
        return self


def size_mb(text: str) -> int:
    """A --mem value in megabytes, read as sbatch reads it, to which it is passed: K, M, G or T, and
    a plain number in megabytes."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    text = text.strip().lower().rstrip("b")
    if text and text[-1] in units:
        return math.ceil(float(text[:-1]) * units[text[-1]])
    return math.ceil(float(text))


def time_limit_s(options: RunOptions) -> int:
    """budget + predict budget + the setup margin, and the build timeout when Docker may build an entry."""
    build = 0.0
    if options.runner == "docker":
        build = options.build_timeout_s if options.build_timeout_s is not None else 600.0
    return math.ceil(options.budget_s + options.predict_budget_s + SETUP_MARGIN_S + build)


def slurm_time(seconds: int) -> str:
    """sbatch's D-HH:MM:SS, rounded up to whole minutes (Slurm's granularity)."""
    minutes = math.ceil(seconds / 60)
    days, minutes = divmod(minutes, 24 * 60)
    return f"{days}-{minutes // 60:02d}:{minutes % 60:02d}:00"


def default_cpus() -> int:
    """The Docker runner's CPU quota, read as the runner reads it ($HAET_DOCKER_CPUS, else its default)."""
    return math.ceil(float(option(DOCKER_PREFIX, None, "cpus", PhaseLimits.cpus)))


def default_mem_mb() -> int:
    """The Docker runner's memory limit, read as the runner reads it, and the harness's own memory."""
    memory = parse_size(option(DOCKER_PREFIX, None, "memory", PhaseLimits.memory))
    return math.ceil(memory / MIB) + HARNESS_MEMORY_MB


def resources(options: RunOptions, site: SiteOptions) -> list[str]:
    cpus = site.cpus_per_task or default_cpus()
    mem = site.mem or f"{default_mem_mb()}M"
    lines = [f"--cpus-per-task={cpus}", f"--mem={mem}", f"--time={slurm_time(time_limit_s(options))}"]
    if options.device == "cuda":
        lines.append("--gres=gpu:1")
    return lines


def array_spec(count: int, max_parallel: int | None) -> str:
    return f"0-{count - 1}" + (f"%{max_parallel}" if max_parallel else "")


def split(count: int, max_array_size: int | None) -> list[range]:
    """Task indices per array: a cluster refuses an array index >= MaxArraySize."""
    size = max_array_size or count or 1
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def batch_script(
    commands: list[list[str]], keys: list[str], out: Path, workdir: Path, options: RunOptions, site: SiteOptions
) -> str:
    """One array: task i runs commands[i] (the `run` of keys[i]) and leaves start/end markers under
    OUT/.slurm/tasks, so a client can tell a run that ended from one that died on the way."""
    out = Path(out).resolve()
    sbatch = [
        f"--job-name={site.job_name}",
        f"--array={array_spec(len(commands), site.max_parallel)}",
        f"--output={out}/.slurm/logs/%A_%a.log",
        f"--chdir={workdir}",
        "--no-requeue",  # the client requeues, after keeping the failed attempt aside
        *resources(options, site),
    ]
    for name in ("partition", "account", "qos", "constraint"):
        value = getattr(site, name)
        if value:
            sbatch.append(f"--{name}={value}")
    sbatch += site.sbatch_args
    lines = (
        ["#!/bin/bash"]
        + [f"#SBATCH {arg}" for arg in sbatch]
        + [
            "# Written by `python -m harness grade --backend slurm`: one graded run per array task.",
            "set -u",
            # Slurm's SIGTERM (scancel, time limit, preemption) reaches the harness too; the script waits
            # for it to stop (a trap runs only after the foreground command exits), so the end marker
            # says when nothing of this attempt writes any more.
            "trap 'echo \"batch script: SIGTERM, waiting for the harness to stop\" >&2' TERM",
            f"markers={shlex.quote(str(out / '.slurm' / 'tasks'))}",
            'task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
            'node="${SLURMD_NODENAME:-$(hostname)}"',
            "mark() {  # $1 start|end, $2 extra JSON fields; written atomically (Slurm's names and numbers only)",
            '    printf \'{"task": "%s", "node": "%s", "at": "%s"%s}\\n\' "$task" "$node" '
            '"$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$2" > "$markers/$task.$1.json.tmp"',
            '    mv -f "$markers/$task.$1.json.tmp" "$markers/$task.$1.json"',
            "}",
            f'case "${TASK_ENV}" in',
        ]
    )
    gpu = ' --gpu "${SLURM_JOB_GPUS%%,*}"' if options.device == "cuda" else ""
    for index, (command, key) in enumerate(zip(commands, keys)):
        lines.append(f"  {index}) run=({shlex.join(command)}) ;;  # {json.dumps(key)}")
    lines += [
        f'  *) echo "no graded run for task ${TASK_ENV}" >&2; exit 2 ;;',
        "esac",
        'mark start ""',
        # The GPU Slurm allocated, by NVML's index (SLURM_JOB_GPUS), when the run needs one.
        f'"${{run[@]}}"{gpu}',
        "code=$?",
        'mark end ", \\"exit_code\\": $code"',
        "exit $code",
    ]
    return "\n".join(lines) + "\n"
