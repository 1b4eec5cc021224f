"""Entries handed over as archives or repositories (harness/unpack.py): a zip, a tar.gz and a git
repository grade like the same entry as a folder; a hostile archive is refused with one message,
and nothing is written outside the private folder it was being unpacked into."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.archives import Limits, Tree
from harness.contract import submission_digest
from harness.errors import ContractError
from harness.organizer.grade import find_entries
from harness.organizer.rundirs import GradeError
from harness.unpack import describe, open_source, parse_source
from tests.helpers import CENTROID, copy_entry, grade_args, read_json, run_harness, small_run_options

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "a",
    "GIT_AUTHOR_EMAIL": "a@example.com",
    "GIT_COMMITTER_NAME": "a",
    "GIT_COMMITTER_EMAIL": "a@example.com",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout.strip()


def entry_files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if "__pycache__" not in p.parts)


def zip_entry(src: Path, dest: Path, top: str | None = "centroid") -> Path:
    """`zip -r dest centroid/`: folders named, files deflated."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in entry_files(src):
            rel = path.relative_to(src).as_posix()
            archive.write(path, f"{top}/{rel}" if top else rel)
    return dest


def tar_entry(src: Path, dest: Path, top: str | None = "centroid") -> Path:
    with tarfile.open(dest, "w:gz") as archive:
        for path in entry_files(src):
            rel = path.relative_to(src).as_posix()
            archive.add(path, f"{top}/{rel}" if top else rel, recursive=False)
    return dest


def git_entry(src: Path, repo: Path) -> str:
    """A repository whose one commit holds the entry at its root; returns the commit."""
    copy_entry(src, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "entry")
    return git(repo, "rev-parse", "HEAD")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- the same entry, however it arrives --------------------------------------------------------


def test_a_zip_a_tar_and_a_repository_unpack_to_the_folders_files(tmp_path):
    folder = copy_entry(CENTROID, tmp_path / "centroid")
    digest = submission_digest(folder)
    commit = git_entry(CENTROID, tmp_path / "repo")
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(tmp_path / "repo"), str(tmp_path / "bare.git")], check=True, env=GIT_ENV
    )
    zipped = zip_entry(folder, tmp_path / "centroid.zip")
    flat = zip_entry(folder, tmp_path / "flat.zip", top=None)  # the archive's root is the entry
    tarred = tar_entry(folder, tmp_path / "centroid.tar.gz")
    repo = tmp_path / "repo"
    sources = {
        zipped: ("zip", sha256(zipped)),
        flat: ("zip", sha256(flat)),
        tarred: ("tar", sha256(tarred)),
        f"{repo}@main": ("git", commit),
        f"git+file://{repo}@{commit}": ("git", commit),
        tmp_path / "bare.git": ("git", commit),
    }
    work = tmp_path / "work"
    for source, (kind, seal) in sources.items():
        with open_source(source, work) as unpacked:
            assert unpacked.path.is_relative_to(work)
            assert submission_digest(unpacked.path) == digest, source
            assert unpacked.origin.kind == kind and seal in (unpacked.origin.sha256, unpacked.origin.commit)
            (private,) = work.iterdir()
            assert stat.S_IMODE(private.stat().st_mode) == 0o700, "private while it lives"
        assert not any(work.iterdir()), "the unpacked copy is removed when closed"
    with open_source(folder) as same:  # a folder is used as it is, never copied here
        assert same.path == folder.resolve() and same.origin is None


def test_a_mac_zip_leaves_its_resource_forks_out(tmp_path):
    archive = zip_entry(CENTROID, tmp_path / "centroid.zip")
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("__MACOSX/centroid/._train.py", b"\0\5\26\7")
    with open_source(archive) as unpacked:
        assert unpacked.path.name == "centroid" and submission_digest(unpacked.path) == submission_digest(CENTROID)


