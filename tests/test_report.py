"""The run report: report.md / report.html from a RunResult and the files of a run directory."""

from __future__ import annotations

import json
import math
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.model import (
    DataInfo,
    Environment,
    GpuSummary,
    MonitorSummary,
    Outcome,
    PhaseResult,
    RunResult,
    Score,
    SeriesResult,
    Signal,
    Status,
    SubmissionInfo,
    from_dict,
    to_dict,
)
from harness.report import (
    NO_GPU_TEXT,
    read_events,
    read_metrics,
    repeat_dir_names,
    summary_table,
    write_report,
    write_series_report,
)
from harness.scoring import wilson_interval as wilson

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
EVIL = "<script>alert(1)</script>"


# --- fixtures: realistic results and run-directory files ---------------------------------------


def _confusion(correct_per_class: list[int], per_class_total: int = 100) -> list[list[int]]:
    rows = []
    for i, c in enumerate(correct_per_class):
        row = [0] * 10
        row[i] = c
        wrong = per_class_total - c
        for k in range(wrong):
            row[(i + 1 + k % 9) % 10] += 1
        rows.append(row)
    return rows


def make_result(
    *,
    name: str = "resnet9",
    scored: bool = True,
    gpu: bool = True,
    run_id: str = "20210601-120000-resnet9",
    seed: int = 0,
    train_outcome: Outcome = Outcome.KILLED_AT_DEADLINE,
    log_tail: list[str] | None = None,
    correct_per_class: list[int] | None = None,
) -> RunResult:
    correct_per_class = correct_per_class or [95, 96, 88, 80, 92, 86, 95, 94, 96, 95]
    confusion = _confusion(correct_per_class)
    correct, total = sum(correct_per_class), 1000
    low, high = wilson(correct, total)
    score = (
        Score(
            accuracy=correct / total,
            correct=correct,
            total=total,
            ci95_low=low,
            ci95_high=high,
            per_class={c: correct_per_class[i] / 100 for i, c in enumerate(CLASSES)},
            confusion=confusion,
        )
        if scored
        else None
    )
    signals = (
        [Signal("SIGTERM", 590.01), Signal("SIGKILL", 600.02)] if train_outcome == Outcome.KILLED_AT_DEADLINE else []
    )
    train = PhaseResult(
        phase="train",
        outcome=train_outcome,
        seconds=600.02 if train_outcome == Outcome.KILLED_AT_DEADLINE else 12.5,
        budget_s=600.0,
        exit_code=-9 if train_outcome == Outcome.KILLED_AT_DEADLINE else 1,
        signals=signals,
        stray_processes_killed=2 if scored else 0,
        log_tail=log_tail or ["epoch 10 loss 0.31"],
        checkpoints=[{"name": "model.pt", "bytes": 26_345_678, "sha256": "ab12" * 16}] if scored else [],
        detail="" if scored else "exit code 1",
    )
    predict = PhaseResult(
        phase="predict",
        outcome=Outcome.COMPLETED if scored else Outcome.NOT_STARTED,
        seconds=4.21 if scored else 0.0,
        budget_s=120.0,
        exit_code=0 if scored else None,
    )
    gpus = (
        [
            GpuSummary(
                index=0,
                name="NVIDIA H100 80GB HBM3",
                uuid="GPU-1234",
                memory_total_bytes=80 * 2**30,
                util_mean=93.4,
                util_max=100.0,
                memory_used_peak_bytes=int(5.3 * 2**30),
                power_mean_w=412.0,
                power_max_w=640.5,
                energy_j=247_300.0,
                temperature_max_c=61.0,
                sm_clock_mean_mhz=1755.0,
            )
        ]
        if gpu
        else None
    )
    monitor = MonitorSummary(
        interval_s=0.5,
        samples=1200 if scored else 25,
        cpu_percent_mean=112.0,
        cpu_percent_max=198.0,
        rss_peak_bytes=int(2.4 * 2**30),
        gpus=gpus,
        gpu_note="" if gpu else NO_GPU_TEXT,
        warnings=[] if gpu or not scored else [],
    )
    return RunResult(
        run_id=run_id,
        status=Status.SCORED if scored else Status.FAILED,
        reason="" if scored else "train crashed (exit code 1)",
        submission=SubmissionInfo(
            name=name, path="/subs/resnet9", train="python train.py", predict="python predict.py", sha256="f00d" * 16
        ),
        data=DataInfo(
            source="tar:../shared/data/cifar10-jpeg.tar.gz",
            eval_source="test split",
            classes=CLASSES,
            seed=seed,
            train_per_class=500,
            eval_per_class=100,
            train_count=5000,
            eval_count=1000,
            data_sha256="9c1e" * 16,
        ),
        train=train,
        predict=predict,
        monitor=monitor,
        environment=Environment(
            harness="0.1.0",
            python="3.11.7",
            platform="Linux-6.1-x86_64",
            runner="local",
            device="cuda" if gpu else "cpu",
            torch="2.3.0",
            cuda="12.1" if gpu else None,
            gpus=["NVIDIA H100 80GB HBM3"] if gpu else [],
            driver="550.54" if gpu else None,
            image=None,
            hostname="node-7",
        ),
        started_at="2021-06-01T12:00:00+00:00",
        finished_at="2021-06-01T12:10:12+00:00",
        wall_seconds=612.3,
        seed=seed,
        accuracy=score.accuracy if score else None,
        correct=correct if scored else None,
        total=total if scored else None,
        score=score,
        warnings=[],
    )


