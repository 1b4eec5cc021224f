"""Entries that arrive as archives or repositories: unpacked, bounded, into a private folder.

An entry source is one of:

  * a folder: used as it is (harness.staging copies it for the run);
  * a zip (.zip) or a tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz): the archive is first copied into
    the private folder (its sha256 is of the bytes that are unpacked), then each member is written
    by the harness itself, never by an extractor that follows the archive's word;
  * a local git repository: a bare repository's folder, `PATH@REF` (bare or not), or
    `git+file:///PATH[@REF]`. The commit is fetched (depth 1, no hooks, no submodules, no network)
    into a fresh repository of the harness's, whose config and hooks are its own, and its tree is
    read as a tar through the same unpacker. The repository's own code never runs. A folder that is
    a non-bare repository is graded as a folder (its working files) unless a ref is named.

Each member is checked and written by harness.archives (names, types, the entry's bounds and a
compression ratio, counted while the bytes are written). A refusal is one ContractError naming the
problem and the fix, and removes the private folder: nothing is left behind.

A single top-level folder in the archive is the entry (`zip -r entry.zip entry/`); otherwise the
archive's root is. A Mac's `__MACOSX/` resource forks are left out.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness.archives import HEADER_BYTES, Limits, Over, Tree, decompressed, unpack_tar, unpack_zip
from harness.contract import DIGEST_CHUNK, MANIFEST
from harness.errors import ContractError
from harness.model import EntrySource
from harness.text import clean

GIT_TIMEOUT_S = 300.0
ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
REF_PATTERN = re.compile(r"^(?!.*\.\.)(?!.*//)[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$")
REMOTE_PATTERN = re.compile(r"^([a-z][a-z0-9+.-]*:/|[\w.-]+@[\w.-]+:)", re.I)  # :/ too: Path() folds ://
UNPACKED_PREFIX = ".unpack-"  # a run's private copy beside its run directory (removed when it closes)
SOURCES_HELP = "a folder, a .zip, a .tar.gz (.tar, .tgz, .tar.bz2, .tar.xz) or a local git repository (PATH@REF)"


@dataclass(frozen=True)
class Source:
    """An entry source as given, parsed (nothing read yet)."""

    kind: str  # folder | zip | tar | git
    path: Path  # the folder, the archive or the repository, resolved
    ref: str | None = None  # git: None is HEAD

    @property
    def location(self) -> str:
        """The source as a run records it: a resolved path, or git+file:///PATH[@REF]."""
        if self.kind != "git":
            return str(self.path)
        return f"git+file://{self.path}" + (f"@{self.ref}" if self.ref else "")


