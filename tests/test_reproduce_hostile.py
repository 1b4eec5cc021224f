"""`run --reproduce` on a run directory someone handed over: it is untrusted input.

One real run (local runner, synthetic data) is made once; each test copies its directory and edits
result.json the way an attacker would, then reproduces it as an organizer would. A reproduction
never gets less isolation than the command's defaults unless the organizer names the flag; the
options given on the command line win over the record; result.json is read with a bound, never
through a symlink; the entry folder, data sources and image the record names are checked before
anything runs; and the new result keeps what was asked next to what ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import text
from harness.report.read import MAX_RESULT_BYTES
from harness.runners.sandbox import find_bwrap, probe
from harness.synthetic import write_synthetic_npz
from tests.helpers import CENTROID, NO_ENGINE, ROOT, copy_entry, read_json, run_harness
from tests.test_hostile_inputs import MEASURED  # main() in a process that writes its own peak RSS

needs_bwrap = pytest.mark.skipif(probe(find_bwrap()) is not None, reason="the sandbox cannot run here")
MAX_REFUSAL_RSS_MB = 150  # the harness refusing a 200 MB result.json: its imports, not the file


def harness(*args, env: dict | None = None, engine: bool = False) -> subprocess.CompletedProcess:
    """The harness in a child process where no Docker engine answers (`auto` then means the sandbox
    where bwrap works), or with `engine`, this process's."""
    no_engine = {} if engine else {"DOCKER_HOST": NO_ENGINE}
    return run_harness(*args, env={**no_engine, **(env or {})})


def synthetic_source(path: Path, seed: int) -> str:
    """An npz source of synthetic images, 60 training and 40 test images per class."""
    return f"npz:{write_synthetic_npz(path, 60, 40, seed=seed, noise=500.0)}"


