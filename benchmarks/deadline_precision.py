"""Deadline precision under hostile entries (issue: an unforgeable verdict). Prints a Markdown table.

    python benchmarks/deadline_precision.py [--repeats N] [--runners local,docker] [--entries A,B,...]
                                            [--budget S] [--grace S] [--image IMAGE] [--json]

  --repeats N   graded runs per runner and entry (default 3)
  --runners     comma-separated, from local, docker and sandbox (default: local, and docker when an engine
                answers and the image is there)
  --entries     comma-separated entry names under tests/hostile/ (default: quiet-baseline, the control,
                and every storm: late-writer, event-burst, event-poison, log-burst, process-churn,
                fork-storm, disk-storm)
  --budget S    training budget in seconds (default 5); --grace S: SIGTERM this long before it (default 2)
  --image IMG   runtime image for the Docker runner (default $HAET_IMAGE or haet-runtime:cpu)
  --json        also print one JSON object per run (the raw numbers behind the table)

Every run is a real `python -m harness run` on a small synthetic set; entries, runs and data live in
a temporary directory. Each entry ignores SIGTERM in its main process, so the SIGKILL must stop it,
and its witnesses name checkpoint files alive-<who><seconds since HAET_DEADLINE> until they die
(tests/hostile/shared/kit.py, staged into each entry). Columns:

  SIGTERM late, SIGKILL late   a signal's at_s in result.json minus its due time (budget - grace,
                               budget), in ms: max and mean over the runs that recorded it
  last sign of life            the latest alive-* checkpoint name, in ms after HAET_DEADLINE by the
                               entry's own clock (max over runs; late_checkpoints count too)
  late listed                  runs whose result.json lists late checkpoints
  broken                       runs without a result.json (the harness crashed or hung) or whose
                               train phase did not end killed at the deadline
  survivors                    processes of the entry still alive after its run (local runner; the
                               benchmark kills them)

Target: every lateness and every last sign of life <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.synthetic import write_synthetic_npz  # noqa: E402
from tests.helpers import stage_hostile  # noqa: E402

HOSTILE = ROOT / "tests" / "hostile"
ENTRIES = [
    "quiet-baseline",
    "late-writer",
    "event-burst",
    "event-poison",
    "log-burst",
    "process-churn",
    "fork-storm",
    "disk-storm",
]
WITNESS = re.compile(r"^alive-([a-z]+)([+-]\d+\.\d+)$")


def docker_ready(image: str) -> str:
    """'' when the Docker runner can run here, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.images.get(image)
        client.close()
        return ""
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:100]}"


def _alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] not in ("Z", "X")


def survivors(pid_file: Path) -> int:
    """Processes the entry recorded that are still alive; each is killed (ours, checked by start time)."""
    count = 0
    lines = pid_file.read_text().splitlines() if pid_file.is_file() else []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit() and _alive(int(parts[0]), parts[1]):
            count += 1
            try:
                os.kill(int(parts[0]), signal.SIGKILL)
            except OSError:
                pass
    return count


def one_run(tmp: Path, runner: str, entry: str, index: int, args, data: Path) -> dict:
    run_id = f"{runner}-{entry}-{index}"
    submission = tmp / "entries" / run_id
    stage_hostile(entry, submission)
    pid_file = tmp / f"{run_id}.pids"
    (submission / "probe.json").write_text(json.dumps({"pids": str(pid_file), "scratch": str(tmp / "scratch")}))
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--submission",
        str(submission),
        "--runner",
        runner,
        "--device",
        "cpu",
        "--data",
        f"npz:{data}",
        "--train-per-class",
        "20",
        "--eval-per-class",
        "10",
        "--budget",
        str(args.budget),
        "--grace",
        str(args.grace),
        "--predict-budget",
        "30",
        "--runs-dir",
        str(tmp / "runs"),
        "--cache-dir",
        str(tmp / "cache"),
        "--run-id",
        run_id,
        "--quiet",
    ]
    if runner == "docker":
        command += ["--image", args.image]
    row = {"runner": runner, "entry": entry, "repeat": index}
    started = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.budget + 180)
        row["exit"] = proc.returncode
        row["error"] = (
            proc.stderr.strip().splitlines()[-1][:200] if proc.returncode not in (0, 3) and proc.stderr else ""
        )
    except subprocess.TimeoutExpired:
        row["exit"], row["error"] = None, "the harness did not finish"
    row["wall_s"] = round(time.monotonic() - started, 2)
    row["survivors"] = survivors(pid_file) if runner == "local" else 0
    result_file = tmp / "runs" / run_id / "result.json"
    if not result_file.is_file():
        row["broken"] = row.get("error") or "no result.json"
        return row
    train = json.loads(result_file.read_text())["train"]
    due = {"SIGTERM": args.budget - args.grace, "SIGKILL": args.budget}
    for s in train.get("signals", []):
        row[f"{s['name']}_late_ms"] = round((s["at_s"] - due[s["name"]]) * 1000, 1)
    late = [x if isinstance(x, str) else x.get("name", "") for x in train.get("late_checkpoints") or []]
    names = [c["name"] for c in train.get("checkpoints", [])] + late
    times = [float(m.group(2)) for m in map(WITNESS.match, names) if m]
    row["last_alive_ms"] = round(max(times) * 1000, 1) if times else None
    row["late_listed"] = bool(late)
    if train.get("outcome") != "killed_at_deadline":
        row["broken"] = f"train {train.get('outcome')}: {train.get('detail', '')[:120]}"
    return row


