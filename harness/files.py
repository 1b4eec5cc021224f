"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.walk import walk


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_copy(src: Path, dst: Path, limit: int | None = None) -> None:
    """Publish a file that was written incrementally (a log, a stream) in one step."""
    with open(src, "rb") as f:
        data = f.read() if limit is None else f.read(limit)
    atomic_write_bytes(dst, data)


def change_times(root: Path) -> dict[str, float]:
    """Each regular file's ctime by relative name: the kernel sets it on every write, rename or
    utime, and nothing an unprivileged entry does can set it back. Walked with the shared walker
    (no link followed, bounded): raises WalkLimit (harness.walk) when the folder is past its
    bounds, and OSError when a folder in it cannot be read; a caller that cannot see every file's
    time cannot tell which are late (harness.checkpoints.checkpoint_times says what follows)."""
    return {found.rel: found.st.st_ctime for found in walk(root) if found.is_file}