def test_zip_tar_and_git_entries_grade_like_the_folder(tmp_path):
    folder = copy_entry(CENTROID, tmp_path / "centroid")
    commit = git_entry(CENTROID, tmp_path / "repo")
    zipped = zip_entry(folder, tmp_path / "centroid.zip")
    tarred = tar_entry(folder, tmp_path / "centroid.tgz")
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as z:
        z.writestr("submission.yaml", "name: hostile\ntrain: python t.py\npredict: python p.py\n")
        z.writestr(zipfile.ZipInfo("../../escaped.py"), "print('out')\n")
    out = tmp_path / "grading"
    repository = f"{tmp_path / 'repo'}@main"
    proc = run_harness(*grade_args(tmp_path, out, folder, zipped, tarred, repository, hostile, repeats=1, budget=10))
    assert proc.returncode == 0, proc.stderr
    runs = {
        e: read_json(out / e / "seed-0" / "result.json") for e in ("centroid", "centroid-2", "centroid-3", "centroid-4")
    }
    assert {r["status"] for r in runs.values()} == {"scored"}
    assert len({r["accuracy"] for r in runs.values()}) == 1, "the same entry scores the same, however it arrived"
    assert {r["submission"]["sha256"] for r in runs.values()} == {submission_digest(folder)}
    sources = {r["submission"]["path"]: r["submission"]["source"] for r in runs.values()}
    assert sources[str(folder)] is None
    assert sources[str(zipped)] == {
        "kind": "zip",
        "location": str(zipped),
        "sha256": sha256(zipped),
        "commit": None,
        "ref": None,
    }
    assert sources[str(tarred)]["sha256"] == sha256(tarred)
    assert sources[f"git+file://{tmp_path / 'repo'}@main"]["commit"] == commit
    refused = read_json(out / "hostile" / "entry.json")
    assert "leads out of the entry" in refused["invalid"] and not (tmp_path.parent / "escaped.py").exists()
    assert not list(out.rglob(".unpack-*")), "every unpacked copy is removed"

    # The archive's digest and the commit are on the leaderboard; a folder, and an archive refused
    # before it was read, have none.
    digests = {"centroid": "", "centroid-2": sha256(zipped), "centroid-3": sha256(tarred), "centroid-4": commit}
    digests["hostile"] = ""
    checked = {e: read_json(out / e / "entry.json")["source"] for e in digests}
    assert checked["centroid"] is None and checked["hostile"] is None
    assert checked["centroid-2"]["sha256"] == sha256(zipped) and checked["centroid-4"]["commit"] == commit
    board = {r["entry"]: r for r in csv.DictReader((out / "leaderboard.csv").open())}
    assert {e: board[e]["source_digest"] for e in digests} == digests
    assert [board[e]["source_kind"] for e in digests] == ["", "zip", "tar", "git", ""]
    runs = {r["entry"]: r for r in csv.DictReader((out / "runs.csv").open())}
    assert {e: runs[e]["source_digest"] for e in digests} == digests
    md = {line.split(" | ")[2]: line for line in (out / "leaderboard.md").read_text().splitlines() if " | " in line}
    assert md["centroid-2 (centroid.zip/)"].endswith(f"| zip {sha256(zipped)[:12]} |")
    assert md["centroid-4 (repo@main/)"].endswith(f"| git {commit[:12]} |")
    assert md["centroid"].endswith("| — |") and md["hostile (hostile.zip/)"].endswith("| — |")
    cells = (out / "leaderboard.html").read_text().split('<div class="entry">')[1:]
    html = {cell.split("<")[0]: cell.split("</td>")[0] for cell in cells}
    assert f'title="{sha256(zipped)}">zip {sha256(zipped)[:12]}</div>' in html["centroid-2"]
    assert f'title="{commit}">git {commit[:12]}</div>' in html["centroid-4"]
    assert html["centroid"].count("<div") == html["hostile"].count("<div") == 1, "the path, and no digest line"


def test_a_queue_holds_folders_and_archives(tmp_path):
    queue = tmp_path / "queue"
    copy_entry(CENTROID, queue / "centroid")
    zip_entry(CENTROID, queue / "centroid.zip")
    tar_entry(CENTROID, queue / "centroid.tar.gz")
    (queue / "notes.txt").write_text("not an entry")
    zip_entry(CENTROID, queue / ".hidden.zip")
    found = find_entries([], queue)
    assert [p.name for p in found] == ["centroid", "centroid.tar.gz", "centroid.zip"]
    with pytest.raises(GradeError, match="does not fetch entries over the network"):
        find_entries([Path("https://example.com/entry.zip")], None)


def test_run_and_validate_take_an_archive(tmp_path):
    tarred = tar_entry(CENTROID, tmp_path / "centroid.tar.gz", top=None)
    proc = run_harness(
        "run",
        "--submission",
        tarred,
        *small_run_options(tmp_path, budget=10),
        "--runs-dir",
        tmp_path / "runs",
        "--run-id",
        "tarred",
    )
    assert proc.returncode == 0, proc.stderr
    result = read_json(tmp_path / "runs" / "tarred" / "result.json")
    assert result["submission"]["sha256"] == submission_digest(CENTROID)
    assert result["submission"]["source"]["sha256"] == sha256(tarred)
    assert set(os.listdir(tmp_path / "runs")) == {"tarred"}, "the unpacked copy beside the run is gone"
    checked = run_harness(
        "validate", zip_entry(CENTROID, tmp_path / "c.zip"), "--json", "--runner", "local", "--smoke-budget", "8"
    )
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["ok"] and report["name"] == "centroid", report


