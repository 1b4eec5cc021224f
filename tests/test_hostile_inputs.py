"""The harness survives any entry: bounded memory, disk, files and text from every byte it controls.

End to end with the local runner (the harness as a real process, its own peak memory measured
inside it as VmHWM): each hostile entry in tests/hostile/ ends with a clear status (or a
clear refusal, exit 2) and never a traceback; report.md, report.html and the console carry no
raw escape or control character. Then the same properties for the report and the leaderboard
fed directly, and for a couple of entries through the Docker runner.

Peak RSS (VmHWM) of the harness process measured on the 2-core CI machine (local runner,
synthetic data): honest baseline 100 MB; refused entries 49-59 MB; events-deep-nesting and
events-surrogates 100 MB; events-tiny-flood 108 MB; predictions-blank-lines 92 MB;
control-chars 93 MB. The bound asserted is MAX_HARNESS_RSS_MB. (Before the bounds, reading the
same 10 MiB of tiny events took 454 MiB and one 31 s poll, and a 16 MiB predictions.csv of
blank lines 1.2 GiB, as measured with tracemalloc.)
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from harness import text
from harness.contract import MAX_ENTRY_BYTES, MAX_ENTRY_FILES, ContractError, submission_digest
from tests.docker_support import harness_leftovers, small_runner
from tests.helpers import CENTROID, ROOT

HOSTILE = Path(__file__).parent / "hostile"
MAX_HARNESS_RSS_MB = 400
# The harness's main() in a process whose own peak RSS (VmHWM: this process's memory only, from
# its exec on; getrusage's ru_maxrss would also count the forking parent's) is written at the end.
MEASURED = textwrap.dedent("""
    import sys
    from harness.cli import main
    try:
        code = main(sys.argv[2:])
    finally:
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(sys.argv[1], "w") as f:
            f.write(peak)
    sys.exit(code)
""")
PEAKS: dict[str, float] = {}


class Graded:
    def __init__(self, proc: subprocess.CompletedProcess, runs: Path, peak_mb: float):
        self.proc, self.runs, self.peak_mb = proc, runs, peak_mb
        self.stderr = proc.stderr.decode("utf-8", "surrogateescape")
        dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
        self.run = dirs[0] if len(dirs) == 1 else None
        self.result = json.loads((self.run / "result.json").read_text()) if self.run else None


def grade(tmp_path: Path, entry: Path, data: str, *extra: str, timeout: float = 240) -> Graded:
    """`python -m harness run` on one entry, local runner; its own peak RSS (VmHWM, KiB)."""
    runs, peak = tmp_path / "runs", tmp_path / "peak-kib"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURED,
            str(peak),
            "run",
            "--submission",
            str(entry),
            "--runner",
            "local",
            "--device",
            "cpu",
            "--data",
            data,
            "--train-per-class",
            "20",
            "--eval-per-class",
            "10",
            "--budget",
            "20",
            "--grace",
            "2",
            "--predict-budget",
            "20",
            "--runs-dir",
            str(runs),
            "--cache-dir",
            str(tmp_path / "cache"),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
    )
    peak_mb = int(peak.read_text()) / 1024 if peak.is_file() else float("nan")
    PEAKS[entry.name] = peak_mb
    print(f"{entry.name}: harness peak RSS {peak_mb:.0f} MB, exit {proc.returncode}")
    graded = Graded(proc, runs, peak_mb)
    assert "Traceback" not in graded.stderr, graded.stderr[-3000:]
    assert peak_mb < MAX_HARNESS_RSS_MB, f"the harness grew to {peak_mb:.0f} MB"
    assert_clean_console(proc.stderr)
    assert_clean_console(proc.stdout)
    return graded


def assert_clean_console(raw: bytes) -> None:
    """What the operator's terminal gets: no escape, BEL, backspace, CR, bidi override, ..."""
    for byte in (b"\x1b", b"\x07", b"\x08", b"\r", b"\x9b", "\u202e".encode()):
        assert byte not in raw, (byte, raw[-2000:])
    for line in raw.decode("utf-8").split("\n"):
        assert text.is_printable(line), repr(line)


def assert_clean_file(path: Path) -> None:
    content = path.read_bytes().decode("utf-8")  # valid UTF-8: no lone surrogate made it through
    for line in content.split("\n"):
        assert text.is_printable(line), (path.name, repr(line[:300]))


def assert_clean_reports(run: Path) -> None:
    for name in ("report.md", "report.html"):
        assert_clean_file(run / name)
    assert "could not be rendered" not in (run / "report.html").read_text()


