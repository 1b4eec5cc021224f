"""A phase's log: everything the submission prints, up to a cap, then a note."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from harness.text import clean

LINE_CHARS = 1000  # a tail line, cleaned, at most


class LogSink:
    """Appends a stream of bytes to a file, stops writing at `limit` bytes, keeps the tail."""

    def __init__(self, path: Path, limit: int, tail_lines: int = 40):
        self.path = Path(path)
        self.limit = limit
        self.written = 0
        self.dropped = 0
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._partial = b""
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if self._file.closed:  # a pump still draining after the phase ended: count it, write nothing
                self.dropped += len(chunk)
                return
            self._remember(chunk)
            room = self.limit - self.written
            if room > 0:
                part = chunk[:room]
                self._file.write(part)
                self._file.flush()
                self.written += len(part)
            if len(chunk) > max(room, 0):
                if self.dropped == 0:
                    self._file.write(f"\n[harness] log capped at {self.limit} bytes; the rest is dropped\n".encode())
                    self._file.flush()
                self.dropped += len(chunk) - max(room, 0)

    def _remember(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()[-4096:]
        for line in lines:
            self._tail.append(line[-1000:].decode("utf-8", "replace"))

    def tail(self) -> list[str]:
        """The last lines, each cleaned (harness.text): no escapes or control characters, at most
        LINE_CHARS characters. A line's trailing carriage return (CRLF output) is dropped."""
        with self._lock:
            lines = list(self._tail) + ([self._partial.decode("utf-8", "replace")] if self._partial else [])
        return [clean(line.rstrip("\r"), LINE_CHARS) for line in lines]

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def drain(self, stream: IO[bytes] | Iterable[bytes]) -> threading.Thread:
        """Copy a pipe or a chunk iterator into the sink on a daemon thread."""

        def pump() -> None:
            if hasattr(stream, "read1"):
                while chunk := stream.read1(65536):
                    self.write(chunk)
            else:
                for chunk in stream:
                    self.write(chunk)

        thread = threading.Thread(target=pump, name=f"log:{self.path.name}", daemon=True)
        thread.start()
        return thread
