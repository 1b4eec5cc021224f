"""Scoring: read predictions.csv strictly, compare with the held-out labels.

Anything wrong with the file is an `InvalidPredictions` with the exact reason,
never a crash and never a silent zero.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from harness.model import Score

HEADER = ["index", "label"]
MAX_BYTES = 16 * 2**20  # 1000 rows need ~10 kB; anything huge is refused unread


class InvalidPredictions(ValueError):
    pass


def read_predictions(path: Path, count: int, n_classes: int) -> np.ndarray:
    """Labels indexed by image, or InvalidPredictions saying exactly what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InvalidPredictions(f"{path.name} was not written")
    if path.stat().st_size > MAX_BYTES:
        raise InvalidPredictions(f"{path.name} is {path.stat().st_size} bytes; over the {MAX_BYTES}-byte limit")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidPredictions(f"{path.name} is not a UTF-8 CSV file ({exc})") from None
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise InvalidPredictions(f"{path.name}: first line must be the header 'index,label', got {rows[:1]}")
    labels = np.full(count, -1, dtype=np.int64)
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise InvalidPredictions(f"{path.name} line {line}: expected 2 fields 'index,label', got {row}")
        try:
            index, label = int(row[0]), int(row[1])
        except ValueError:
            raise InvalidPredictions(f"{path.name} line {line}: {row} are not two integers") from None
        if not 0 <= index < count:
            raise InvalidPredictions(f"{path.name} line {line}: index {index} is outside 0..{count - 1}")
        if not 0 <= label < n_classes:
            raise InvalidPredictions(f"{path.name} line {line}: label {label} is outside 0..{n_classes - 1}")
        if labels[index] != -1:
            raise InvalidPredictions(f"{path.name} line {line}: index {index} is predicted twice")
        labels[index] = label
    missing = np.flatnonzero(labels == -1)
    if len(missing):
        raise InvalidPredictions(
            f"{path.name}: {len(missing)} of {count} images have no prediction (first missing index {missing[0]})"
        )
    return labels


def wilson_interval(correct: int, total: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def score(predicted: np.ndarray, truth: np.ndarray, classes: list[str]) -> Score:
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    correct, total = int(np.trace(confusion)), int(len(truth))
    low, high = wilson_interval(correct, total)
    per_class = {
        cls: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else 0.0)
        for i, cls in enumerate(classes)
    }
    return Score(
        accuracy=correct / total if total else 0.0,
        correct=correct,
        total=total,
        ci95_low=low,
        ci95_high=high,
        per_class=per_class,
        confusion=confusion.tolist(),
    )