# --- hostile archives ------------------------------------------------------------------------


def _zip(path: Path, *members: tuple[zipfile.ZipInfo | str, bytes]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        warnings.simplefilter("ignore")  # a duplicate name, on purpose
        for info, data in members:
            z.writestr(info, data)
    return path


def _tar(path: Path, *members: tuple[tarfile.TarInfo, bytes | None], **options) -> Path:
    with tarfile.open(path, "w:gz", **options) as t:
        for info, data in members:
            info.size = len(data or b"")
            t.addfile(info, io.BytesIO(data) if data else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _zip_link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode in external_attr counts
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _encrypted(path: Path) -> Path:
    """A zip whose members say they are encrypted (bit 0 of each header's flags; zipfile writes none)."""
    data = bytearray(_zip(path, MANIFEST).read_bytes())
    for signature, flags_at in ((b"PK\3\4", 6), (b"PK\1\2", 8)):
        at = data.find(signature)
        data[at + flags_at] |= 0x1
    path.write_bytes(bytes(data))
    return path


ZEROS = bytes(8 * 2**20)  # compresses to a few KiB
SMALL = Limits(max_bytes=2**20)  # a bomb over the cap without writing gigabytes
MANIFEST = ("entry/submission.yaml", b"name: hostile\ntrain: python t.py\npredict: python p.py\n")

HOSTILE = {  # name: (builder(tmp_path, archive path) -> archive, limits, the one message)
    "zip-slip": (
        lambda tmp, p: _zip(p, MANIFEST, (zipfile.ZipInfo("../../../escaped"), b"x")),
        Limits(),
        "leads out of the entry",
    ),
    "zip-absolute": (
        lambda tmp, p: _zip(p, MANIFEST, (zipfile.ZipInfo(str(tmp / "abs-escaped")), b"x")),
        Limits(),
        "has an absolute name",
    ),
    "zip-symlink": (
        lambda tmp, p: _zip(p, MANIFEST, (_zip_link("entry/passwd"), b"/etc/passwd")),
        Limits(),
        "is a symbolic link",
    ),
    "zip-duplicate": (
        lambda tmp, p: _zip(p, MANIFEST, ("entry/t.py", b"1"), ("entry/t.py", b"2")),
        Limits(),
        "appears twice",
    ),
    "zip-file-and-folder": (
        lambda tmp, p: _zip(p, MANIFEST, ("entry/t", b"1"), ("entry/t/x.py", b"2")),
        Limits(),
        "is both a file and a folder",
    ),
    "zip-encrypted": (lambda tmp, p: _encrypted(p), Limits(), "is encrypted"),
    "zip-bomb": (lambda tmp, p: _zip(p, MANIFEST, ("entry/zeros.bin", ZEROS)), SMALL, "more than 1 MiB"),
    "zip-ratio": (
        lambda tmp, p: _zip(p, MANIFEST, ("entry/zeros.bin", ZEROS)),
        Limits(ratio_floor=2**20),
        "times its own",
    ),
    "zip-too-many": (
        lambda tmp, p: _zip(p, MANIFEST, *[(f"entry/{i}.py", b"") for i in range(30)]),
        Limits(max_members=20),
        "more than 20 files and folders",
    ),
    "zip-damaged": (
        lambda tmp, p: p.write_bytes(b"PK\3\4 not really a zip") and p,
        Limits(),
        "cannot be read as a zip archive",
    ),
    "tar-slip": (lambda tmp, p: _tar(p, (_member("entry/../../../escaped"), b"x")), Limits(), "leads out of the entry"),
    "tar-absolute": (
        lambda tmp, p: _tar(p, (_member(str(tmp / "abs-escaped")), b"x")),
        Limits(),
        "has an absolute name",
    ),
    "tar-symlink": (
        lambda tmp, p: _tar(p, (_member("entry/passwd", tarfile.SYMTYPE, linkname="/etc/passwd"), None)),
        Limits(),
        "is a symbolic link",
    ),
    "tar-hardlink": (
        lambda tmp, p: _tar(
            p, (_member("entry/t.py"), b"x"), (_member("entry/u.py", tarfile.LNKTYPE, linkname="entry/t.py"), None)
        ),
        Limits(),
        "is a hard link",
    ),
    "tar-device": (
        lambda tmp, p: _tar(p, (_member("entry/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None)),
        Limits(),
        "is a device file",
    ),
    "tar-fifo": (
        lambda tmp, p: _tar(p, (_member("entry/pipe", tarfile.FIFOTYPE), None)),
        Limits(),
        r"is a named pipe \(FIFO\)",
    ),
    "tar-bomb": (lambda tmp, p: _tar(p, (_member("entry/zeros.bin"), ZEROS)), SMALL, "more than 1 MiB"),
    "tar-ratio": (
        lambda tmp, p: _tar(p, (_member("entry/zeros.bin"), ZEROS)),
        Limits(ratio_floor=2**20),
        "times its own",
    ),
    "tar-too-many": (
        lambda tmp, p: _tar(p, *[(_member(f"entry/{i}.py"), b"") for i in range(30)]),
        Limits(max_members=20),
        "more than 20 files and folders",
    ),
    "tar-too-deep": (
        lambda tmp, p: _tar(p, (_member("entry/a/b/c/d/e.py"), b"")),
        Limits(max_depth=3),
        "nested more than 3 folders deep",
    ),
    "tar-pax-bomb": (
        lambda tmp, p: _tar(
            p, (_member("entry/t.py"), b"x"), format=tarfile.PAX_FORMAT, pax_headers={"comment": "x" * (17 * 2**20)}
        ),
        Limits(),
        "more than",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_with_one_message_and_nothing_written_outside(tmp_path, name):
    build, limits, message = HOSTILE[name]
    suffix = ".zip" if name.startswith("zip") else ".tar.gz"
    archive = build(tmp_path, tmp_path / f"{name}{suffix}")
    work = tmp_path / "runs"
    before = tree(tmp_path)
    with pytest.raises(ContractError, match=message) as refused:
        open_source(archive, work, limits)
    text = str(refused.value)
    assert "\n" not in text and text.startswith(str(archive.resolve())) and ";" in text, "one line: problem; fix"
    assert tree(tmp_path) == before | {"runs"}, "nothing written outside the private folder, which is removed"
    assert not (tmp_path.parent / "escaped").exists()


def test_a_repository_is_read_only_from_this_machine_and_without_links(tmp_path):
    for remote in (
        "https://example.com/entry.git",
        "git+https://example.com/entry.git@main",
        "ssh://host/entry",
        "git@example.com:team/entry.git",
        "git://example.com/entry",
    ):
        with pytest.raises(ContractError, match="does not fetch entries over the network"):
            parse_source(remote)
    repo = tmp_path / "repo"
    git_entry(CENTROID, repo)
    os.symlink("/etc/passwd", repo / "passwd")
    git(repo, "add", "passwd")
    git(repo, "commit", "-q", "-m", "a link")
    with pytest.raises(ContractError, match="passwd is a symbolic link"):
        open_source(f"{repo}@main", tmp_path / "work")
    with pytest.raises(ContractError, match="couldn't find remote ref nope"):
        open_source(f"{repo}@nope", tmp_path / "work")
    with pytest.raises(ContractError, match="is not a ref the harness fetches"):
        parse_source(f"{repo}@--upload-pack=touch /tmp/x")
    assert not any((tmp_path / "work").iterdir())


def test_a_refused_archive_is_one_line_and_exit_2_from_run_and_1_from_validate(tmp_path):
    archive = HOSTILE["tar-symlink"][0](tmp_path, tmp_path / "entry.tar.gz")
    proc = run_harness(
        "run", "--submission", archive, "--runner", "local", "--device", "cpu", "--runs-dir", tmp_path / "runs"
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is a symbolic link" in proc.stderr
    checked = run_harness("validate", archive, "--no-smoke")
    assert checked.returncode == 1 and "is a symbolic link" in checked.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_source_a_run_records_names_the_same_source(tmp_path):
    repo = tmp_path / "repo"
    git_entry(CENTROID, repo)
    url = f"git+file://{repo}@main"
    assert describe(url) == describe(Path(url)) == describe(f"{repo}@main") == url  # Path() folds `///`
    assert describe(tmp_path / "." / "repo") == str(repo)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "..", ".", "", "/", "\\", "\0", "x" * 300, "é", "C:"]), max_size=8))
def test_a_member_name_stays_below_the_root_or_is_refused(tmp_path_factory, pieces):
    name = "".join(pieces)
    root = tmp_path_factory.mktemp("names") / "entry"
    unpacking = Tree(root, "archive", Limits())
    try:
        parts = unpacking.parts(name)
    except ContractError as exc:
        assert "\n" not in str(exc)
        return
    assert all(p not in ("", ".", "..") and "/" not in p and "\0" not in p for p in parts)
    target = os.path.realpath(root.joinpath(*parts))
    assert target == str(root) or target.startswith(str(root) + os.sep)