def _stats(values: list[float]) -> tuple[str, str]:
    if not values:
        return "—", "—"
    return f"{max(values):+.0f}", f"{statistics.fmean(values):+.0f}"


def table(rows: list[dict], runners: list[str], entries: list[str]) -> str:
    lines = [
        "| runner | entry | runs | SIGTERM late max (ms) | SIGTERM late mean (ms) | SIGKILL late max (ms) "
        "| SIGKILL late mean (ms) | last sign of life (ms) | late listed | broken | survivors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for runner in runners:
        for entry in entries:
            mine = [r for r in rows if r["runner"] == runner and r["entry"] == entry]
            if not mine:
                continue
            term = _stats([r["SIGTERM_late_ms"] for r in mine if "SIGTERM_late_ms" in r])
            kill = _stats([r["SIGKILL_late_ms"] for r in mine if "SIGKILL_late_ms" in r])
            alive = [r["last_alive_ms"] for r in mine if r.get("last_alive_ms") is not None]
            broken = [r for r in mine if r.get("broken")]
            lines.append(
                f"| {runner} | {entry} | {len(mine)} | {term[0]} | {term[1]} | {kill[0]} | {kill[1]} | "
                f"{f'{max(alive):+.0f}' if alive else '—'} | {sum(bool(r.get('late_listed')) for r in mine)} | "
                f"{len(broken)} | {sum(r.get('survivors', 0) for r in mine)} |"
            )
    notes = sorted({f"{r['runner']}/{r['entry']}: {r['broken']}" for r in rows if r.get("broken")})
    return "\n".join(lines + ([""] + [f"- broken: {n}" for n in notes] if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runners", help="comma-separated: local,docker (default: what is available)")
    parser.add_argument("--entries", default=",".join(ENTRIES))
    parser.add_argument("--budget", type=float, default=5.0)
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("--image", default=os.environ.get("HAET_IMAGE") or "haet-runtime:cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    entries = [e for e in args.entries.split(",") if e]
    for entry in entries:
        if not (HOSTILE / entry / "submission.yaml").is_file():
            parser.error(f"no entry tests/hostile/{entry}")
    if args.runners:
        runners = [r for r in args.runners.split(",") if r]
    else:
        why = docker_ready(args.image)
        runners = ["local"] + ([] if why else ["docker"])
        if why:
            print(f"docker runner skipped: {why}", file=sys.stderr)

    rows = []
    with tempfile.TemporaryDirectory(prefix="haet-deadline-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "scratch").mkdir()
        data = write_synthetic_npz(tmp / "data.npz", train_per_class=40, test_per_class=20)
        for index in range(1, args.repeats + 1):  # rounds, so drift of the machine hits every entry alike
            for runner in runners:
                for entry in entries:
                    row = one_run(tmp, runner, entry, index, args, data)
                    rows.append(row)
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        print(
                            f"  {runner:6} {entry:15} #{index}: SIGTERM {row.get('SIGTERM_late_ms', '—')} ms, "
                            f"SIGKILL {row.get('SIGKILL_late_ms', '—')} ms, alive {row.get('last_alive_ms', '—')} ms"
                            + (f", broken: {row['broken']}" if row.get("broken") else ""),
                            file=sys.stderr,
                            flush=True,
                        )
    print(
        f"deadline precision: budget {args.budget:g} s, grace {args.grace:g} s, {args.repeats} run(s) each; "
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}\n"
    )
    print(table(rows, runners, entries))


if __name__ == "__main__":
    main()
