"""Scoring: read predictions.csv strictly, compare with the held-out labels.

Anything wrong with the file is an `InvalidPredictions` with the exact reason,
never a crash and never a silent zero.
"""

from __future__ import annotations

import csv
import math
import os
import stat
from pathlib import Path

import numpy as np

from harness.model import Score
from harness.text import clean

HEADER = ["index", "label"]
MAX_BYTES = 16 * 2**20  # the absolute ceiling, whatever the count; run.py copies at most this much
BASE_BYTES = 64 * 2**10  # allowed bytes: BASE_BYTES + BYTES_PER_ROW per expected row (1000 rows: ~126 KiB)
BYTES_PER_ROW = 64
ROW_SLACK = 100  # rows allowed beyond count + header: blank lines, a trailing newline or two
QUOTE_CHARS = 60  # how much of a bad row a reason quotes (escaped)


class InvalidPredictions(ValueError):
    pass


def byte_limit(count: int) -> int:
    """The largest predictions.csv accepted for `count` images (MAX_BYTES at most)."""
    return min(MAX_BYTES, BASE_BYTES + BYTES_PER_ROW * max(count, 0))


def row_limit(count: int) -> int:
    """The most CSV rows accepted for `count` images: one each, the header and ROW_SLACK blank ones."""
    return max(count, 0) + 1 + ROW_SLACK


def _quote(value: object) -> str:
    """A bad cell or row as the reason shows it: short and escaped."""
    if isinstance(value, list):
        value = ",".join(value)
    return "'" + clean(value, QUOTE_CHARS) + "'"


def _lines(f, name: str, limit: int):
    """The file's lines, refusing (mid-read too, should the file grow) anything past `limit`."""
    used = 0
    while True:
        line = f.readline(limit - used + 1)
        if not line:
            return
        used += len(line.encode("utf-8"))
        if used > limit:
            raise InvalidPredictions(
                f"{name} is over the {limit}-byte limit for its rows; "
                "write one 'index,label' line per image and nothing else"
            )
        yield line


def read_predictions(path: Path, count: int, n_classes: int) -> np.ndarray:
    """Labels indexed by image, or InvalidPredictions saying exactly what is wrong.

    Streamed and bounded: the file may be at most byte_limit(count) bytes and row_limit(count)
    rows; reasons quote at most QUOTE_CHARS characters of the entry's text, escaped.
    """
    path = Path(path)
    name = clean(path.name, 100)
    try:
        info = path.stat()
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise InvalidPredictions(
            f"{name} was not written"
            if info is None
            else f"{name} is not a regular file; write predictions to a plain file"
        )
    limit = byte_limit(count)
    if info.st_size > limit:
        raise InvalidPredictions(
            f"{name} is {info.st_size} bytes; over the {limit}-byte limit for {count} predictions "
            f"({BASE_BYTES // 1024} KiB + {BYTES_PER_ROW} bytes per image); write one 'index,label' line per image"
        )
    max_rows = row_limit(count)
    labels = np.full(count, -1, dtype=np.int64)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, encoding="utf-8", errors="strict", newline="") as f:
            rows = csv.reader(_lines(f, name, limit))
            header = next(rows, None)
            if header is None or [c.strip() for c in header] != HEADER:
                got = "an empty file" if header is None else _quote(header)
                raise InvalidPredictions(f"{name}: first line must be the header 'index,label', got {got}")
            for row in rows:
                if rows.line_num > max_rows:
                    raise InvalidPredictions(
                        f"{name} has more than {max_rows} lines for {count} images (one per image, the header "
                        f"and up to {ROW_SLACK} blank lines); write one 'index,label' line per image"
                    )
                line = rows.line_num
                if not row:
                    continue
                if len(row) != 2:
                    raise InvalidPredictions(
                        f"{name} line {line}: expected 2 fields 'index,label', got {len(row)} ({_quote(row)})"
                    )
                try:
                    index, label = int(row[0]), int(row[1])
                except ValueError:
                    raise InvalidPredictions(f"{name} line {line}: {_quote(row)} are not two integers") from None
                if not 0 <= index < count:
                    raise InvalidPredictions(f"{name} line {line}: index {index} is outside 0..{count - 1}")
                if not 0 <= label < n_classes:
                    raise InvalidPredictions(f"{name} line {line}: label {label} is outside 0..{n_classes - 1}")
                if labels[index] != -1:
                    raise InvalidPredictions(f"{name} line {line}: index {index} is predicted twice")
                labels[index] = label
    except UnicodeDecodeError as exc:
        raise InvalidPredictions(
            f"{name} is not a UTF-8 CSV file ({clean(exc.reason, 60)}); write plain UTF-8 text"
        ) from None
    except csv.Error as exc:
        raise InvalidPredictions(
            f"{name} is not a UTF-8 CSV file ({clean(exc, 100)}); write plain 'index,label' lines"
        ) from None
    except OSError as exc:
        raise InvalidPredictions(f"{name} cannot be read ({clean(exc.strerror or exc, 100)})") from None
    missing = np.flatnonzero(labels == -1)
    if len(missing):
        raise InvalidPredictions(
            f"{name}: {len(missing)} of {count} images have no prediction (first missing index {missing[0]})"
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
