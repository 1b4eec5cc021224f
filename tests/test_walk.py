"""The shared walker of entry-controlled folders: bounded, never led out of its root."""

from __future__ import annotations

import os

import pytest

from harness.walk import TooDeep, WalkLimit, open_beneath, remove_beneath, walk


def test_walk_lists_every_entry_once_and_never_follows_links(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.bin").write_bytes(b"x" * 3)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host data")
    (root / "link-dir").symlink_to(outside)
    (root / "link-file").symlink_to(outside / "secret")
    (root / "loop").symlink_to(root)
    found = {f.rel: f for f in walk(root)}
    assert set(found) == {"a", os.path.join("a", "b"), os.path.join("a", "b", "f.bin"), "link-dir", "link-file", "loop"}
    assert found[os.path.join("a", "b", "f.bin")].is_file and found[os.path.join("a", "b", "f.bin")].st.st_size == 3
    assert not any("secret" in rel for rel in found)
    assert not found["link-dir"].is_dir and not found["link-file"].is_file


def test_walk_stops_past_its_entry_limit(tmp_path):
    for i in range(30):
        (tmp_path / f"d{i}").mkdir()
    with pytest.raises(WalkLimit, match="more than 20"):
        list(walk(tmp_path, limit=20))
    assert len(list(walk(tmp_path, limit=30))) == 30


def test_walk_stops_past_its_depth_and_holds_few_descriptors(tmp_path):
    deep = tmp_path
    for _ in range(12):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with pytest.raises(WalkLimit, match="nested more than 5"):
        list(walk(tmp_path, max_depth=5))
    before = len(os.listdir("/proc/self/fd"))
    assert len(list(walk(tmp_path))) == 12
    assert len(os.listdir("/proc/self/fd")) == before  # every folder's descriptor was closed


def test_a_folder_swapped_for_a_link_mid_walk_is_not_followed(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "inner").write_text("entry")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host-file").write_text("host")
    seen = []
    for found in walk(root):
        seen.append(found.rel)
        if found.rel == "sub":  # listed as a folder; swapped before the walk opens it
            os.rename(root / "sub", tmp_path / "moved")
            (root / "sub").symlink_to(outside)
    assert seen == ["sub"]


def test_open_beneath_refuses_links_on_the_way_and_replaced_files(tmp_path):
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "model.pt").write_bytes(b"weights")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.pt").write_bytes(b"host")
    listed = {f.rel: f for f in walk(root)}
    rel = os.path.join("dir", "model.pt")
    fd = open_beneath(root, rel, listed[rel].same_file)
    with os.fdopen(fd, "rb") as f:
        assert f.read() == b"weights"
    (root / "dir" / "new").write_bytes(b"new")
    os.replace(root / "dir" / "new", root / "dir" / "model.pt")  # a new inode since the listing
    with pytest.raises(OSError):
        open_beneath(root, rel, listed[rel].same_file)
    os.rename(root / "dir", tmp_path / "old")
    (root / "dir").symlink_to(outside)  # a link on the way
    with pytest.raises(OSError):
        open_beneath(root, rel)
    for bad in ("", "..", os.path.join("..", "outside", "model.pt")):
        with pytest.raises(OSError):
            open_beneath(root, bad)


def test_the_depth_bound_is_exact_and_skipped_folders_are_not_entered(tmp_path):
    deep = tmp_path
    for _ in range(5):
        deep = deep / "d"
    deep.mkdir(parents=True)
    assert len(list(walk(tmp_path, max_depth=5))) == 5  # five folders deep: within "at most 5"
    (deep / "d").mkdir()
    with pytest.raises(TooDeep, match="nested more than 5") as raised:
        list(walk(tmp_path, max_depth=5))
    assert raised.value.rel == os.path.join(*["d"] * 6) and isinstance(raised.value, WalkLimit)
    (tmp_path / "cache" / "inner").mkdir(parents=True)
    seen = [f.rel for f in walk(tmp_path, skip=frozenset({"cache"}), max_depth=10)]
    assert "cache" in seen and os.path.join("cache", "inner") not in seen


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder of mode 0 all the same")
def test_a_folder_the_walk_may_not_read_is_an_error_not_a_gap(tmp_path):
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed").chmod(0)
    try:
        with pytest.raises(PermissionError):
            list(walk(tmp_path))
    finally:
        (tmp_path / "closed").chmod(0o755)


def test_remove_beneath_never_follows_a_swapped_folder(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "late.bin").write_bytes(b"late")
    host = tmp_path / "host"
    host.mkdir()
    (host / "late.bin").write_text("a host file")
    os.rename(root / "sub", tmp_path / "moved")
    (root / "sub").symlink_to(host)
    remove_beneath(root, os.path.join("sub", "late.bin"))  # nothing there below the root: nothing removed
    assert (host / "late.bin").read_text() == "a host file"
    (root / "link").symlink_to(host / "late.bin")
    remove_beneath(root, "link")  # the link itself goes, its target stays
    assert not (root / "link").is_symlink() and (host / "late.bin").exists()
    remove_beneath(root, "not-there")


def test_remove_beneath_with_the_listed_inode_leaves_what_replaced_it(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (listed,) = walk(tmp_path)
    (tmp_path / "new").write_text("put there since the listing")  # while the fifo holds its inode
    os.replace(tmp_path / "new", tmp_path / "fifo")
    assert remove_beneath(tmp_path, "fifo", listed.same_file) is False
    assert (tmp_path / "fifo").read_text() == "put there since the listing"
    (listed,) = walk(tmp_path)
    assert remove_beneath(tmp_path, "fifo", listed.same_file) is True and not (tmp_path / "fifo").exists()
    assert remove_beneath(tmp_path, "fifo", listed.same_file) is False
