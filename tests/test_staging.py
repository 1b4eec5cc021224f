"""The staged copy of an entry (harness/staging.py): what the phases run and the digest reads."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from harness.contract import (
    MAX_ENTRY_DEPTH,
    MAX_ENTRY_FILES,
    ContractError,
    list_entry,
    open_entry_file,
    submission_digest,
)
from harness.staging import stage_entry

MANIFEST = "name: staged\ntrain: python train.py\npredict: python predict.py\n"


def entry(tmp_path, name="entry"):
    root = tmp_path / name
    (root / "lib").mkdir(parents=True)
    (root / "submission.yaml").write_text(MANIFEST)
    (root / "train.py").write_text("print('train')\n")
    (root / "predict.py").write_text("print('predict')\n")
    (root / "lib" / "util.py").write_text("X = 1\n")
    return root


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_copy_is_readable_by_anyone_and_carries_no_special_bits(tmp_path):
    src = entry(tmp_path)
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o4700)  # set-uid, owner only
    os.chmod(src / "train.py", 0o600)
    os.chmod(src / "lib" / "util.py", 0o2640)  # set-gid
    os.chmod(src / "lib", 0o1700)  # sticky, owner only
    os.chmod(src, 0o700)  # a private folder, as home folders and `mktemp -d` make them
    staged = stage_entry(src, tmp_path / "work" / "entry")
    assert mode(staged) == 0o755 and mode(staged / "lib") == 0o755
    assert mode(staged / "run.sh") == 0o755, "the owner's execute bit is kept, set-uid is not"
    assert mode(staged / "train.py") == 0o644 and mode(staged / "lib" / "util.py") == 0o644
    assert (staged / "lib" / "util.py").read_text() == "X = 1\n"
    assert submission_digest(staged) == submission_digest(src)


def test_links_inside_are_resolved_and_caches_left_out(tmp_path):
    src = entry(tmp_path)
    os.symlink("train.py", src / "alias.py")  # a link to a file inside: a copy of that file
    os.symlink("../train.py", src / "lib" / "up.py")
    os.symlink("lib", src / "lib-link")  # a link to a folder inside: a link the harness makes
    os.symlink(".", src / "lib" / "self")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"cache")
    staged = stage_entry(src, tmp_path / "staged")
    assert not (staged / "alias.py").is_symlink() and (staged / "alias.py").read_text() == "print('train')\n"
    assert (staged / "lib" / "up.py").read_text() == "print('train')\n"
    assert os.readlink(staged / "lib-link") == "lib" and os.readlink(staged / "lib" / "self") == "."
    assert (staged / "lib-link" / "util.py").read_text() == "X = 1\n"
    assert not (staged / "__pycache__").exists()
    assert submission_digest(staged) == submission_digest(src)


def test_a_folder_link_is_remade_by_the_harness_never_copied_as_written(tmp_path):
    """The entry's own link text may be absolute or wander out and back: the copy's link is
    computed from where its target is inside the entry."""
    src = entry(tmp_path)
    os.symlink(str(src / "lib"), src / "absolute")  # absolute, but inside the entry
    staged = stage_entry(src, tmp_path / "staged")
    assert os.readlink(staged / "absolute") == "lib"


@pytest.mark.parametrize("trick", ["outside", "nowhere", "fifo", "socket", "device"])
def test_what_cannot_be_copied_refuses_the_entry_before_anything_is_copied(tmp_path, trick):
    src = entry(tmp_path)
    host = tmp_path / "host-secret"
    host.write_text("HOST")
    if trick == "outside":
        os.symlink(host, src / "lib" / "model.bin")
        message = "lib/model.bin is a symlink that points out of the entry"
    elif trick == "nowhere":
        os.symlink(tmp_path / "gone", src / "model.bin")
        message = "model.bin is a symlink that points nowhere"
    elif trick == "fifo":
        os.mkfifo(src / "lib" / "pipe")
        message = r"lib/pipe is a named pipe \(FIFO\); remove it"
    elif trick == "socket":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(src / "sock"))
        message = "sock is a socket; remove it"
    else:
        try:
            os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device file needs root")
        message = "null is a device file; remove it"
    with pytest.raises(ContractError, match=message):
        stage_entry(src, tmp_path / "staged")
    assert not (tmp_path / "staged").exists(), "refused by the listing: nothing was copied"
    with pytest.raises(ContractError, match=message):
        submission_digest(src)


def test_the_bounds_are_the_contract_s(tmp_path):
    src = entry(tmp_path)
    deep = src
    for _ in range(MAX_ENTRY_DEPTH):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("deepest allowed")
    staged = stage_entry(src, tmp_path / "staged")
    assert (staged / deep.relative_to(src) / "leaf.txt").read_text() == "deepest allowed"
    (deep / "d").mkdir()
    with pytest.raises(ContractError, match=f"folders nested more than {MAX_ENTRY_DEPTH} deep"):
        stage_entry(src, tmp_path / "staged-2")
    (deep / "d").rmdir()
    (src / "many").mkdir()
    for i in range(MAX_ENTRY_FILES):
        (src / "many" / str(i)).touch()
    with pytest.raises(ContractError, match=f"more than {MAX_ENTRY_FILES} files and folders"):
        stage_entry(src, tmp_path / "staged-3")
    assert not (tmp_path / "staged-3").exists()


def test_a_file_replaced_after_the_listing_is_not_read(tmp_path):
    """The copy opens the very file that was listed (device and inode), with no link followed on
    the way: a folder swapped for a link to the host between the listing and the copy is refused."""
    src = entry(tmp_path)
    listing = list_entry(src)
    host = tmp_path / "host"
    host.mkdir()
    (host / "util.py").write_text("HOST")
    os.rename(src / "lib", tmp_path / "old-lib")
    os.symlink(host, src / "lib")
    (util,) = [f for f in listing.files if f.rel == os.path.join("lib", "util.py")]
    with pytest.raises(ContractError, match="keep the entry unchanged while it is graded"):
        open_entry_file(listing, util, "entry")
    os.unlink(src / "lib")
    (src / "lib").mkdir()
    (src / "lib" / "util.py").write_text("X = 1\n")  # same name and bytes, another inode
    with pytest.raises(ContractError, match="keep the entry unchanged"):
        open_entry_file(listing, util, "entry")


def test_the_digest_is_the_staged_content(tmp_path):
    """What is digested is what runs: a change to a file the entry links to is in the next copy
    and its digest, and two copies of the same entry have one digest."""
    src = entry(tmp_path)
    os.symlink("lib/util.py", src / "alias.py")
    first = submission_digest(stage_entry(src, tmp_path / "one"))
    assert submission_digest(stage_entry(src, tmp_path / "two")) == first
    (src / "lib" / "util.py").write_text("X = 2\n")
    changed = stage_entry(src, tmp_path / "three")
    assert (changed / "alias.py").read_text() == "X = 2\n"
    assert submission_digest(changed) != first
