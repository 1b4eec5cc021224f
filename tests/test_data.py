import os
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from harness import data
from harness.data import DataError
from harness.synthetic import colour_images
from tests.helpers import SHARED_TARBALL, write_image_tree, write_tar


def draw(pool, seed=0, train=5, evaluation=2, eval_pool=None):
    return data.draw(
        pool, eval_pool, seed=seed, train_per_class=train, eval_per_class=evaluation, source="s", eval_source="s"
    )


def test_imagefolder_and_tar_read_the_same_tree(tmp_path):
    write_image_tree(tmp_path / "tree", {"train": 8, "test": 4})
    folder = data.load_pool(f"imagefolder:{tmp_path / 'tree'}", tmp_path / "cache")
    tarred = data.load_pool(f"tar:{write_tar(tmp_path / 'd.tar.gz', tmp_path / 'tree')}", tmp_path / "cache")
    assert folder.classes == tarred.classes == ["cat", "dog", "frog"]
    assert folder.train.images.shape == (24, 32, 32, 3) and folder.test.images.shape == (12, 32, 32, 3)
    np.testing.assert_array_equal(folder.train.images, tarred.train.images)
    np.testing.assert_array_equal(folder.test.labels, tarred.test.labels)


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    write_image_tree(tmp_path / "tree", {"train": 4, "test": 2})
    source = f"tar:{write_tar(tmp_path / 'd.tar.gz', tmp_path / 'tree')}"
    first = data.load_pool(source, tmp_path / "cache")
    assert list((tmp_path / "cache" / "prepared").glob("tar-*.npz"))

    def no_decoding(path):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(data, "_read_tar", no_decoding)
    second = data.load_pool(source, tmp_path / "cache")
    np.testing.assert_array_equal(first.train.images, second.train.images)


def test_the_same_archive_provisioned_again_comes_from_the_cache(tmp_path, monkeypatch):
    """A copy with a new path and time is the same data (a tarball provisioned afresh each session
    was decoded again, 170 MB more each time); an archive with other images is decoded."""
    write_image_tree(tmp_path / "tree", {"train": 4, "test": 2})
    original = write_tar(tmp_path / "d.tar.gz", tmp_path / "tree")
    decoded = []
    read_tar = data._read_tar
    monkeypatch.setattr(data, "_read_tar", lambda path: decoded.append(path) or read_tar(path))
    first = data.load_pool(f"tar:{original}", tmp_path / "cache")
    copy = shutil.copy(original, tmp_path / "elsewhere.tar.gz")
    os.utime(copy, (1, 1))
    again = data.load_pool(f"tar:{copy}", tmp_path / "cache")
    np.testing.assert_array_equal(first.train.images, again.train.images)
    assert decoded == [original], "the same bytes decoded twice"
    write_image_tree(tmp_path / "other", {"train": 5, "test": 2})
    changed = write_tar(tmp_path / "d.tar.gz", tmp_path / "other")
    assert data.load_pool(f"tar:{changed}", tmp_path / "cache").train.images.shape[0] == 15
    assert len(decoded) == 2 and len(list((tmp_path / "cache" / "prepared").glob("tar-*.npz"))) == 2


@pytest.mark.parametrize("size, mode, message", [((16, 16), "RGB", "16x16 RGB"), ((32, 32), "L", "32x32 L")])
def test_wrong_images_are_named(tmp_path, size, mode, message):
    write_image_tree(tmp_path / "tree", {"train": 2})
    bad = tmp_path / "tree" / "train" / "dog" / "bad.png"
    Image.new(mode, size).save(bad)
    with pytest.raises(DataError) as err:
        data.load_pool(f"imagefolder:{tmp_path / 'tree'}", tmp_path / "cache")
    assert str(bad) in str(err.value) and message in str(err.value) and "32x32 RGB" in str(err.value)


