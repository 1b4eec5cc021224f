"""The curve: each kept snapshot (harness.snapshots) predicted off the clock, after the official score.

Every point is the entry's own predict command, run exactly as the official predict phase (same
runner, same budget, read-only checkpoints) on the curve set: images apart from the held-out set
and from the training images (harness.data._draw_curve), in an order drawn from secret
randomness, so nothing about the held-out images leaks and the curve's labels cannot be lined up
by the seed alone. A point that fails (crash, timeout, invalid predictions) is marked failed with
the reason; the official score is never touched. Written to curve.csv, one row per point.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness import scoring
from harness.contract import PREDICTIONS_FILE
from harness.data import Split
from harness.files import atomic_write_bytes, atomic_write_text
from harness.model import Curve, CurvePoint, Outcome, PhaseResult
from harness.snapshots import Snapshot, Snapshots

CURVE_FILE = "curve.csv"
COLUMNS = (
    "seconds",
    "checkpoint",
    "status",
    "accuracy",
    "ci95_low",
    "ci95_high",
    "correct",
    "total",
    "gpu_board_energy_j",
    "cpu_package_energy_j",
    "final",
    "detail",
)

# predict(checkpoints dir, data dir, output dir, log name) -> the phase, run as the official predict is
Predict = Callable[[Path, Path, Path, str], PhaseResult]


def evaluate(curve: Curve, snapshots: Snapshots, images: Split, n_classes: int, work: Path, predict: Predict) -> Curve:
    """Predict every kept snapshot in time order; points are appended as they finish, so an
    interrupted curve keeps the ones done."""
    order = np.random.default_rng(secrets.randbits(128)).permutation(len(images.labels))
    labels = images.labels[order]
    data_dir = work / "curve-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)  # whatever the umask: the entry's uid reads it through its mount
    buffer = io.BytesIO()
    np.savez(buffer, images=images.images[order])
    atomic_write_bytes(data_dir / "test.npz", buffer.getvalue())
    os.chmod(data_dir / "test.npz", 0o444)
    curve.snapshots_seen = snapshots.seen
    curve.notes += snapshots.notes
    for snapshot in sorted(snapshots.kept, key=lambda s: s.seconds):
        output = work / "curve-output" / snapshot.name
        output.mkdir(parents=True)
        phase = predict(snapshots.store / snapshot.name, data_dir, output, snapshot.name)
        curve.predict_seconds = round(curve.predict_seconds + phase.seconds, 3)
        curve.points.append(_point(snapshot, phase, output / PREDICTIONS_FILE, labels, n_classes))
    reach(curve)
    return curve


def _point(snapshot: Snapshot, phase: PhaseResult, predictions: Path, labels: np.ndarray, n_classes: int) -> CurvePoint:
    point = CurvePoint(
        seconds=snapshot.seconds,
        checkpoint="final" if snapshot.final else snapshot.name,
        status="failed",
        gpu_energy_j=_round(snapshot.gpu_energy_j),
        cpu_energy_j=_round(snapshot.cpu_energy_j),
        files=len(snapshot.state),
        bytes=snapshot.bytes,
        final=snapshot.final,
    )
    if phase.outcome is not Outcome.COMPLETED:
        point.detail = f"predict {phase.outcome.value}: {phase.detail}".rstrip(": ")
        return point
    if not predictions.is_file():
        point.detail = "predict wrote no predictions.csv"
        return point
    try:
        predicted = scoring.read_predictions(predictions, len(labels), n_classes)
    except scoring.InvalidPredictions as exc:
        point.detail = str(exc)
        return point
    correct = int((predicted == labels).sum())
    low, high = scoring.wilson_interval(correct, len(labels))
    point.status, point.correct, point.total = "scored", correct, len(labels)
    point.accuracy, point.ci95_low, point.ci95_high = correct / len(labels), low, high
    return point


def reach(curve: Curve) -> None:
    """Time and energy to `target`: at the first scored point at or above it, in time order."""
    for point in sorted(curve.points, key=lambda p: p.seconds):
        if point.status == "scored" and point.accuracy is not None and point.accuracy >= curve.target:
            curve.time_to_target_s = point.seconds
            curve.gpu_energy_to_target_j = point.gpu_energy_j
            curve.cpu_energy_to_target_j = point.cpu_energy_j
            return


def write_csv(path: Path, curve: Curve) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for p in curve.points:
        writer.writerow(
            [
                p.seconds,
                p.checkpoint,
                p.status,
                _cell(p.accuracy),
                _cell(p.ci95_low),
                _cell(p.ci95_high),
                _cell(p.correct),
                _cell(p.total),
                _cell(p.gpu_energy_j),
                _cell(p.cpu_energy_j),
                int(p.final),
                p.detail,
            ]
        )
    atomic_write_text(path, out.getvalue())


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _cell(x) -> str:
    if x is None:
        return ""  # not measured: never 0
    return f"{x:.6f}" if isinstance(x, float) else str(x)