def real_run(tmp: Path, run_id: str, *options) -> Path:
    """A real run, as a participant makes it: a copy of the centroid entry, the local runner, public
    synthetic data, 20 training and 10 held-out images per class, `options`. Its run directory."""
    entry = copy_entry(CENTROID, tmp / "entry")
    proc = harness(
        *("run", "--submission", entry, "--data", synthetic_source(tmp / "public.npz", seed=0)),
        *("--runner", "local", "--device", "cpu", "--train-per-class", "20", "--eval-per-class", "10"),
        *("--runs-dir", tmp / "runs", "--run-id", run_id, "--cache-dir", tmp / "cache", *options),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "runs" / run_id


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A real run with seed 3."""
    tmp = tmp_path_factory.mktemp("original")
    return real_run(tmp, "original", "--budget", "3", "--grace", "1", "--predict-budget", "30", "--seed", "3")


def edit(run_dir: Path, change) -> Path:
    """`run_dir` with its result.json changed by `change` (called with the parsed result)."""
    result = read_json(run_dir / "result.json")
    change(result)
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir


def handed(tmp_path: Path, original: Path, **options) -> Path:
    """A copy of the original run directory whose recorded options are edited as an attacker would."""
    copy = tmp_path / "handed" / "original"
    shutil.copytree(original, copy)

    def recorded(result: dict) -> None:
        for run in result["repeats"] if result["kind"] == "series" else [result]:
            run["options"].update(options)

    return edit(copy, recorded)


def reproduce(tmp_path: Path, run_dir: Path, *flags, env: dict | None = None, engine: bool = False):
    """`run --reproduce RUN_DIR FLAGS` into tmp_path/new/again (its result: reproduced)."""
    return harness(
        *("run", "--reproduce", run_dir, "--runs-dir", tmp_path / "new", "--run-id", "again"),
        *("--cache-dir", tmp_path / "cache", *flags),
        env=env,
        engine=engine,
    )


def reproduced(tmp_path: Path) -> dict:
    """The result of reproduce()'s run."""
    return read_json(tmp_path / "new" / "again" / "result.json")


def refused(proc: subprocess.CompletedProcess, tmp_path: Path, *said: str) -> str:
    """Exit 2, one message naming each of `said`, and nothing run or written."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for words in said:
        assert words in errors[0], errors[0]
    assert not (tmp_path / "new").exists(), "nothing may be run or written for a refused record"
    return errors[0]


# --- isolation --------------------------------------------------------------------------------------


def test_a_record_asking_for_the_local_runner_is_refused_naming_the_flag(tmp_path, original):
    """The original ran locally: reproducing it must not put the entry on this host unasked."""
    assert read_json(original / "result.json")["options"]["runner"] == "local"
    proc = reproduce(tmp_path, handed(tmp_path, original))
    refused(proc, tmp_path, "less isolation", "the local runner", "--runner local")


def test_a_networked_build_and_another_image_are_refused_in_one_message(tmp_path, original):
    run_dir = handed(tmp_path, original, runner="docker", build_network=True, image="evil.example.com/snoop:latest")
    message = refused(
        reproduce(tmp_path, run_dir),
        tmp_path,
        "--build-network",
        "--no-build-network",
        "--image evil.example.com/snoop:latest",
        "haet-runtime:cpu",
    )
    assert "runner" not in message, "docker is not less isolated than any default"


def test_a_recorded_sandbox_is_refused_where_docker_answers(tmp_path, original):
    """`auto` would pick docker here: the sandbox (the host's runtime read-only, maybe no cgroup) is less."""
    from harness.runners import docker_answers

    if not docker_answers():
        pytest.skip("no Docker engine answers here")
    proc = reproduce(tmp_path, handed(tmp_path, original, runner="sandbox"), engine=True)
    refused(proc, tmp_path, "the sandbox runner", "--runner sandbox")


@pytest.mark.parametrize("image", ["haet-runtime:cpu; rm -rf /", "UPPER/case", "a" * 300, "-flag"])
def test_an_image_that_is_not_a_docker_reference_is_refused(tmp_path, original, image):
    refused(
        reproduce(tmp_path, handed(tmp_path, original, runner="docker", image=image)),
        tmp_path,
        "not a Docker image reference",
        "--image NAME",
    )


@needs_bwrap
def test_the_command_lines_runner_wins_and_the_result_says_what_was_asked_and_what_ran(tmp_path, original):
    proc = reproduce(tmp_path, handed(tmp_path, original), "--runner", "sandbox", "--budget", "2.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "from the command line: budget, runner" in proc.stdout + proc.stderr
    result = reproduced(tmp_path)
    assert result["environment"]["runner"] == "sandbox" and result["environment"]["isolated"] is True
    assert result["options"]["runner"] == "sandbox" and result["options"]["budget"] == 2.5
    assert result["train"]["budget_s"] == 2.5
    asked = result["reproduces"]
    assert asked["asked"]["runner"] == "local" and asked["asked"]["budget"] == 3
    assert asked["overridden"] == ["budget", "runner"]
    assert "runner: local -> sandbox" in asked["differences"] and "isolated: False -> True" in asked["differences"]
    report = (tmp_path / "new" / "again" / "report.md").read_text()
    assert text.md("runner: local -> sandbox (set on the command line)") in report


def test_an_explicit_local_runner_is_allowed_and_recorded_as_asked(tmp_path, original):
    proc = reproduce(tmp_path, handed(tmp_path, original), "--runner", "local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = reproduced(tmp_path)
    assert result["environment"]["runner"] == "local" and result["environment"]["isolated"] is False
    assert result["reproduces"]["asked"]["runner"] == "local" and result["reproduces"]["overridden"] == ["runner"]
    assert result["seed"] == 3 and result["options"]["budget"] == 3, "the rest comes from the record"
    assert result["data"]["data_sha256"] == read_json(original / "result.json")["data"]["data_sha256"]


@pytest.mark.docker
def test_a_record_asking_for_auto_reproduces_in_docker_where_an_engine_answers(tmp_path, original, runtime_image):
    """A record may ask for what the command gets by default: here, a container of the default image."""
    proc = reproduce(tmp_path, handed(tmp_path, original, runner="auto"), engine=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = reproduced(tmp_path)
    env = result["environment"]
    assert env["runner"] == "docker" and env["isolated"] is True and env["image"].startswith(runtime_image)
    assert result["reproduces"]["asked"]["runner"] == "auto" and result["reproduces"]["overridden"] == []
    assert "runner: local -> docker" in result["reproduces"]["differences"]


def test_without_any_isolated_runner_a_reproduction_refuses_rather_than_run_locally(tmp_path, original):
    """The record says `auto`; with no engine and no bwrap, `run` would fall back to the host: not here."""
    no_bwrap = tmp_path / "bin"
    no_bwrap.mkdir()
    proc = reproduce(tmp_path, handed(tmp_path, original, runner="auto"), env={"PATH": str(no_bwrap)})
    refused(proc, tmp_path, "no isolated runner", "--runner local")


# --- result.json itself -----------------------------------------------------------------------------


def test_a_huge_result_json_is_refused_quickly_with_bounded_memory(tmp_path, original):
    run_dir = handed(tmp_path, original)
    with open(run_dir / "result.json", "r+b") as f:  # a 200 MB file: mostly a hole, one long string
        f.seek(0, os.SEEK_END)
        f.truncate(200 * 2**20)
    assert (run_dir / "result.json").stat().st_size > MAX_RESULT_BYTES
    peak = tmp_path / "peak-kib"
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURED,
            str(peak),
            "run",
            "--reproduce",
            str(run_dir),
            "--runs-dir",
            str(tmp_path / "new"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DOCKER_HOST": NO_ENGINE},
    )
    refused(proc, tmp_path, "over 16 MiB")
    assert time.monotonic() - started < 30
    assert int(peak.read_text()) / 1024 < MAX_REFUSAL_RSS_MB, f"peak RSS {int(peak.read_text()) / 1024:.0f} MB"


def test_a_result_json_that_is_a_symlink_to_a_host_file_is_refused(tmp_path, original):
    run_dir = handed(tmp_path, original, runner="docker")
    elsewhere = tmp_path / "host-file.json"  # a file of this host that happens to parse as a result
    (run_dir / "result.json").rename(elsewhere)
    (run_dir / "result.json").symlink_to(elsewhere)
    refused(reproduce(tmp_path, run_dir), tmp_path, "symlink")


def test_a_result_json_that_is_a_fifo_is_refused_without_blocking(tmp_path, original):
    run_dir = handed(tmp_path, original, runner="docker")
    (run_dir / "result.json").unlink()
    os.mkfifo(run_dir / "result.json")  # opening it to read would wait for a writer that never comes
    refused(reproduce(tmp_path, run_dir), tmp_path, "not a regular file")


@pytest.mark.parametrize("budget", [float("inf"), "600", [600], True])
def test_a_recorded_option_of_the_wrong_type_is_refused_naming_its_flag(tmp_path, original, budget):
    refused(
        reproduce(tmp_path, handed(tmp_path, original, runner="docker", budget=budget)),
        tmp_path,
        "records budget",
        "pass --budget yourself",
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(seed="3"),
        lambda r: r.update(run_id=["x"]),
        lambda r: r["environment"].update(gpu_details=[1]),
        lambda r: r["submission"].update(path="/" + "a" * 5000),
        lambda r: r["data"].update(data_sha256=None),
    ],
    ids=["seed-text", "run-id-list", "gpu-details-not-dicts", "path-5000-chars", "no-data-hash"],
)
def test_a_run_of_another_shape_is_refused_before_anything_runs(tmp_path, original, change):
    refused(
        reproduce(tmp_path, edit(handed(tmp_path, original, runner="docker"), change)),
        tmp_path,
        "name a run directory the harness wrote",
    )


# --- what the record names: the entry, the data ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["not-an-entry", "dotdot", "relative", "symlink"])
def test_an_entry_folder_the_record_names_must_be_an_entry_at_a_plain_path(tmp_path, original, kind):
    entry = Path(read_json(original / "result.json")["submission"]["path"])
    (tmp_path / "link").symlink_to(entry)
    path = {
        "not-an-entry": str(tmp_path),
        "dotdot": f"{entry}/../{entry.name}",
        "relative": os.path.relpath(entry, ROOT),
        "symlink": str(tmp_path / "link"),
    }[kind]
    assert kind == "not-an-entry" or Path(ROOT, path).resolve() == entry, "each trick names a real entry"
    run_dir = edit(handed(tmp_path, original, runner="docker"), lambda r: r["submission"].update(path=path))
    refused(reproduce(tmp_path, run_dir), tmp_path, "entry folder", "pass --submission DIR")


@pytest.mark.parametrize("source", ["npz:/nonexistent/secret.npz", "npz:/dev/null", "ftp:whatever"])
def test_a_data_source_the_record_names_must_be_usable(tmp_path, original, source):
    refused(
        reproduce(tmp_path, handed(tmp_path, original, runner="docker", data=source)),
        tmp_path,
        "--data",
        "pass --data (and --eval-data) yourself",
    )


@needs_bwrap
def test_a_record_cannot_hand_the_entry_the_organizers_secret_set(tmp_path, original):
    """The record names the organizer's secret held-out file as training data (its path leaks easily:
    results record `data.eval_source`). It cannot know the secret images, so it cannot give the hash."""
    secret = synthetic_source(tmp_path / "secret.npz", seed=99)
    proc = reproduce(tmp_path, handed(tmp_path, original, runner="auto", data=secret))
    refused(proc, tmp_path, "does not give the images", "data_sha256", "pass --data (and --eval-data)")
    # Named on the command line, the same file is the organizer's choice: the run goes ahead, says so.
    proc = reproduce(tmp_path, handed(tmp_path / "b", original, runner="auto"), "--data", secret)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = reproduced(tmp_path)
    assert result["data"]["source"] == secret and result["reproduces"]["overridden"] == ["data"]
    assert "the images differ (data_sha256)" in " ".join(result["reproduces"]["differences"])


def test_the_flags_given_are_told_from_the_defaults_as_run_parsed_them():
    """Abbreviations `run` accepts name the same flag; its own flags (--quiet, --reproduce) are left
    over; a value equal to the default still counts as given."""
    from harness.cli import given_run_options

    given = given_run_options(
        [
            "run",
            "--reproduce",
            "runs/x",
            "--budg",
            "600",
            "--no-curve",
            "--quiet",
            "--runner=local",
            "--submission",
            "entry",
            "--seed",
            "-1",
        ]
    )
    assert given == {"budget_s": 600.0, "curve": False, "runner": "local", "submission": Path("entry"), "seed": -1}
    assert given_run_options(["run", "--reproduce", "runs/x"]) == {}


def test_a_series_is_reproduced_repeat_by_repeat_and_each_repeats_images_are_checked(tmp_path):
    series = real_run(tmp_path, "series", "--budget", "2", "--grace", "0.5", "--repeats", "2", "--seed", "5")
    edited = edit(handed(tmp_path, series), lambda r: r["repeats"][1]["data"].update(data_sha256="0" * 64))
    refused(reproduce(tmp_path, edited, "--runner", "local"), tmp_path, "run series/repeat-02", "data_sha256")

    proc = reproduce(tmp_path, series, "--runner", "local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = read_json(series / "result.json"), reproduced(tmp_path)
    assert after["kind"] == "series" and len(after["repeats"]) == 2
    for i, (a, b) in enumerate(zip(before["repeats"], after["repeats"])):
        assert b["seed"] == a["seed"] == 5 + i and b["data"]["data_sha256"] == a["data"]["data_sha256"]
        assert b["reproduces"]["path"] == str(series / f"repeat-{i + 1:02d}")
        assert b["reproduces"]["overridden"] == ["runner"] and b["reproduces"]["asked"]["seed"] == 5