def write_metrics(run_dir: Path, rows: int = 1200, gpus: int = 1, interval: float = 0.5) -> None:
    header = ["t_s", "cpu_percent", "rss_bytes"]
    for i in range(gpus):
        header += [
            f"gpu{i}_util",
            f"gpu{i}_mem_used_bytes",
            f"gpu{i}_power_w",
            f"gpu{i}_temp_c",
            f"gpu{i}_sm_clock_mhz",
            f"gpu{i}_energy_j",
        ]
    lines = [",".join(header)]
    energy = 0.0
    rng = random.Random(0)
    for k in range(rows):
        t = k * interval
        warm = min(1.0, t / 8)
        row = [f"{t:.3f}", f"{100 + 80 * warm + rng.uniform(-10, 10):.1f}", str(int((0.8 + 1.5 * warm) * 2**30))]
        for _ in range(gpus):
            power = 80 + 500 * warm + rng.uniform(-20, 20)
            energy += power * interval
            row += [
                f"{95 * warm:.0f}",
                str(int(5 * warm * 2**30)),
                f"{power:.1f}",
                f"{40 + 20 * warm:.0f}",
                "" if k == 3 else "1755",
                f"{energy:.1f}",
            ]
        lines.append(",".join(row))
    lines.append("599.9,12")  # a truncated last line: skipped
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")


def write_events(run_dir: Path, epochs: int = 10, malformed: bool = True, epoch_s: float = 55.0) -> None:
    lines = []
    for ep in range(1, epochs + 1):
        t = ep * epoch_s
        lines.append(
            json.dumps(
                {
                    "event": "epoch",
                    "epoch": ep,
                    "train_loss": 2.0 * math.exp(-ep / 4),
                    "val_loss": 2.1 * math.exp(-ep / 4.5),
                    "val_acc": 1 - 0.8 * math.exp(-ep / 3),
                    "train_acc": 1 - 0.8 * math.exp(-ep / 2.8),
                    "lr": 0.4 * (1 - ep / (epochs + 1)),
                    "images_per_s": 9500 + ep,
                    "t_s": t,
                }
            )
        )
        if ep == 3 and malformed:
            lines.append('{"event": "epoch", "epoch": 3, "train_loss": ')  # malformed: skipped
            lines.append("[1, 2, 3]")  # not an object: skipped
    lines.append(json.dumps({"event": "checkpoint", "path": "model.pt", "t_s": 560.0}))
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")


def no_temp_files(run_dir: Path) -> bool:
    return not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def plots_in(text: str) -> list[ET.Element]:
    """The report's inline SVG plots, each parsed as XML: one that is not well-formed fails here."""
    return [ET.fromstring(m) for m in re.findall(r'<svg class="plot".*?</svg>', text, re.S)]


# --- single runs ---------------------------------------------------------------------------------


