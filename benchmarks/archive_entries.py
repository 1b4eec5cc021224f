"""A queue of 2,000 archives against the same 2,000 entries as folders: what `grade --queue DIR`
does before its first run (list the queue, write the plan, check every entry and write its
entry.json), in a child process. Prints one JSON object per queue and pass.

    python benchmarks/archive_entries.py [--entries 500 2000] [--keep DIR]

Each entry is tests/submissions/centroid (three small files) under a name of its own; an archive is
a zip of it with its folder on top (`zip -r e00000.zip e00000/`). `first` plans a new grading: each
archive is unpacked twice, for its name and by its check, each time into a private folder removed
at once. `again` is the same command on the finished plan, as a resumed grading runs it: nothing new
to plan, every entry checked again. The child's CPU time (user + system, its own and its children's)
and peak RSS come from its getrusage, wall time from this process around it; `left_behind` counts
unpacked copies in the temporary folder and the grading directory afterwards (it must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "tests" / "submissions" / "centroid"
sys.path.insert(0, str(ROOT))


def write_queues(base: Path, entries: int) -> tuple[Path, Path]:
    """The same entries as folders (base/folders/eNNNNN) and as zips (base/zips/eNNNNN.zip)."""
    folders, zips = base / "folders", base / "zips"
    zips.mkdir(parents=True)
    for i in range(entries):
        name = f"e{i:05d}"
        folder = folders / name
        shutil.copytree(ENTRY, folder, ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "submission.yaml").write_text(f"name: {name}\ntrain: python train.py\npredict: python predict.py\n")
        with zipfile.ZipFile(zips / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, f"{name}/{path.name}")
    return folders, zips


def plan(queue: Path, out: Path) -> None:
    """The child: grade's steps before its first run, as harness.organizer.grade takes them."""
    from harness.console import Progress
    from harness.options import RunOptions
    from harness.organizer.grade import find_entries
    from harness.organizer.plan import Grading, make_plan

    options = RunOptions(runner="local", device="cpu", cache_dir=out.parent / "cache")
    planned = make_plan(out, options, find_entries([], queue), None)
    Grading(out, planned, options, Progress(quiet=True)).prepare()
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    print(
        json.dumps(
            {
                "cpu_s": round(sum(u.ru_utime + u.ru_stime for u in usage), 2),
                "peak_rss_mb": round(max(u.ru_maxrss for u in usage) / 1024, 1),  # KiB on Linux
            }
        )
    )


def measure(queue: Path, out: Path, temp: Path) -> dict:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--plan", str(queue), str(out)],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"planning {queue} failed: {proc.stderr[-2000:]}")
    left = len(list(temp.iterdir())) + len(list(out.glob("*/.unpack-*")))
    return {"wall_s": round(wall, 2), **json.loads(proc.stdout.splitlines()[-1]), "left_behind": left}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, nargs="+", default=[2000], help="queue sizes, each measured")
    ap.add_argument("--keep", type=Path, help="write the queues and gradings here and keep them")
    ap.add_argument("--plan", nargs=2, type=Path, metavar=("QUEUE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plan:
        plan(*args.plan)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for entries in args.entries:
            base = (args.keep or Path(tmp)) / f"queues-{entries}"
            folders, zips = write_queues(base, entries)
            ids = {}
            for queue in (folders, zips):
                out, temp = base / f"graded-{queue.name}", base / f"tmp-{queue.name}"
                temp.mkdir()
                for run in ("first", "again"):
                    line = {"benchmark": "archive_entries", "entries": entries, "queue": queue.name, "pass": run}
                    line.update(measure(queue, out, temp))
                    ids[queue.name] = [e["id"] for e in json.loads((out / "grading.json").read_text())["entries"]]
                    if queue is zips:
                        line["same_plan_as_folders"] = ids["zips"] == ids["folders"]
                    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
