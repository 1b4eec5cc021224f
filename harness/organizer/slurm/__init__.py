"""`grade --backend slurm`: the graded runs of a plan as `sbatch` job arrays on a Slurm cluster.

Each array task runs exactly the `python -m harness run ...` that a local `grade` runs (the plan's
`Grading.command`, harness.organizer.plan); results land under OUT on a filesystem shared with the
nodes, and the resume rule is the local one: a run with a final result.json is never run again.

    script.py   the batch script of one array: #SBATCH lines (resources, time, throttle, site
                options), one `case` arm per task, and the task's start/end marker files
    client.py   sbatch / squeue / scontrol / sacct / scancel through subprocess, parsable output
    state.py    OUT/slurm.json (arrays, job ids, per-run attempts and Slurm states) and the markers
    limits.py   what the site allows: defaults fitted to the partition's nodes, pending reasons
                that mean a task never starts
    backend.py  submit in waves under the job limits, watch, collect, requeue platform failures, detach

Why plain commands through subprocess: they work with any Slurm version the site runs, need
nothing installed on the client beyond slurm-client, and pickle nothing (a node only needs the
harness, not our Python objects). pyslurm must match the cluster's Slurm version exactly (Debian
ships 22.05); submitit pickles a Python callable per task, so a task would no longer be the same
`python -m harness run` command line that a local grade runs.
"""