def test_scored_gpu_run_report(tmp_path: Path) -> None:
    result = make_result()
    write_metrics(tmp_path)
    write_events(tmp_path)
    write_report(tmp_path, result)

    html_text = (tmp_path / "report.html").read_text()
    md_text = (tmp_path / "report.md").read_text()
    assert no_temp_files(tmp_path)

    # headline
    assert "resnet9" in html_text and "scored" in html_text
    assert "91.70%" in html_text and "917 / 1000" in html_text
    lo, hi = wilson(917, 1000)
    assert f"{100 * lo:.2f}–{100 * hi:.2f}%" in html_text
    assert "9c1e9c1e" in html_text and "20210601-120000-resnet9" in html_text
    # sections
    for anchor in ('id="phases"', 'id="resources"', 'id="events"', 'id="score"', 'id="environment"'):
        assert anchor in html_text
    # phases: killed at deadline is normal, signals, checkpoints
    assert "killed_at_deadline" in html_text and "last saved checkpoint counts" in html_text
    assert "SIGTERM at 590.01 s, SIGKILL at 600.02 s" in html_text
    assert "model.pt" in html_text and "25.13 MiB" in html_text and "ab12ab12ab12ab12" in html_text
    # resources: GPU numbers, energy in J and Wh
    assert "247,300 J (68.69 Wh)" in html_text
    assert "NVIDIA H100 80GB HBM3" in html_text and "1755 MHz" in html_text and "61 °C" in html_text
    assert NO_GPU_TEXT not in html_text
    # plots: CPU, GPU, events, confusion, each drawn (lines or cells, not an empty frame)
    svgs = plots_in(html_text)
    assert len(svgs) == 4
    drawn = ("polyline", "rect")
    assert all(sum(e.tag in drawn for e in svg.iter()) >= 2 for svg in svgs)
    # events: malformed lines counted, epochs, fields
    assert "2 malformed line(s) of events.jsonl skipped" in html_text
    assert "10 epochs reported" in html_text
    assert "val_acc" in html_text and "images_per_s" in html_text
    # per-class table and environment
    assert "airplane" in html_text and "95.0%" in html_text
    assert "550.54" in html_text and "node-7" in html_text and "2.3.0" in html_text
    # self-contained: no external assets or scripts
    assert "<script" not in html_text and "http://" not in html_text and "https://" not in html_text

    # markdown: the same facts, text only
    assert md_text.startswith("# resnet9")
    assert "91.70% (917/1000, 95% CI" in md_text
    assert "SIGTERM at 590.01 s" in md_text and "247,300 J (68.69 Wh)" in md_text
    assert "| airplane | 95 | 100 | 95.0% |" in md_text
    assert "## Environment" in md_text and "## Data" in md_text and "data sha256" in md_text
    assert "data:image" not in md_text


def test_failed_run_without_gpu(tmp_path: Path) -> None:
    tail = ["Traceback (most recent call last):", '  File "train.py", line 12, in <module>', "RuntimeError: boom"]
    result = make_result(scored=False, gpu=False, train_outcome=Outcome.CRASHED, log_tail=tail)
    write_metrics(tmp_path, rows=25, gpus=0)
    (tmp_path / "events.jsonl").write_text("")
    write_report(tmp_path, result)
    html_text = (tmp_path / "report.html").read_text()
    md_text = (tmp_path / "report.md").read_text()
    assert no_temp_files(tmp_path)

    assert "failed" in html_text and "train crashed (exit code 1)" in html_text
    assert "not scored" in html_text
    assert NO_GPU_TEXT in html_text and NO_GPU_TEXT in md_text
    # the crash log tail is shown, open, escaped
    assert "<pre>" in html_text and "RuntimeError: boom" in html_text
    assert "line 12, in &lt;module&gt;" in html_text
    assert "RuntimeError: boom" in md_text and "```text" in md_text
    assert "not_started" in html_text and "an earlier phase failed" in html_text  # predict
    assert "wrote no events" in html_text
    # only the CPU plot (no GPU, no events, no confusion)
    assert len(plots_in(html_text)) == 1
    assert "crashed" in summary_table(result) and "no GPU" in summary_table(result)


