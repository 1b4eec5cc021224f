"""The shared walker of entry-controlled folders: bounded, never led out of its root."""

from __future__ import annotations

import os

import pytest

from harness.walk import WalkLimit, open_beneath, walk


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
