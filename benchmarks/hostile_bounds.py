"""The harness's own footprint on hostile entries: its peak memory and the bytes it writes.

    python benchmarks/hostile_bounds.py [--runner docker|local|both] [--only NAME ...] [--budget S]

Grades every entry in tests/hostile/ (under Docker: all of them; under the local runner only
those that are safe to run on this host, see LOCAL_SAFE) as `python -m harness run` in a child
process, on a small synthetic dataset. It samples the resident memory of that harness process
alone (not the entry's processes) every 20 ms, and measures the run directory afterwards:
apparent bytes, allocated bytes and file count. Prints one Markdown table, the largest of each
column last, against the stated ceilings (docs/benchmarks.md, docs/security.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.synthetic import write_synthetic_npz  # noqa: E402
from tests.helpers import stage_hostile  # noqa: E402

HOSTILE = ROOT / "tests" / "hostile"
RSS_CEILING = 400 * 2**20  # the harness's own peak RSS, beside the small data set it loads
RUN_BYTES_CEILING = 64 * 2**20  # allocated bytes a run may leave in its run directory (logs capped at 50 MiB)
# Entries that do no harm to the host when run unsandboxed (no writes outside, no memory hog, no disk fill).
LOCAL_SAFE = {
    "bad-predictions",
    "event-burst",
    "event-poison",
    "events-flood",
    "ignore-sigterm",
    "late-writer",
    "log-burst",
    "log-flood",
    "process-churn",
    "quiet-baseline",
    "replay-sampler",
    "seed-oracle",
    "sleep-forever",
    "control-chars",
    "events-deep-nesting",
    "events-surrogates",
    "events-tiny-flood",
    "predictions-blank-lines",
    "yaml-alias-bomb",
}
SMALL_DOCKER = {
    "HAET_DOCKER_MEMORY": "256m",
    "HAET_DOCKER_CPUS": "1",
    "HAET_DOCKER_PIDS_LIMIT": "256",
    "HAET_DOCKER_CHECKPOINT_LIMIT": "64m",
    "HAET_DOCKER_OUTPUT_LIMIT": "8m",
    "HAET_DOCKER_EVENTS_LIMIT": "16m",
    "HAET_DOCKER_SHM_SIZE": "64m",
    "HAET_DOCKER_TMP_SIZE": "64m",
    "HAET_DOCKER_BUILD_TIMEOUT_S": "20",
}


def peak_rss(process: subprocess.Popen) -> int:
    """Poll one process's RSS until it exits; its children are the entry's, not the harness's."""
    peak = 0
    try:
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            peak = max(peak, watched.memory_info().rss)
            time.sleep(0.02)
    except psutil.Error:
        pass
    return peak


def footprint(directory: Path) -> tuple[int, int, int]:
    apparent = allocated = files = 0
    for dirpath, _, names in os.walk(directory):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            apparent += st.st_size
            allocated += st.st_blocks * 512
            files += 1
    return apparent, allocated, files


def grade(entry: Path, runner: str, data: str, work: Path, budget: float) -> dict:
    staged = work / "entries" / entry.name
    entry = staged if staged.exists() else stage_hostile(entry.name, staged)
    runs = work / f"runs-{runner}"
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--submission",
        str(entry),
        "--runner",
        runner,
        "--device",
        "cpu",
        "--data",
        data,
        "--budget",
        str(budget),
        "--grace",
        str(budget / 3),
        "--predict-budget",
        "20",
        "--train-per-class",
        "20",
        "--eval-per-class",
        "10",
        "--runs-dir",
        str(runs),
        "--cache-dir",
        str(work / "cache"),
        "--run-id",
        entry.name,
        "--quiet",
    ]
    if runner == "docker":
        command += ["--image", "haet-runtime:cpu"]
    t0 = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **SMALL_DOCKER}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    rss = {}
    sampler = threading.Thread(target=lambda: rss.setdefault("peak", peak_rss(process)))
    sampler.start()
    _, err = process.communicate(timeout=600)
    sampler.join()
    apparent, allocated, files = footprint(runs / entry.name) if (runs / entry.name).is_dir() else (0, 0, 0)
    return {
        "entry": entry.name,
        "runner": runner,
        "exit": process.returncode,
        "seconds": time.monotonic() - t0,
        "rss": rss.get("peak", 0),
        "apparent": apparent,
        "allocated": allocated,
        "files": files,
        "result": (runs / entry.name / "result.json").is_file(),
        "stderr": err.decode(errors="replace")[-200:],
    }


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=["docker", "local", "both"], default="both")
    parser.add_argument("--only", nargs="*", help="entry names (default: every entry in tests/hostile)")
    parser.add_argument("--budget", type=float, default=6.0, help="training seconds per run (default: 6)")
    args = parser.parse_args()
    entries = sorted(p for p in HOSTILE.iterdir() if (p / "submission.yaml").is_file())
    if args.only:
        entries = [p for p in entries if p.name in args.only]
    runners = ["local", "docker"] if args.runner == "both" else [args.runner]
    rows = []
    with tempfile.TemporaryDirectory(prefix="haet-bounds-") as tmp:
        work = Path(tmp)
        data = f"npz:{write_synthetic_npz(work / 'synthetic.npz', train_per_class=60, test_per_class=20)}"
        for runner in runners:
            for entry in entries:
                if runner == "local" and entry.name not in LOCAL_SAFE:
                    continue
                row = grade(entry, runner, data, work, args.budget)
                rows.append(row)
                print(
                    f"{runner:6} {entry.name:24} exit {row['exit']:3}  rss {mib(row['rss']):>6} MiB  "
                    f"written {mib(row['allocated']):>6} MiB in {row['files']} files",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        "| runner | entry | exit | result.json | harness peak RSS (MiB) | run dir apparent (MiB) "
        "| run dir allocated (MiB) | files |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['runner']} | {r['entry']} | {r['exit']} | {'yes' if r['result'] else 'no'} | {mib(r['rss'])} "
            f"| {mib(r['apparent'])} | {mib(r['allocated'])} | {r['files']} |"
        )
    worst_rss = max(rows, key=lambda r: r["rss"])
    worst_disk = max(rows, key=lambda r: r["allocated"])
    print(
        f"\nlargest harness RSS: {mib(worst_rss['rss'])} MiB ({worst_rss['runner']}, {worst_rss['entry']}); "
        f"ceiling {mib(RSS_CEILING)} MiB"
    )
    print(
        f"largest run directory: {mib(worst_disk['allocated'])} MiB allocated ({worst_disk['runner']}, "
        f"{worst_disk['entry']}); ceiling {mib(RUN_BYTES_CEILING)} MiB"
    )
    refused = [f"{r['runner']}/{r['entry']}" for r in rows if not r["result"] and r["exit"] == 2]
    missing = [f"{r['runner']}/{r['entry']}" for r in rows if not r["result"] and r["exit"] != 2]
    if refused:
        print("refused before any run directory, exit 2 (bad input, by design): " + ", ".join(refused))
    if missing:
        print("runs without result.json (the harness failed): " + ", ".join(missing))
    over = worst_rss["rss"] > RSS_CEILING or worst_disk["allocated"] > RUN_BYTES_CEILING or missing
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