def test_crash_tail_falls_back_to_log_file(tmp_path: Path) -> None:
    result = make_result(scored=False, gpu=False, train_outcome=Outcome.CRASHED)
    result.train.log_tail = []
    (tmp_path / "train.log").write_text("".join(f"line {i}\n" for i in range(100)) + "Killed: oom-ish\n")
    write_report(tmp_path, result)  # no metrics.csv, no events.jsonl at all
    html_text = (tmp_path / "report.html").read_text()
    assert "Killed: oom-ish" in html_text and "line 99" in html_text and "line 10\n" not in html_text
    assert "metrics.csv is missing" in html_text


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    evil_lines = [EVIL, '<img src=x onerror="alert(2)">', "</pre><script>alert(3)</script>", "``` break"]
    result = make_result(name=EVIL, scored=False, gpu=False, train_outcome=Outcome.CRASHED, log_tail=evil_lines)
    result.reason = f"train crashed: {EVIL}"
    result.train.detail = EVIL
    result.train.checkpoints = [{"name": EVIL, "bytes": 10, "sha256": EVIL}]
    result.monitor.warnings = [f"warning {EVIL}"]
    write_metrics(tmp_path, rows=10, gpus=0)
    (tmp_path / "events.jsonl").write_text(
        json.dumps({"event": EVIL, EVIL: 1.5, "loss$x$_": 2.0, "note": EVIL, "t_s": 1.0})
        + "\n"
        + json.dumps({"event": EVIL, EVIL: 1.2, "loss$x$_": 1.0, "note": EVIL, "t_s": 2.0})
        + "\n"
    )
    write_report(tmp_path, result)
    html_text = (tmp_path / "report.html").read_text()
    md_text = (tmp_path / "report.md").read_text()

    assert "<script" not in html_text.lower()
    assert "<img src=x" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)" in html_text
    assert "could not be rendered" not in html_text  # mathtext-like labels do not break plots
    assert len(plots_in(html_text)) == 2  # cpu + events
    # markdown: no raw HTML outside code blocks; the log fence is longer than the log's backticks
    outside = re.sub(r"(`{3,})text\n.*?\n\1\n", "", md_text, flags=re.S)
    assert "<script" not in outside and "<img" not in outside
    assert "````text" in md_text
    # console: plain text, but no control characters
    assert "\x1b" not in summary_table(result)


def test_console_control_characters_are_neutralised() -> None:
    result = make_result(name="x\x1b[2Jy")
    assert "\x1b" not in summary_table(result)


def test_result_json_roundtrip_feeds_the_report(tmp_path: Path) -> None:
    result = make_result()
    back = from_dict(json.loads(json.dumps(to_dict(result))))
    write_events(tmp_path, malformed=False)
    write_report(tmp_path, back)
    assert "91.70%" in (tmp_path / "report.html").read_text()


def test_broken_inputs_do_not_stop_the_report(tmp_path: Path) -> None:
    result = make_result()
    result.score.confusion = [[1, 2], [3]]  # ragged: no heatmap, but a report
    (tmp_path / "metrics.csv").write_text("garbage\n\x00\x01,,\n")
    (tmp_path / "events.jsonl").write_bytes(b'\xff\xfe not json\n{"t_s": "NaN", "loss": NaN}\n' + b"1e999\n")
    write_report(tmp_path, result)
    html_text = (tmp_path / "report.html").read_text()
    assert 'id="environment"' in html_text
    assert (tmp_path / "report.md").read_text().startswith("# resnet9")


def test_readers(tmp_path: Path) -> None:
    write_metrics(tmp_path, rows=20, gpus=2)
    m = read_metrics(tmp_path / "metrics.csv")
    assert m is not None and len(m.t) == 20 and m.gpu_indices == [0, 1] and m.skipped_rows == 1
    assert math.isnan(m.cols["gpu0_sm_clock_mhz"][3])
    write_metrics(tmp_path, rows=5, gpus=0)
    m = read_metrics(tmp_path / "metrics.csv")
    assert m is not None and m.gpu_indices == [] and set(m.cols) == {"cpu_percent", "rss_bytes"}
    assert read_metrics(tmp_path / "missing.csv") is None

    write_events(tmp_path, epochs=4)
    ev = read_events(tmp_path / "events.jsonl")
    assert ev.skipped == 2 and ev.epochs() == 4 and len(ev.events) == 5
    series = ev.series()
    assert set(series) == {"train_loss", "val_loss", "val_acc", "train_acc", "lr", "images_per_s"}
    assert series["lr"][0] == [55.0, 110.0, 165.0, 220.0]
    (tmp_path / "e2.jsonl").write_text(
        '{"event":"step","loss":1,"t_s":1}\n{"event":"epoch","loss":0.5,"epoch":0,"ok":true,"t_s":2}\n'
    )
    ev2 = read_events(tmp_path / "e2.jsonl")
    assert set(ev2.series()) == {"loss (step)", "loss (epoch)"} and ev2.epochs() == 1
    assert read_events(tmp_path / "missing.jsonl").events == []