def copy_entry(name: str, tmp_path: Path) -> Path:
    entry = tmp_path / "entries" / name
    shutil.copytree(HOSTILE / name, entry)
    return entry


# --- end to end, local runner --------------------------------------------------------------------


def test_baseline_honest_entry(tmp_path, synthetic_npz):
    """For comparison: the peak of the harness on an honest entry."""
    graded = grade(tmp_path, CENTROID, synthetic_npz)
    assert graded.proc.returncode == 0 and graded.result["status"] == "scored"
    assert_clean_reports(graded.run)


def test_yaml_alias_bomb_is_refused_before_expansion(tmp_path, synthetic_npz):
    start = time.monotonic()
    graded = grade(tmp_path, HOSTILE / "yaml-alias-bomb", synthetic_npz)
    assert graded.proc.returncode == 2 and graded.run is None
    assert "anchors (&name) are not allowed" in graded.stderr and "write each value out in full" in graded.stderr
    assert len(graded.stderr) < 2000 and time.monotonic() - start < 60


@pytest.mark.parametrize("trick", ["sparse-3GiB", "symlink-out", "symlink-nowhere", "too-many-files"])
def test_big_or_escaping_entry_folder_is_refused_unread(tmp_path, synthetic_npz, trick):
    entry = copy_entry("big-file", tmp_path)
    if trick == "sparse-3GiB":
        with open(entry / "weights.bin", "wb") as f:
            f.truncate(3 * 2**30)  # sparse: costs no disk; a harness that reads it whole costs 3 GiB
        message = f"more than {MAX_ENTRY_BYTES // 2**20} MiB"
    elif trick == "symlink-out":
        (entry / "data").mkdir()
        os.symlink("/etc/passwd", entry / "data" / "passwd")
        message = "is a symlink that points out of the entry"
    elif trick == "symlink-nowhere":
        os.symlink(tmp_path / "gone", entry / "model.bin")
        message = "is a symlink that points nowhere"
    else:
        (entry / "many").mkdir()
        for i in range(MAX_ENTRY_FILES + 1):
            (entry / "many" / f"{i}").touch()
        message = f"more than {MAX_ENTRY_FILES} files and folders"
    start = time.monotonic()
    with pytest.raises(ContractError, match=message):
        submission_digest(entry)
    assert time.monotonic() - start < 10
    graded = grade(tmp_path, entry, synthetic_npz)
    assert graded.proc.returncode == 2 and graded.run is None, graded.stderr
    assert message in graded.stderr


def test_digest_is_unchanged_for_a_normal_entry_with_links_inside(tmp_path):
    entry = copy_entry("big-file", tmp_path)
    os.symlink("train.py", entry / "alias.py")  # inside the entry: allowed, hashed as that file
    (entry / "__pycache__").mkdir()
    (entry / "__pycache__" / "x.pyc").write_bytes(b"skipped")
    import hashlib

    expected = hashlib.sha256()
    for name in ("alias.py", "predict.py", "submission.yaml", "train.py"):
        expected.update(name.encode() + b"\0" + hashlib.sha256((entry / name).read_bytes()).digest())
    assert submission_digest(entry) == expected.hexdigest()


def test_events_nested_deep_are_skipped_and_noted(tmp_path, synthetic_npz):
    graded = grade(tmp_path, HOSTILE / "events-deep-nesting", synthetic_npz)
    assert graded.proc.returncode == 0 and graded.result["status"] == "scored", graded.stderr[-2000:]
    kept = [json.loads(line) for line in (graded.run / "events.jsonl").read_text().splitlines()]
    assert [e.get("event") for e in kept] == [None, "shallow", "epoch", "epoch", "epoch"]
    assert "nested deeper than 32" in graded.result["train"]["detail"]
    assert_clean_reports(graded.run)


def test_events_with_lone_surrogates_and_odd_file_names(tmp_path, synthetic_npz):
    graded = grade(tmp_path, HOSTILE / "events-surrogates", synthetic_npz)
    assert graded.proc.returncode == 0 and graded.result["status"] == "scored", graded.stderr[-2000:]
    lines = (graded.run / "events.jsonl").read_bytes().decode("utf-8").splitlines()
    kept = [json.loads(line) for line in lines]
    assert len(kept) == 4 and "\ufffdloss" in kept[0] and kept[1]["note"] == "x\ufffdy"
    assert kept[2]["event"] == "\U0001f600 pair", "a valid surrogate pair is kept as the character"
    names = [c["name"] for c in graded.result["train"]["checkpoints"]]
    assert "ckpt-\\udcff\\udcfe.bin" in names and "model.npy" in names
    assert all(text.is_printable(n) for n in names)
    assert_clean_reports(graded.run)


