"""What a site allows, read before submitting or told by Slurm while runs wait: the resources a
partition's nodes can give one task, and the pending reasons that mean a task can never start.

PERMANENT are the reasons a task keeps until an administrator changes the cluster or the grader asks
for something else, so the grader stops at once and names the option to change. Every other reason
is temporary and only reported while runs wait: Resources, Priority, Dependency, JobArrayTaskLimit
(--max-parallel), AssocMaxJobsLimit, QOSMaxJobsPerUserLimit and the other Max*/Grp* limits (the
user's other jobs end), ReqNodeNotAvail (nodes down or reserved come back), PartitionDown and
PartitionInactive (an administrator's pause).

A permanent reason stops the grading only after it has held CONFIRM_S: Slurm 22.05 shows a new array
as PartitionConfig for a moment before the precise reason (PartitionTimeLimit) of its next pass.
"""

from __future__ import annotations

from harness.errors import UsageError
from harness.organizer.slurm import script

CONFIRM_S = 10.0
PERMANENT = {
    "PartitionConfig": "no node of the partition can give one task the CPUs, memory or GPU asked for",
    "PartitionNodeLimit": "the task asks for more nodes than the partition allows",
    "PartitionTimeLimit": "the task's time limit (budget + predict budget + setup margin) exceeds the "
    "partition's MaxTime",
    "BadConstraints": "no node of the partition has the features --constraint asks for",
    "DependencyNeverSatisfied": "the array it waits for can no longer end as required",
    "InvalidAccount": "the account is not valid for this user or partition",
    "InvalidQOS": "the QOS is not valid for this user or partition",
}
WHAT_TO_CHANGE = {
    "PartitionConfig": "--cpus-per-task, --mem or --partition",
    "PartitionNodeLimit": "--partition",
    "PartitionTimeLimit": "--partition (or lower --budget)",
    "BadConstraints": "--constraint or --partition",
    "DependencyNeverSatisfied": "nothing: grade again to submit the runs anew",
    "InvalidAccount": "--account",
    "InvalidQOS": "--qos",
}


def permanent(reason: str) -> str | None:
    """The explanation when a pending reason means the task can never start; else None."""
    return PERMANENT.get(reason.split(",")[0].strip())


def fit(site: script.SiteOptions, nodes: list[tuple[int, int]], default_cpus: int, default_mem_mb: int) -> str | None:
    """Fit a default the partition's nodes cannot give down to its largest node, in place; refuse an
    explicit --cpus-per-task/--mem no node has. Returns what was changed, to say; None when nothing was
    (or the nodes are unknown)."""
    if not nodes:
        return None
    cpus = site.cpus_per_task or default_cpus
    mem_mb = script.size_mb(site.mem) if site.mem else default_mem_mb
    if any(c >= cpus and m >= mem_mb for c, m in nodes):
        return None
    where = f"partition {site.partition}" if site.partition else "the default partition"
    most_cpus, most_mem = max(c for c, _ in nodes), max(m for _, m in nodes)
    if site.cpus_per_task and site.cpus_per_task > most_cpus:
        raise UsageError(
            f"--cpus-per-task {site.cpus_per_task}: no node of {where} has more than {most_cpus} "
            "CPUs; lower --cpus-per-task or choose another --partition"
        )
    if site.mem and mem_mb > most_mem:
        raise UsageError(
            f"--mem {site.mem}: no node of {where} has more than {most_mem}M; lower --mem or choose another --partition"
        )
    # The node that gives the most of what was asked for: the largest that holds an explicit value.
    usable = [(c, m) for c, m in nodes if (not site.cpus_per_task or c >= cpus) and (not site.mem or m >= mem_mb)]
    if not usable:
        raise UsageError(
            f"--cpus-per-task {cpus} with --mem {site.mem or f'{mem_mb}M'}: no node of {where} "
            "has both; lower one of them or choose another --partition"
        )
    node_cpus, node_mem = max(usable, key=lambda n: (min(n[0], cpus) / cpus + min(n[1], mem_mb) / mem_mb, n))
    changed = []
    if not site.cpus_per_task and cpus > node_cpus:
        site.cpus_per_task = node_cpus
        changed.append(f"--cpus-per-task {node_cpus} (default {cpus})")
    if not site.mem and mem_mb > node_mem:
        site.mem = f"{node_mem}M"
        changed.append(f"--mem {node_mem}M (default {mem_mb}M)")
    return (
        f"the defaults do not fit any node of {where}: using {' and '.join(changed)}, its largest node; "
        "set --cpus-per-task/--mem to choose"
    )
