"""The members of a zip or a tar written by the harness itself: each checked, every byte counted.

harness.unpack turns an entry's archive or repository into a folder with these. Every member is
checked before a byte of it is written: its name (relative, no `..`, no NUL, not over-long, not
twice), its type (regular files and folders only: links, devices and pipes refuse the entry) and
the entry's bounds (harness.contract: bytes, files and folders, depth), counted while the bytes
are written, never taken from a header. An archive may also expand to at most MAX_RATIO times its
own size past RATIO_FLOOR, so a bomb is refused long before the byte cap. Each refusal is one
ContractError that names the member, the problem and the fix.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.contract import DIGEST_CHUNK, MAX_ENTRY_BYTES, MAX_ENTRY_DEPTH, MAX_ENTRY_FILES
from harness.errors import ContractError
from harness.text import clean

MAX_RATIO = 200  # how many times its own size an archive may expand to ...
RATIO_FLOOR = 64 * 2**20  # ... past this much (a small entry of text or zeros compresses well and is no bomb)
NAME_MAX = 255  # bytes in one part of a member's name (Linux's limit)
PATH_MAX = 1024  # bytes in a member's whole name
HEADER_BYTES = 16 * 2**20  # what a tar's headers may add to its files' bytes (long names, pax records)
LEFT_OUT = "__MACOSX"  # top-level folder of resource forks that a Mac's Finder adds to a zip
PACK_FIX = "pack the entry again with relative names and only files and folders (zip -r entry.zip entry/)"


@dataclass(frozen=True)
class Limits:
    """The bounds of an unpacked entry: those of a folder entry (harness.contract), and the ratio."""

    max_bytes: int = MAX_ENTRY_BYTES
    max_members: int = MAX_ENTRY_FILES
    max_depth: int = MAX_ENTRY_DEPTH
    max_ratio: float = MAX_RATIO
    ratio_floor: int = RATIO_FLOOR


# --- writing members ----------------------------------------------------------------------


class Over(Exception):
    """A bound was passed while reading (raised through tarfile and zipfile, which catch ValueError)."""


class Tree:
    """Writes an archive's members below `root`, each name and type checked, every byte counted."""

    def __init__(self, root: Path, shown: str, limits: Limits):
        self.root, self.shown, self.limits = root, shown, limits
        self.cap = limits.max_bytes  # lowered by `expect_ratio` for a compressed archive
        self.ratio_of: int | None = None  # the archive's size, when the ratio sets the cap
        self.kinds: dict[tuple[str, ...], str] = {}  # name parts -> "file" | "folder"
        self.named: set[tuple[str, ...]] = set()  # folders the archive names (not only files inside them)
        self.members = 0  # files and folders made, as a folder entry's walk counts them
        self.steps = 0  # members read from the archive
        self.bytes = 0
        os.mkdir(root, 0o700)

    def expect_ratio(self, archive_bytes: int) -> None:
        by_ratio = max(self.limits.ratio_floor, int(self.limits.max_ratio * archive_bytes))
        if by_ratio < self.cap:
            self.cap, self.ratio_of = by_ratio, archive_bytes

    def refuse(self, name: str, problem: str, fix: str = PACK_FIX) -> ContractError:
        return ContractError(f"{self.shown}: {clean(name, 120)} {problem}; {fix}")

    def too_large(self) -> ContractError:
        if self.ratio_of is not None:
            return ContractError(
                f"{self.shown} expands to more than {self.cap // 2**20} MiB, over {self.limits.max_ratio:g} times its "
                f"own {self.ratio_of} bytes: a decompression bomb, or data that does not belong in an entry; keep "
                "large data out of the entry (the harness gives every phase its data)"
            )
        return ContractError(
            f"{self.shown}: its files add up to more than {self.cap // 2**20} MiB; keep large data "
            "out of the entry (the harness gives every phase its data)"
        )

    def too_many(self) -> ContractError:
        return ContractError(
            f"{self.shown} holds more than {self.limits.max_members} files and folders; an entry "
            "is code and a small model: remove data, caches and virtual environments"
        )

    def count(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise self.too_many()

    def step(self) -> None:
        """One more member read: as many as the names they make, and one for the root (`./`)."""
        self.steps += 1
        if self.steps > self.limits.max_members + 1:
            raise self.too_many()

    def parts(self, name: str) -> tuple[str, ...]:
        """The member's name as folder names below the root; () for the root itself."""
        if "\0" in name:
            raise self.refuse(name, "has a NUL character in its name")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[/\\]", name):
            raise self.refuse(name, "has an absolute name, which would be written outside the entry")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            raise self.refuse(name, "leads out of the entry (`..` in its name)")
        if len(os.fsencode(name)) > PATH_MAX or any(len(os.fsencode(p)) > NAME_MAX for p in parts):
            raise self.refuse(
                name,
                f"has a name over {PATH_MAX} bytes, or a part of it over {NAME_MAX}",
                "shorten the names of the entry's files and folders",
            )
        if len(parts) > self.limits.max_depth + 1:
            raise self.refuse(name, f"is nested more than {self.limits.max_depth} folders deep", "flatten the entry")
        return parts

    def folder(self, name: str, parts: tuple[str, ...], named: bool = True) -> None:
        """Make the folder and those above it; `named`: the archive names it (else a file inside it does)."""
        if named and parts in self.named:
            raise self.refuse(name, "appears twice in the archive", "pack each name once")
        for i in range(1, len(parts) + 1):
            key = parts[:i]
            kind = self.kinds.get(key)
            if kind == "file":
                raise self.refuse("/".join(key), "is both a file and a folder in the archive", "pack each name once")
            if kind is None:
                if i > self.limits.max_depth:
                    raise self.refuse(
                        name, f"is nested more than {self.limits.max_depth} folders deep", "flatten the entry"
                    )
                self.count()
                os.mkdir(self.root.joinpath(*key), 0o700)
                self.kinds[key] = "folder"
        if named and parts:
            self.named.add(parts)

    def file(self, name: str, parts: tuple[str, ...], content: BinaryIO, declared: int, executable: bool) -> None:
        if not parts:
            raise self.refuse(name, "is a file without a name")
        if parts in self.kinds:
            raise self.refuse(name, "appears twice in the archive", "pack each name once")
        self.folder(name, parts[:-1], named=False)
        self.count()
        self.kinds[parts] = "file"
        if self.bytes + declared > self.cap:  # said by the header: refused before a byte is read
            raise self.too_large()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(self.root.joinpath(*parts), flags, 0o700 if executable else 0o600), "wb") as out:
            while chunk := content.read(DIGEST_CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.cap:  # counted, not taken from the header
                    raise self.too_large()
                out.write(chunk)

    def entry_root(self) -> Path:
        """The single top-level folder when the archive holds only that, else the archive's root."""
        children = list(self.root.iterdir())
        if len(children) == 1 and children[0].is_dir() and not children[0].is_symlink():
            return children[0]
        return self.root


# --- zip and tar --------------------------------------------------------------------------


def unpack_zip(path: Path, tree: Tree) -> None:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > tree.limits.max_members + 1:  # said by the central directory; counted again below
            raise tree.too_many()
        if sum(info.file_size for info in infos) > tree.cap:
            raise tree.too_large()
        for info in infos:
            tree.step()
            parts = tree.parts(info.filename)
            if parts[:1] == (LEFT_OUT,):
                continue
            mode = info.external_attr >> 16 if info.create_system == 3 else 0  # 3: made on Unix, with a mode
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                raise tree.refuse(
                    info.filename,
                    "is a symbolic link; an archived entry holds only files and folders",
                    "replace the link with the file it points to",
                )
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise tree.refuse(
                    info.filename, "is a device, pipe or socket, not a file or a folder", "remove it from the entry"
                )
            if info.is_dir() or kind == stat.S_IFDIR:
                tree.folder(info.filename, parts)
                continue
            if info.flag_bits & 0x1:
                raise tree.refuse(info.filename, "is encrypted", "pack the entry without a password")
            with archive.open(info) as content:  # zipfile stops at the stated size and checks the CRC
                tree.file(info.filename, parts, content, info.file_size, bool(mode & stat.S_IXUSR))


class _Bounded:
    """A read-only stream that refuses (raises Over) a read that could take it past `limit` bytes in
    all, before reading (tarfile reads a stream in blocks of 10 KiB, so the limit is never near)."""

    def __init__(self, stream: BinaryIO, limit: int):
        self.stream, self.limit, self.read_bytes = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or self.read_bytes + size > self.limit:
            raise Over()
        data = self.stream.read(size)
        self.read_bytes += len(data)
        return data


def decompressed(raw: BinaryIO) -> BinaryIO:
    """The tar stream inside gzip, bzip2 or xz (by their magic numbers), or the file itself."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, "rb")
    return raw


class _BoundedHeaders(tarfile.TarInfo):
    """A member whose long name or pax records are over HEADER_BYTES is refused before they are read
    (tarfile would read them whole into memory)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in LONG_HEADERS and self.size > HEADER_BYTES:
            raise Over()
        return super()._proc_member(tarfile_)  # type: ignore[misc]


DATA_FILTER = getattr(tarfile, "data_filter", None)
LONG_HEADERS = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


def unpack_tar(stream: BinaryIO, tree: Tree) -> None:
    """A tar read as a stream (never seeked), through _Bounded: the files' bytes plus the headers'."""
    bounded = _Bounded(stream, tree.cap + 1024 * tree.limits.max_members + HEADER_BYTES)
    with tarfile.open(fileobj=bounded, mode="r|", tarinfo=_BoundedHeaders) as archive:  # type: ignore[call-overload]
        for member in archive:
            tree.step()
            parts = tree.parts(member.name)
            if parts[:1] == (LEFT_OUT,):
                continue
            if member.issym() or member.islnk():
                what = "a symbolic link" if member.issym() else "a hard link"
                raise tree.refuse(
                    member.name,
                    f"is {what}; an archived entry holds only files and folders",
                    "replace the link with the file it points to",
                )
            if member.ischr() or member.isblk() or member.isfifo():
                what = "a named pipe (FIFO)" if member.isfifo() else "a device file"
                raise tree.refuse(member.name, f"is {what}, not a file or a folder", "remove it from the entry")
            if not (member.isreg() or member.isdir()):
                raise tree.refuse(member.name, "is not a file or a folder", "remove it from the entry")
            if DATA_FILTER is not None:  # Python's own rules for unpacking data (3.11.4+), besides those above
                try:
                    DATA_FILTER(member, str(tree.root))
                except tarfile.TarError as exc:  # its FilterError
                    raise tree.refuse(
                        member.name, f"is refused by Python's tar data filter ({clean(exc, 120)})"
                    ) from None
            if member.isdir():
                tree.folder(member.name, parts)
                continue
            content = archive.extractfile(member)
            assert content is not None  # a regular file always has content
            tree.file(member.name, parts, content, member.size, bool(member.mode & stat.S_IXUSR))