def test_report_for_a_long_run(tmp_path: Path) -> None:
    # 600 s at 0.5 s sampling; how long it takes is measured by benchmarks/, not asserted here
    write_metrics(tmp_path, rows=1200, gpus=1)
    write_events(tmp_path, epochs=60)
    write_report(tmp_path, make_result())


# --- series and console ------------------------------------------------------------------------


def make_series(tmp_path: Path) -> SeriesResult:
    repeats = []
    for i in range(3):
        scored = i != 1
        r = make_result(
            run_id=f"20210601-120000-resnet9/repeat-{i + 1:02d}",
            seed=i,
            scored=scored,
            gpu=True,
            train_outcome=Outcome.KILLED_AT_DEADLINE if scored else Outcome.CRASHED,
            correct_per_class=[90 + i] * 10,
        )
        repeats.append(r)
        d = tmp_path / f"repeat-{i + 1:02d}"
        d.mkdir()
        if scored:
            write_events(d, epochs=10 + i)
    accs = [r.accuracy or 0.0 for r in repeats]
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / len(accs)) ** 0.5
    return SeriesResult(
        run_id="20210601-120000-resnet9",
        status=Status.FAILED,
        reason="1 of 3 repeats failed",
        submission=repeats[0].submission,
        accuracy_mean=mean,
        accuracy_std=std,
        accuracies=accs,
        repeats=repeats,
        started_at="2021-06-01T12:00:00+00:00",
        finished_at="2021-06-01T12:31:00+00:00",
        wall_seconds=1860.0,
        accuracy=mean,
    )


def test_series_report(tmp_path: Path) -> None:
    series = make_series(tmp_path)
    write_series_report(tmp_path, series)
    html_text = (tmp_path / "report.html").read_text()
    md_text = (tmp_path / "report.md").read_text()
    assert no_temp_files(tmp_path)
    assert "60.67%" in html_text and "± 42.91%" in html_text  # (0.90 + 0 + 0.92) / 3
    for i in (1, 2, 3):
        assert f'href="repeat-{i:02d}/report.html"' in html_text
        assert f"(repeat-{i:02d}/report.md)" in md_text or f"(<repeat-{i:02d}/report.md>)" in md_text
    assert "crashed" in html_text and "killed_at_deadline" in html_text
    assert "247,300 J" in html_text
    # epochs from each repeat's events.jsonl: 10 and 12; none for the crashed one
    assert '<td class="num">10</td>' in html_text and '<td class="num">12</td>' in html_text
    assert len(plots_in(html_text)) == 1
    assert "60.67% ± 42.91% over 3 repeats" in md_text
    assert "| 1 | 0 | scored | 90.00% (900/1000) |" in md_text


def test_series_repeat_dirs(tmp_path: Path) -> None:
    series = make_series(tmp_path)
    assert repeat_dir_names(series) == ["repeat-01", "repeat-02", "repeat-03"]
    for r in series.repeats:
        r.run_id = "other"
    assert repeat_dir_names(series) == ["repeat-01", "repeat-02", "repeat-03"]
    write_series_report(tmp_path, series, repeat_dirs=["a", "b c", "d"])
    assert 'href="b%20c/report.html"' in (tmp_path / "report.html").read_text()
    with pytest.raises(ValueError):
        repeat_dir_names(series, ["a"])


def test_summary_table_run() -> None:
    text = summary_table(make_result())
    assert "status" in text and "scored" in text
    assert "91.70% (917/1000, 95% CI" in text
    assert "killed_at_deadline  600.0 s / 600 s budget" in text
    assert "completed  4.2 s / 120 s budget" in text
    assert "peak RSS 2.40 GiB" in text and "mean 112%" in text
    assert "gpu0" in text and "util mean 93%" in text and "247,300 J" in text
    assert "warnings" in text and "none" in text

    failed = make_result(scored=False, gpu=False, train_outcome=Outcome.CRASHED)
    failed.monitor.warnings = ["run claims cuda but GPU stayed idle"]
    text = summary_table(failed)
    assert "failed: train crashed (exit code 1)" in text and "not scored" in text
    assert "no GPU" in text and "GPU stayed idle" in text


def test_summary_table_series(tmp_path: Path) -> None:
    text = summary_table(make_series(tmp_path))
    lines = text.splitlines()
    assert "series 20210601-120000-resnet9" in lines[0] and "failed" in lines[0]
    assert any(ln.split()[:3] == ["1", "0", "scored"] for ln in lines)
    assert any(ln.split()[:3] == ["2", "1", "failed"] for ln in lines)
    assert "mean ± std: 60.67% ± 42.91% over 3 repeats" in text


