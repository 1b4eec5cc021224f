"""The submission's own progress events (HAET_EVENTS), read while it runs.

Untrusted input: lines that are not JSON objects are skipped, and reading stops
at a size cap so a flood cannot exhaust the harness.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional

from harness.files import atomic_write_text

MAX_BYTES = 10 * 2**20
MAX_LINE = 64 * 1024


class EventTail:
    def __init__(self, path: Path, started_unix: float):
        self.path = Path(path)
        self.started_unix = started_unix
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> None:
        if self._offset >= MAX_BYTES or not self.path.is_file():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(MAX_BYTES - self._offset)
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()[:MAX_LINE]
        for line in lines:
            self._add(line[:MAX_LINE])

    def _add(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(event, dict):
            return
        stamp = event.get("time")
        if isinstance(stamp, (int, float)) and math.isfinite(stamp):
            event["t_s"] = round(stamp - self.started_unix, 3)
        else:  # no clock of its own: when the harness saw it
            event["t_s"] = round(time.time() - self.started_unix, 3)
        self.events.append(event)

    @property
    def last(self) -> Optional[dict[str, Any]]:
        return self.events[-1] if self.events else None

    def write(self, path: Path) -> None:
        self.poll()
        atomic_write_text(path, "".join(json.dumps(e, default=str) + "\n" for e in self.events))


def describe(event: Optional[dict[str, Any]], limit: int = 60) -> str:
    """'epoch 3 train_loss=0.912 acc=0.55' for the progress line."""
    if not event:
        return ""
    name = str(event.get("event", "event"))
    fields = []
    for key, value in event.items():
        if key in ("event", "time", "t_s"):
            continue
        if isinstance(value, float):
            fields.append(f"{key}={value:.4g}")
        elif isinstance(value, (int, str)):
            fields.append(f"{key}={value}")
    return (name + " " + " ".join(fields))[:limit]
