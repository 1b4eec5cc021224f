"""Capped writable places of a phase: tmpfs volumes, and their copy to the run directory."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

import docker.errors

from harness import text
from harness.walk import MAX_DEPTH

MAX_FILES = 10_000  # files and folders in a capped volume (tmpfs nr_inodes); copy-out stops there too


class _ChunkReader(io.RawIOBase):
    """A file-like view of a chunk iterator, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _safe_target(root: Path, name: str) -> Path | None:
    """Where a tar member may land under root; None for absolute names, any '..', or folders nested
    deeper than the shared walker reads (harness.walk.MAX_DEPTH; the volume's own folder is one more)."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or len(parts) > MAX_DEPTH + 2:
        return None
    return root.joinpath(*[p for p in parts if p != "."])


def copy_out(holder, path: str, host_dir: Path, cap: int) -> list[str]:
    """The holder's view of a capped tmpfs volume -> the run directory; notes on what was refused.

    Only regular files and folders are copied (links, devices, absolute or `..` names are refused),
    up to the volume's cap counted in apparent bytes and MAX_FILES entries.
    """
    notes: list[str] = []
    host_dir.mkdir(parents=True, exist_ok=True)
    try:
        chunks, _ = holder.get_archive(path)
    except docker.errors.APIError as exc:
        notes.append(f"could not copy {path} out of the container: {exc.explanation or exc}")
        return notes
    total, files, skipped, over = 0, 0, [], []
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=host_dir.parent))
    try:
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), 2**20), mode="r|") as tar:
            for member in tar:
                target = _safe_target(staging, member.name)
                if target is None or not (member.isfile() or member.isdir()):
                    skipped.append(member.name)  # links, devices, fifos, odd names, nested too deep
                    continue
                files += 1
                # Apparent sizes count: a sparse file takes no room in the tmpfs, but its copy
                # would take every byte on the host.
                if files > MAX_FILES or (member.isfile() and total + member.size > cap):
                    over.append(member.name)
                    continue
                try:
                    if member.isdir():
                        target.mkdir(mode=0o755, parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    with open(target, "wb") as out:
                        shutil.copyfileobj(source, out, 2**20)
                except OSError:  # a name too long for the host, say: the entry's choice, never the harness's crash
                    skipped.append(member.name)
                    continue
                target.chmod(0o644)  # readable by uid 10001 in the next phase, never executable
                total += member.size
        copied = staging / Path(path).name
        for top in copied.iterdir() if copied.is_dir() else []:
            shutil.move(str(top), host_dir / top.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if skipped:
        notes.append(
            f"not copied from {path} (only regular files count): " + ", ".join(text.file_name(n) for n in skipped[:5])
        )
    if over:
        notes.append(
            f"not copied from {path}: {len(over)} file(s) past its cap of {cap} bytes (apparent size, so "
            f"sparse files count in full) or {MAX_FILES} files, e.g. " + ", ".join(text.file_name(n) for n in over[:3])
        )
    if total >= cap - 2 * 2**20:
        notes.append(
            f"{path} is full: it holds {total} bytes of its {cap}-byte cap; writes past the cap failed "
            "with 'No space left on device'"
        )
    return notes