def test_invalid_predictions_show_the_predict_log(tmp_path: Path) -> None:
    result = make_result(scored=False, gpu=True)
    result.status = Status.INVALID_PREDICTIONS
    result.reason = "predictions.csv: 999 rows, expected 1000"
    result.train.outcome = Outcome.COMPLETED
    result.predict.outcome = Outcome.COMPLETED
    result.predict.log_tail = ["wrote predictions for 999 images"]
    write_report(tmp_path, result)
    html_text = (tmp_path / "report.html").read_text()
    assert "invalid_predictions" in html_text and "999 rows, expected 1000" in html_text
    assert "Last lines of predict.log" in html_text and "wrote predictions for 999 images" in html_text
    assert "Last lines of predict.log" in (tmp_path / "report.md").read_text()


def test_many_step_events_are_plotted_quickly(tmp_path: Path) -> None:
    lines = [
        json.dumps({"event": "step", "step": i, "loss": 2.0 / (1 + i / 1000), "t_s": i * 0.01}) for i in range(50_000)
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    write_report(tmp_path, make_result())
    html_text = (tmp_path / "report.html").read_text()
    assert "50000 events" in html_text and len(plots_in(html_text)) == 2  # events + confusion


def test_gpu_note_is_kept_next_to_the_plain_sentence(tmp_path: Path) -> None:
    result = make_result(gpu=False)
    result.environment.device = "cuda"  # NVML is only asked (and can fail) on a cuda run
    result.monitor.gpu_note = "NVML could not be loaded: libnvidia-ml.so.1 not found"
    write_report(tmp_path, result)
    html_text = (tmp_path / "report.html").read_text()
    assert NO_GPU_TEXT in html_text and "libnvidia-ml.so.1 not found" in html_text


def test_a_cpu_run_does_not_claim_no_gpu_was_visible(tmp_path: Path) -> None:
    result = make_result(gpu=False)
    result.monitor.gpu_note = "The run used --device cpu; GPUs were not monitored"
    write_report(tmp_path, result)
    html_text = (tmp_path / "report.html").read_text()
    assert "GPUs were not monitored" in html_text and NO_GPU_TEXT not in html_text


def test_the_gpu_sentence_comes_from_the_monitors_status_field(tmp_path: Path) -> None:
    from harness.model import GpuStatus

    result = make_result(gpu=False)
    result.environment.device = "cuda"  # the field wins over what the environment suggests
    result.monitor.gpu_status, result.monitor.gpu_note = GpuStatus.CPU_RUN, ""
    write_report(tmp_path, result)
    assert "GPUs were not monitored" in (tmp_path / "report.md").read_text()
    assert NO_GPU_TEXT not in (tmp_path / "report.html").read_text()

    result.environment.device = "cpu"
    result.monitor.gpu_status, result.monitor.gpu_note = GpuStatus.NOT_VISIBLE, "NVML: driver not loaded"
    write_report(tmp_path, result)
    for name in ("report.md", "report.html"):
        page = (tmp_path / name).read_text()
        assert NO_GPU_TEXT in page and "driver not loaded" in page and "not monitored" not in page


def test_report_rebuilt_from_result_json_or_saying_why_not(tmp_path: Path) -> None:
    from harness.report import rebuild_report

    (tmp_path / "result.json").write_text(json.dumps(to_dict(make_result())))
    assert rebuild_report(tmp_path) is True
    assert "91.70%" in (tmp_path / "report.html").read_text()
    (tmp_path / "result.json").write_text(json.dumps({"status": "scored", "accuracy": "high", "data": []}))
    assert rebuild_report(tmp_path) is False
    for name in ("report.md", "report.html"):
        assert "no readable result" in (tmp_path / name).read_text()


def test_the_report_marks_when_sigterm_was_due_even_if_the_phase_ended_first(tmp_path: Path) -> None:
    result = make_result(train_outcome=Outcome.COMPLETED)
    result.train.signals, result.train.grace_s = [], 10.0
    write_metrics(tmp_path, rows=25)
    write_report(tmp_path, result)
    assert "SIGTERM at 590.0 s" in (tmp_path / "report.md").read_text(), "the moment entries plan for"
