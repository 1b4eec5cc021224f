"""Progress on the console: one live line on a terminal, plain lines in a log.

What reaches the terminal is cleaned (harness.text): an entry's command, events and log
lines can hold escape sequences, and none of them may move the cursor, set the title,
ring the bell or reorder text on the operator's screen.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from harness.formatting import fmt_bytes
from harness.text import clean

PLAIN_EVERY_S = 10.0
EVENT_CHARS = 120  # the entry's latest event on the progress line, at most


class Progress:
    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self._last_plain = -PLAIN_EVERY_S
        self._width = 0

    def say(self, text: str) -> None:
        if self.quiet:
            return
        self._clear()
        lines = str(text).split("\n")
        print("\n".join(clean(line) for line in lines), file=self.stream, flush=True)

    def update(
        self,
        phase: str,
        elapsed: float,
        budget: float,
        event: str = "",
        cpu: float | None = None,
        rss: int | None = None,
        gpu_util: float | None = None,
    ) -> None:
        if self.quiet:
            return
        parts = [f"{phase:<7} {elapsed:6.1f}s / {budget:g}s"]
        if self.live:
            filled = int(20 * min(elapsed / budget, 1.0)) if budget else 0
            parts[0] += " [" + "#" * filled + "-" * (20 - filled) + "]"
        if cpu is not None:
            parts.append(f"CPU {cpu:.0f}% RSS {fmt_bytes(rss, missing='n/a')}")
        parts.append(f"GPU {gpu_util:.0f}%" if gpu_util is not None else "GPU n/a")
        if event:
            parts.append(clean(event, EVENT_CHARS))
        line = " | ".join(parts)
        if self.live:
            columns = shutil.get_terminal_size((100, 20)).columns - 1
            line = line[:columns]
            self.stream.write("\r" + line.ljust(self._width))
            self.stream.flush()
            self._width = len(line)
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            print(line, file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