def test_tiny_event_flood_keeps_memory_bounded(tmp_path, synthetic_npz):
    graded = grade(tmp_path, HOSTILE / "events-tiny-flood", synthetic_npz)
    assert graded.proc.returncode == 0 and graded.result["status"] == "scored", graded.stderr[-2000:]
    lines = (graded.run / "events.jsonl").read_text().splitlines()
    assert len(lines) == 20_000
    detail = graded.result["train"]["detail"]
    assert "more than 20000 events; later ones dropped" in detail and "passed 10 MiB" in detail
    assert_clean_reports(graded.run)


def test_predictions_of_blank_lines_are_refused_by_size(tmp_path, synthetic_npz):
    graded = grade(tmp_path, HOSTILE / "predictions-blank-lines", synthetic_npz)
    assert graded.proc.returncode == 3, graded.stderr[-2000:]
    assert graded.result["status"] == "invalid_predictions"
    assert "byte limit for 100 predictions" in graded.result["reason"]
    assert_clean_reports(graded.run)


def test_control_characters_never_reach_the_console_or_the_report(tmp_path, synthetic_npz):
    graded = grade(tmp_path, HOSTILE / "control-chars", synthetic_npz)
    assert graded.proc.returncode == 3, graded.stderr[-2000:]
    result = graded.result
    assert result["status"] == "invalid_predictions"
    assert "'0,\\x1b[31m1\\x1b]0;title\\x07' are not two integers" in result["reason"]
    assert "train: python train.py '\\x1b]0;pwned' by an 'entry\\x07'" in graded.stderr, "the command, escaped"
    assert "\\x1b[31m1" in graded.stderr, "the reason in the summary, escaped"
    assert all(text.is_printable(line) for line in result["train"]["log_tail"] + result["predict"]["log_tail"])
    assert "\\x1b]0;pwned-title\\x07 title set" in result["train"]["log_tail"]
    assert b"\x1b]0;pwned-title\x07" in (graded.run / "train.log").read_bytes(), "the log file is the raw record"
    assert_clean_reports(graded.run)
    md = (graded.run / "report.md").read_text()
    assert "Last lines of predict.log" in md and "\\x1b[1;31mERROR\\x1b[0m" in md
    page = (graded.run / "report.html").read_text()
    assert "harmless text\\x0drm -rf / # overwritten by CR" in page and "\\u202egnp.exe" in page


# --- the report and the leaderboard, fed directly --------------------------------------------------

EVIL = "\x1b[2J\x1b]0;pwned\x07<script>x</script>|`*_[a](b)\r\u202e\ud800\udcff\x00"


def hostile_result():
    from tests.test_report import make_result

    result = make_result(scored=False, gpu=False)
    result.status = result.status.INVALID_PREDICTIONS
    result.reason = f"predictions.csv line 2: {EVIL}"
    result.submission.name = EVIL
    result.submission.train = f"python train.py {EVIL}"
    result.submission.path = f"/entries/{EVIL}"
    result.train.detail = EVIL
    result.train.log_tail = [EVIL * 200, "\udcff\udcfe bytes", "x" * 5000]
    result.predict.log_tail = [EVIL] * 40
    result.predict.outcome = result.predict.outcome.COMPLETED
    result.train.checkpoints = [{"name": f"{EVIL}-{i}", "bytes": i, "sha256": EVIL} for i in range(500)]
    result.monitor.warnings = [EVIL]
    result.warnings = [EVIL, "ckpt-\udcff"]
    return result