def source_name(location: str | Path) -> str:
    """A name for an entry whose manifest cannot be read: its folder's, archive's or repository's."""
    name = os.path.basename(str(location).rstrip("/"))
    name = name.rpartition("@")[0] or name if str(location).startswith("git+file:") else name
    for suffix in (*TAR_SUFFIXES, *ZIP_SUFFIXES, ".git"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def is_archive(path: Path) -> bool:
    """A file named like an archive the harness unpacks (a queue folder's entries are these and folders)."""
    return path.is_file() and path.name.lower().endswith((*ZIP_SUFFIXES, *TAR_SUFFIXES))


def _is_bare_repository(path: Path) -> bool:
    return (
        (path / "HEAD").is_file()
        and (path / "objects").is_dir()
        and (path / "refs").is_dir()
        and not (path / MANIFEST).exists()
    )


def _git_source(path_text: str, ref: str | None, shown: str) -> Source:
    path = Path(path_text)
    if not path.is_absolute():
        raise ContractError(f"{shown}: a git+file URL needs an absolute path (git+file:///PATH@REF)")
    if not path.is_dir():
        raise ContractError(f"{shown}: no repository at {clean(path, 300)}; pass a local git repository (PATH@REF)")
    if ref is not None and not REF_PATTERN.fullmatch(ref):
        raise ContractError(
            f"{shown}: {clean(ref, 60)!r} is not a ref the harness fetches; name a branch, a tag or a "
            "full commit id (letters, digits, . _ / -)"
        )
    return Source("git", Path(os.path.realpath(path)), ref)


def parse_source(source: str | Path) -> Source:
    """What kind of entry source `source` is, without reading it. Raises ContractError (with the fix)
    for what does not exist, a remote URL (never fetched) and a file that is not an archive."""
    text = str(source)
    shown = clean(text, 300)
    if "\0" in text:
        raise ContractError(f"{shown}: a NUL character in the entry's name; pass {SOURCES_HELP}")
    if text.startswith(("git+file:", "file:")):  # Path() folds git+file:///x to git+file:/x: both are taken
        location = urllib.parse.unquote(text.split(":", 1)[1])
        location = "/" + location.lstrip("/") if location.startswith("//") else location
        repo, at, ref = location.rpartition("@")  # a ref may hold `/` (feature/x); the repository is a folder
        return _git_source(repo, ref, shown) if at and os.path.isdir(repo) else _git_source(location, None, shown)
    path = Path(text)
    if not path.exists() and REMOTE_PATTERN.match(text):
        raise ContractError(
            f"{shown} is a remote location; the harness does not fetch entries over the network: clone "
            "or download it here and pass the local folder, archive or repository (PATH@REF)"
        )
    if path.is_dir():
        if _is_bare_repository(path):
            return Source("git", Path(os.path.realpath(path)))
        return Source("folder", Path(os.path.realpath(path)))
    if path.is_file():
        lower = path.name.lower()
        kind = "zip" if lower.endswith(ZIP_SUFFIXES) else "tar" if lower.endswith(TAR_SUFFIXES) else None
        if kind is None:
            raise ContractError(f"{shown} is a file but not an archive the harness reads; pass {SOURCES_HELP}")
        return Source(kind, Path(os.path.realpath(path)))
    if path.exists():
        raise ContractError(f"{shown} is neither a folder nor a regular file; pass {SOURCES_HELP}")
    repo, at, ref = text.rpartition("@")
    if at and repo and Path(repo).is_dir():
        return _git_source(os.path.abspath(repo), ref, shown)
    raise ContractError(f"entry {shown} does not exist; pass {SOURCES_HELP}")


def describe(source: str | Path) -> str:
    """The source as a run and a grading plan record it (the same text for the same source); a source
    that cannot be parsed is named by its absolute path (opening it says why it is refused)."""
    try:
        return parse_source(source).location
    except ContractError:
        return os.path.abspath(source)


# --- the unpacked entry -------------------------------------------------------------------


class Unpacked:
    """An entry source as a folder: the folder itself, or a private unpacked copy removed on close."""

    def __init__(self, source: Source, path: Path, origin: EntrySource | None, work: Path | None):
        self.source, self.path, self.origin, self._work = source, path, origin, work

    @property
    def location(self) -> str:
        """The source as a run records it (`submission.path`)."""
        return self.source.location

    def close(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def __enter__(self) -> Unpacked:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(source: str | Path, parent: Path | None = None, limits: Limits | None = None) -> Unpacked:
    """The entry at `source` as a folder. A folder is used as it is; an archive or a repository is
    unpacked into a new private folder (mode 0700) under `parent` (the system's temporary folder
    when None), removed by close(). Raises ContractError when the source is refused; nothing is
    left behind then."""
    parsed = parse_source(source)
    if parsed.kind == "folder":
        return Unpacked(parsed, parsed.path, None, None)
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=UNPACKED_PREFIX if parent is not None else "haet-unpack-", dir=parent))
    try:
        tree = Tree(work / "entry", clean(parsed.location, 300), limits or Limits())
        if parsed.kind == "git":
            origin = _unpack_git(parsed, work, tree)
        else:
            origin = _unpack_archive(parsed, work, tree)
        return Unpacked(parsed, tree.entry_root(), origin, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


# --- zip and tar --------------------------------------------------------------------------


def _copy_archive(source: Source, work: Path, tree: Tree) -> tuple[Path, str]:
    """The archive copied into the private folder, with the sha256 of what was copied: what is
    unpacked is what the digest names, whatever happens to the original meanwhile."""
    shown = clean(source.location, 300)
    copy = work / f"archive.{source.kind}"  # its compression is told by its first bytes, not by its name
    digest = hashlib.sha256()
    try:
        fd = os.open(source.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ContractError(f"{shown} cannot be read ({clean(exc.strerror or exc, 100)}); make it readable") from None
    with os.fdopen(fd, "rb") as original, open(copy, "xb") as out:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContractError(f"{shown} is not a regular file; pass {SOURCES_HELP}")
        total = 0
        while chunk := original.read(DIGEST_CHUNK):
            total += len(chunk)
            if total > tree.limits.max_bytes:
                raise ContractError(
                    f"{shown} is over {tree.limits.max_bytes // 2**20} MiB, the most an entry may "
                    "hold; keep large data out of the entry"
                )
            digest.update(chunk)
            out.write(chunk)
    return copy, digest.hexdigest()


def _unpack_archive(source: Source, work: Path, tree: Tree) -> EntrySource:
    copy, sha256 = _copy_archive(source, work, tree)
    tree.expect_ratio(copy.stat().st_size)
    kind = "zip archive" if source.kind == "zip" else "tar archive"
    try:
        if source.kind == "zip":
            unpack_zip(copy, tree)
        else:
            with open(copy, "rb") as raw:
                unpack_tar(decompressed(raw), tree)
    except Over:
        raise tree.too_large() from None
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        OSError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise ContractError(f"{tree.shown} cannot be read as a {kind} ({clean(exc, 200)}); pack it again") from None
    return EntrySource(kind=source.kind, location=source.location, sha256=sha256)


# --- git ------------------------------------------------------------------------------------


def _git_env(work: Path) -> dict[str, str]:
    """No configuration but the harness's own: no system or user config (no credential helpers, no
    aliases, no filters), no prompts, and only the local file transport."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(work),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "file",
        "GIT_PROTOCOL_FROM_USER": "0",
    }


GIT_OPTIONS = (
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.file.allow=always",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "transfer.fsckObjects=true",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "submodule.recurse=false",
    "-c",
    "core.attributesFile=/dev/null",
)


def _folder_bytes(folder: Path) -> int:
    return sum(os.lstat(os.path.join(top, f)).st_size for top, _, files in os.walk(folder) for f in files)


def _git(args: list[str], work: Path, shown: str, watch: Path | None = None, limit: int = 0) -> str:
    """Run git (the harness's own repository, or a fetch from the entry's), bounded in time and, with
    `watch`, in the bytes written under it. Its output, or a ContractError with git's own words."""
    proc = subprocess.Popen(
        ["git", *GIT_OPTIONS, *args],
        cwd=work,
        env=_git_env(work),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + GIT_TIMEOUT_S
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise ContractError(
                        f"{shown}: git took over {GIT_TIMEOUT_S:g}s to read the repository; "
                        "pass a smaller repository, or an archive of the entry"
                    ) from None
                if watch is not None and _folder_bytes(watch) > limit:
                    raise ContractError(
                        f"{shown}: the commit holds more than {limit // 2**20} MiB; keep large data "
                        "out of the entry (the harness gives every phase its data)"
                    ) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        said = " ".join(err.decode("utf-8", "replace").split())
        raise ContractError(
            f"{shown}: git could not read it ({clean(said, 300)}); pass a local git repository and a "
            "branch, a tag or a full commit id that it holds (PATH@REF)"
        )
    return out.decode("utf-8", "replace").strip()


def _unpack_git(source: Source, work: Path, tree: Tree) -> EntrySource:
    shown = tree.shown
    repo = work / "repo.git"
    _git(["init", "-q", "--bare", "--template=", str(repo)], work, shown)
    # The entry's repository serves the commit (upload-pack, which runs none of its hooks); depth 1: its history
    # is not the entry's, and a pack of one commit is bounded like the files it holds.
    _git(
        [
            "--git-dir",
            str(repo),
            "fetch",
            "-q",
            "--depth",
            "1",
            "--no-tags",
            "--no-recurse-submodules",
            str(source.path),
            source.ref or "HEAD",
        ],
        work,
        shown,
        watch=repo,
        limit=tree.limits.max_bytes + tree.limits.max_bytes // 8 + 2**20,
    )
    commit = _git(["--git-dir", str(repo), "rev-parse", "--verify", "FETCH_HEAD^{commit}"], work, shown)
    proc = subprocess.Popen(
        ["git", *GIT_OPTIONS, "--git-dir", str(repo), "archive", "--format=tar", commit],
        cwd=work,
        env=_git_env(work),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        unpack_tar(proc.stdout, tree)
        if len(proc.stdout.read(HEADER_BYTES)) >= HEADER_BYTES:  # only a tar's padding may follow its last member
            raise Over()
        proc.wait(timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ContractError(
            f"{shown}: git took over {GIT_TIMEOUT_S:g}s to write commit {commit[:12]}; pass a "
            "smaller repository, or an archive of the entry"
        ) from None
    except Over:
        raise tree.too_large() from None
    except tarfile.TarError as exc:
        raise ContractError(f"{shown}: git's archive of {commit[:12]} cannot be read ({clean(exc, 200)})") from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if proc.returncode != 0:
        raise ContractError(
            f"{shown}: git could not write the files of commit {commit[:12]} (exit {proc.returncode}); "
            "pass a repository that git can read"
        )
    return EntrySource(kind="git", location=source.location, commit=commit, ref=source.ref or "HEAD")