def test_unreadable_sources_give_clear_errors(tmp_path):
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="cannot read the archive"):
        data.load_pool(f"tar:{tmp_path / 'broken.tar.gz'}", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images under a train/<class>/ folder"):
        data.load_pool(f"imagefolder:{tmp_path / 'empty'}", tmp_path / "cache")
    np.savez(tmp_path / "wrong.npz", train_images=np.zeros((2, 8, 8, 3), np.uint8), train_labels=np.zeros(2))
    with pytest.raises(DataError, match=r"must be uint8 \[N,32,32,3\]"):
        data.load_pool(f"npz:{tmp_path / 'wrong.npz'}", tmp_path / "cache")


def test_sampling_is_balanced_seeded_and_hashed(synthetic_npz, tmp_path):
    pool = data.load_pool(synthetic_npz, tmp_path)
    a, b, c = draw(pool, seed=1), draw(pool, seed=1), draw(pool, seed=2)
    assert np.bincount(a.train.labels).tolist() == [5] * 10
    assert np.bincount(a.eval.labels).tolist() == [2] * 10
    assert a.info.data_sha256 == b.info.data_sha256 != c.info.data_sha256
    np.testing.assert_array_equal(a.train.images, b.train.images)
    assert not np.array_equal(a.train.images, c.train.images)
    assert not np.all(np.diff(a.eval.labels) >= 0), "held-out order must not reveal the labels"


def test_without_a_test_split_the_held_out_set_is_disjoint(tmp_path):
    images, labels = colour_images(12)
    images[:, 0, 0, 0] = np.arange(len(images))  # make every image unique
    np.savez(tmp_path / "train-only.npz", train_images=images, train_labels=labels)
    pool = data.load_pool(f"npz:{tmp_path / 'train-only.npz'}", tmp_path / "cache")
    sets = draw(pool, train=8, evaluation=4)
    train_ids, eval_ids = set(sets.train.images[:, 0, 0, 0]), set(sets.eval.images[:, 0, 0, 0])
    assert len(train_ids) == 80 and len(eval_ids) == 40 and not train_ids & eval_ids
    with pytest.raises(DataError, match="fewer than the 5 asked for"):
        draw(pool, train=8, evaluation=5)


def test_eval_data_replaces_the_test_split_and_must_share_classes(synthetic_npz, tmp_path):
    pool = data.load_pool(synthetic_npz, tmp_path)
    write_image_tree(tmp_path / "secret", {"test": 3})
    other = data.load_pool(f"imagefolder:{tmp_path / 'secret'}", tmp_path)
    with pytest.raises(DataError, match="classes"):
        draw(pool, eval_pool=other)
    images, labels = colour_images(3, seed=9)
    np.savez(tmp_path / "secret.npz", images=images, labels=labels, classes=np.array(pool.classes))
    secret = data.load_pool(f"npz:{tmp_path / 'secret.npz'}", tmp_path)
    sets = draw(pool, eval_pool=secret, evaluation=3)
    assert len(sets.eval.labels) == 30
    assert {tuple(x) for x in sets.eval.images[:, 0, 0]} <= {tuple(x) for x in images[:, 0, 0]}


def test_phase_files_keep_labels_away_from_predict(synthetic_npz, tmp_path):
    sets = draw(data.load_pool(synthetic_npz, tmp_path))
    data.write_phase_data(sets, tmp_path / "train", tmp_path / "test")
    with np.load(tmp_path / "train" / "train.npz") as z:
        assert set(z.files) == {"images", "labels", "classes"} and z["labels"].dtype == np.int64
    with np.load(tmp_path / "test" / "test.npz") as z:
        assert z.files == ["images"] and z["images"].shape == (20, 32, 32, 3)


def test_cifar10_batches_are_read_in_their_published_format(tmp_path):
    """The downloader cannot run offline; the reader runs on batches in the real pickle layout."""
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    images, labels = colour_images(2)
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # CIFAR stores CHW rows
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(batches / name, "wb") as f:
            pickle.dump({"data": rows, "labels": labels.tolist()}, f)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    pool = data.load_pool("cifar10", tmp_path)
    assert pool.classes[0] == "c0" and pool.train.images.shape == (100, 32, 32, 3)
    np.testing.assert_array_equal(pool.test.images, images)


@pytest.mark.skipif(not SHARED_TARBALL.exists(), reason="the shared CIFAR-10 tarball is not on this machine")
def test_shared_cifar10_tarball(tmp_path_factory):
    pool = data.load_pool(f"tar:{SHARED_TARBALL}", tmp_path_factory.mktemp("cache"))
    assert pool.classes[:2] == ["airplane", "automobile"] and len(pool.classes) == 10
    assert pool.train.images.shape == (50000, 32, 32, 3) and pool.test.images.shape == (5000, 32, 32, 3)
    assert np.bincount(pool.test.labels).tolist() == [500] * 10