def test_report_never_crashes_and_stays_clean_and_bounded(tmp_path):
    from harness.report import MAX_CHECKPOINT_ROWS, summary_table, write_report

    result = hostile_result()
    events = [{"event": EVIL, EVIL: 1.0, f"k{i}": float(i), "note": EVIL, "t_s": 1.0 + i} for i in range(200)]
    events += [
        {"event": "past", "loss": 1.0, "t_s": -1e308},
        {"event": "epoch", "loss": 1e308, "t_s": 2.0},
        {"event": "future", "loss": 1.0, "t_s": 1e9},
    ]  # a plot of these would have no finite range
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    write_report(tmp_path, result)
    assert_clean_reports(tmp_path)
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    outside_fences = re.sub(r"(`{3,})text\n.*?\n\1\n", "", md, flags=re.S)  # logs are fenced: shown literally
    assert "<script>" not in outside_fences and "<script>" not in page
    assert f"and {500 - MAX_CHECKPOINT_ROWS} more file(s)" in md and f"and {500 - MAX_CHECKPOINT_ROWS} more" in page
    assert md.count("-499") == 0 and md.count(f"-{MAX_CHECKPOINT_ROWS - 1}") >= 1
    assert "x" * 400 not in md and "x" * 400 not in page, "log lines are cut"
    assert len(page) < 2_000_000 and len(md) < 200_000
    assert "more numeric field(s) not shown" in md and "3 event time(s) or value(s) far out of range" in md
    assert_clean_console(summary_table(result).encode("utf-8"))


def test_series_report_survives_a_repeat_of_the_wrong_shape(tmp_path):
    from harness.report import write_series_report
    from tests.test_report import make_series

    series = make_series(tmp_path)
    series.repeats[1].train.seconds = None  # as if read back from a damaged result.json
    series.repeats[2].submission.name = EVIL
    write_series_report(tmp_path, series)
    assert "could not be shown: TypeError" in (tmp_path / "report.md").read_text()
    assert_clean_reports(tmp_path)


def test_leaderboard_survives_results_of_any_shape(tmp_path):
    from harness.files import atomic_write_json
    from harness.organizer import leaderboard

    shapes = [
        {"status": "scored", "accuracy": "high", "data": [], "train": "x", "monitor": {"gpus": "many"}},
        {
            "status": "scored",
            "accuracy": 0.5,
            "correct": "many",
            "total": {},
            "train": {"seconds": "long"},
            "submission": [],
            "started_at": {"t": 1},
        },
        {"status": 12, "reason": EVIL, "accuracy": float("inf")},
        {"status": "failed", "reason": ["not", "a", "string"], "monitor": {"gpus": [{"energy_j": "lots"}, 3]}},
    ]
    entries = []
    for i, shape in enumerate(shapes):
        name = f"entry-{i}"
        entries.append({"id": name, "path": f"/entries/{EVIL}"})
        atomic_write_json(tmp_path / name / "entry.json", {"id": name, "invalid": None})
        atomic_write_json(tmp_path / name / "seed-0" / "result.json", shape)
        (tmp_path / name / "seed-0" / "events.jsonl").write_bytes(b"[" * 100_000 + b'\n{"epoch": 1, "t_s": 2}\n')
    entries.append({"no": "id"})
    atomic_write_json(
        tmp_path / "grading.json",
        {
            "seeds": [0],
            "entries": entries,
            "options": {
                "data": "x",
                "budget": 1.0,
                "train_per_class": 1,
                "eval_per_class": 1,
                "runner": "local",
                "device": "cpu",
            },
        },
    )
    board = leaderboard.write_leaderboard(tmp_path)
    assert len(board.rows) == 4 and any("without an id" in w for w in board.warnings)
    for name in ("leaderboard.md", "leaderboard.html"):
        assert_clean_file(tmp_path / name)
    (tmp_path / "runs.csv").read_bytes().decode("utf-8")
    assert_clean_console(leaderboard.console_table(board).encode("utf-8"))


# --- the Docker runner ---------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("name", ["control-chars", "events-deep-nesting"])
def test_docker_runner_keeps_the_console_and_report_clean(name, tmp_path, synthetic_npz, docker_client, runtime_image):
    from harness.console import Progress
    from harness.options import RunOptions
    from harness.run import graded_run

    run_id = f"{name}-{uuid.uuid4().hex[:6]}"
    console = io.StringIO()
    options = RunOptions(
        submission=HOSTILE / name,
        data=synthetic_npz,
        budget_s=20.0,
        grace_s=2.0,
        predict_budget_s=20.0,
        device="cpu",
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        train_per_class=20,
        eval_per_class=10,
        run_id=run_id,
    )
    result = graded_run(options, small_runner(runtime_image), Progress(console))
    run = tmp_path / "runs" / run_id
    assert (run / "result.json").is_file() and harness_leftovers(docker_client, run_id) == []
    assert_clean_console(console.getvalue().encode("utf-8"))
    assert_clean_reports(run)
    if name == "control-chars":
        assert result.status.value == "invalid_predictions" and "\\x1b[31m1" in result.reason
    else:
        assert result.status.value == "scored" and "nested deeper than 32" in result.train.detail
