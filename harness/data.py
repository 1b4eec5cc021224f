"""Data: read a source once, cache it as arrays, draw the seeded class-balanced sets.

Sources (`--data`, `--eval-data`):
  cifar10          the real CIFAR-10, downloaded with torchvision's downloader into the cache
  tar:FILE         a .tar.gz of an image-folder tree (train/<class>/*, test/<class>/*)
  imagefolder:DIR  the same tree on disk
  npz:FILE         arrays: train_images, train_labels, test_images, test_labels[, classes]

The submission sees only what `write_phase_data` writes: train images with labels,
and held-out images without labels. Held-out labels stay with the scorer.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import secrets
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.errors import DataError
from harness.files import atomic_write_bytes
from harness.model import DataInfo

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm"}
SPLITS = ("train", "test")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CACHE_FORMAT = 1  # bump when the cached array layout changes


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, 32, 32, 3] RGB
    labels: np.ndarray  # int64 [N]


@dataclass
class Pool:
    """Everything a source holds. `test` is None when the source has no test split."""

    classes: list[str]
    train: Split
    test: Split | None


@dataclass
class GradedSets:
    """One repeat's data: what the submission trains on and what it is scored on."""

    classes: list[str]
    train: Split
    eval: Split
    info: DataInfo
    curve: Split | None = None  # the off-clock curve set (harness.curve): never the held-out images


# --- sources -----------------------------------------------------------------


def parse_source(text: str) -> tuple[str, Path | None]:
    if text == "cifar10":
        return "cifar10", None
    kind, sep, arg = text.partition(":")
    if not sep or kind not in ("tar", "imagefolder", "npz") or not arg:
        raise DataError(f"unknown data source {text!r}; use cifar10, tar:FILE, imagefolder:DIR or npz:FILE")
    path = Path(arg).expanduser()
    if not path.exists():
        raise DataError(f"data source {text!r}: {path} does not exist")
    if kind == "imagefolder" and not path.is_dir():
        raise DataError(f"data source {text!r}: {path} is not a directory")
    if kind in ("tar", "npz") and not path.is_file():
        raise DataError(f"data source {text!r}: {path} is not a file")
    if not os.access(path, os.R_OK):
        raise DataError(f"data source {text!r}: {path} is not readable; check its permissions")
    return kind, path.resolve()


def load_pool(text: str, cache_dir: Path) -> Pool:
    """A source's arrays, decoded once and then read from the cache."""
    kind, path = parse_source(text)
    if kind == "cifar10":
        return _cached(cache_dir, "cifar10", lambda: _read_cifar10(_download_cifar10(cache_dir)))
    key = f"{kind}-{_fingerprint(path)}"
    readers = {"tar": _read_tar, "imagefolder": _read_imagefolder, "npz": _read_npz}
    return _cached(cache_dir, key, lambda: readers[kind](path))


def _fingerprint(path: Path) -> str:
    """Changes when the source changes. A file by its contents (the 18 MB CIFAR-10 tarball hashes in
    0.02 s), so that the same archive copied or provisioned again finds its arrays cached
    rather than adding another 170 MB entry; a folder by its files' names, sizes and times."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:20]
    digest.update(str(path).encode())
    for entry in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = entry.stat()
        digest.update(f"{entry}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _cached(cache_dir: Path, key: str, read) -> Pool:
    file = Path(cache_dir) / "prepared" / f"{key}.v{CACHE_FORMAT}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                test = Split(z["test_images"], z["test_labels"]) if "test_images" in z else None
                return Pool([str(c) for c in z["classes"]], Split(z["train_images"], z["train_labels"]), test)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt
    pool = read()
    arrays = {
        "classes": np.array(pool.classes),
        "train_images": pool.train.images,
        "train_labels": pool.train.labels,
    }
    if pool.test is not None:
        arrays.update(test_images=pool.test.images, test_labels=pool.test.labels)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write_bytes(file, buffer.getvalue())
    except OSError:
        pass  # an unwritable cache only costs time
    return pool


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode != "RGB" or img.size != (32, 32):
                raise DataError(
                    f"{name}: image is {img.size[0]}x{img.size[1]} {img.mode}; every image must be 32x32 RGB"
                )
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{name}: not a readable image ({exc})") from None


def _split_and_class(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """('cifar10-jpeg', 'train', 'cat', '0001.jpg') -> ('train', 'cat').

    Bare class folders ('cat', '0001.jpg'), as an organizer's secret set may come,
    count as one split of their own.
    """
    for i, part in enumerate(parts[:-2]):
        if part in SPLITS and i + 2 == len(parts) - 1:
            return part, parts[i + 1]
    if len(parts) == 2:
        return "train", parts[0]
    return None


def _assemble(items: Iterable[tuple[str, str, str, bytes]], origin: str) -> Pool:
    """(split, class, name, bytes) items, in name order -> arrays with sorted class ids."""
    decoded: dict[str, list[tuple[str, np.ndarray]]] = {s: [] for s in SPLITS}
    for split, cls, name, data in items:
        decoded[split].append((cls, _decode(data, name)))
    if not decoded["train"]:  # a held-out set alone: its images are the pool
        decoded["train"], decoded["test"] = decoded["test"], []
    if not decoded["train"]:
        raise DataError(f"{origin}: no images under a train/<class>/ folder; expected train/ and test/ class folders")
    classes = sorted({c for c, _ in decoded["train"]})
    unknown = sorted({c for c, _ in decoded["test"]} - set(classes))
    if unknown:
        raise DataError(f"{origin}: test/ has classes that train/ lacks: {', '.join(unknown)}")
    index = {c: i for i, c in enumerate(classes)}

    def to_split(rows: list[tuple[str, np.ndarray]]) -> Split:
        return Split(np.stack([img for _, img in rows]), np.array([index[c] for c, _ in rows], dtype=np.int64))

    return Pool(classes, to_split(decoded["train"]), to_split(decoded["test"]) if decoded["test"] else None)


def _read_tar(path: Path) -> Pool:
    def items() -> Iterator[tuple[str, str, str, bytes]]:
        try:
            with tarfile.open(path, "r:*") as tar:
                members = sorted((m for m in tar if m.isfile()), key=lambda m: m.name)
                for member in members:
                    parts = PurePosixPath(member.name).parts
                    where = _split_and_class(parts)
                    if where and PurePosixPath(member.name).suffix.lower() in IMAGE_SUFFIXES:
                        yield where[0], where[1], f"{path}:{member.name}", tar.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{path}: cannot read the archive ({exc}); is it a complete .tar.gz?") from None

    return _assemble(items(), str(path))


def _read_imagefolder(path: Path) -> Pool:
    def items() -> Iterator[tuple[str, str, str, bytes]]:
        for file in sorted(path.rglob("*")):
            where = _split_and_class(file.relative_to(path).parts)
            if where and file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                yield where[0], where[1], str(file), file.read_bytes()

    return _assemble(items(), str(path))


def _read_npz(path: Path) -> Pool:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    for prefix in ("", "test_"):  # an eval-only file may hold just images/labels
        if f"{prefix}images" in arrays and "train_images" not in arrays:
            arrays["train_images"], arrays["train_labels"] = arrays[f"{prefix}images"], arrays.get(f"{prefix}labels")
            arrays.pop("test_images", None)
    if arrays.get("train_images") is None or arrays.get("train_labels") is None:
        raise DataError(
            f"{path}: needs arrays train_images and train_labels (and test_images, test_labels), "
            "or images and labels for an eval set"
        )
    splits = {}
    for split in SPLITS:
        if f"{split}_images" not in arrays:
            continue
        images, labels = arrays[f"{split}_images"], arrays.get(f"{split}_labels")
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise DataError(f"{path}: {split}_images is {images.dtype} {images.shape}; must be uint8 [N,32,32,3] RGB")
        if labels is None or labels.shape != (len(images),):
            raise DataError(f"{path}: {split}_labels must be one integer label per image")
        splits[split] = Split(images, labels.astype(np.int64))
    n_classes = int(max(s.labels.max() for s in splits.values())) + 1
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(i) for i in range(n_classes)]
    if any(s.labels.min() < 0 or s.labels.max() >= len(classes) for s in splits.values()):
        raise DataError(f"{path}: labels must lie in 0..{len(classes) - 1}")
    return Pool(classes, splits["train"], splits.get("test"))


def _download_cifar10(cache_dir: Path) -> Path:
    root = Path(cache_dir) / "cifar10"
    batches = root / "cifar-10-batches-py"
    if (batches / "test_batch").is_file():
        return batches
    try:
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError:
        raise DataError(
            "--data cifar10 needs torchvision for its downloader; pip install 'haet-harness[torch]', "
            "or pass --data tar:FILE / imagefolder:DIR / npz:FILE"
        ) from None
    try:
        download_and_extract_archive(CIFAR10_URL, str(root), md5=CIFAR10_MD5)
    except Exception as exc:  # network errors come in many types
        raise DataError(
            f"could not download CIFAR-10 into {root} ({exc}); check the network, or pass "
            "--data tar:FILE / imagefolder:DIR / npz:FILE for an offline copy"
        ) from None
    return batches


def _read_cifar10(batches: Path) -> Pool:
    """The python-pickle CIFAR-10 batches, checked against their published MD5 on download."""

    def load(name: str) -> dict:
        with open(batches / name, "rb") as f:
            return pickle.load(f, encoding="latin1")

    def split(names: list[str]) -> Split:
        parts = [load(n) for n in names]
        images = np.concatenate([p["data"] for p in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.concatenate([np.asarray(p["labels"], dtype=np.int64) for p in parts])
        return Split(np.ascontiguousarray(images, dtype=np.uint8), labels)

    classes = list(load("batches.meta")["label_names"])
    return Pool(classes, split([f"data_batch_{i}" for i in range(1, 6)]), split(["test_batch"]))


# --- sampling ----------------------------------------------------------------


def _take_per_class(
    labels: np.ndarray, n_classes: int, per_class: int, rng, exclude=None, *, what: str, flag: str
) -> np.ndarray:
    chosen = []
    for c in range(n_classes):
        candidates = np.flatnonzero(labels == c)
        if exclude is not None:
            candidates = np.setdiff1d(candidates, exclude)
        if len(candidates) < per_class:
            raise DataError(
                f"{what}: class {c} has {len(candidates)} images, fewer than the {per_class} asked for; "
                f"lower {flag} or bring more data"
            )
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    picked = np.concatenate(chosen)
    rng.shuffle(picked)  # never class-sorted (the held-out set is reordered in secret on top)
    return picked


def secret_order(order_key: str, n: int) -> np.ndarray:
    """The permutation of the held-out set that `order_key` (recorded in result.json) stands for."""
    return np.random.default_rng(int(order_key, 16)).permutation(n)


def draw(
    pool: Pool,
    eval_pool: Pool | None,
    *,
    seed: int,
    train_per_class: int,
    eval_per_class: int,
    source: str,
    eval_source: str,
    curve_per_class: int = 0,
) -> GradedSets:
    """The seeded, class-balanced, disjoint train and held-out sets of one repeat (and, with
    `curve_per_class`, the curve set: see `_draw_curve`)."""
    n = len(pool.classes)
    rng = np.random.default_rng(seed)
    train_idx = _take_per_class(
        pool.train.labels, n, train_per_class, rng, what=f"train set of {source}", flag="--train-per-class"
    )
    if eval_pool is not None:
        if eval_pool.classes != pool.classes:
            raise DataError(f"--eval-data classes {eval_pool.classes} differ from the training classes {pool.classes}")
        held_out = eval_pool.test or eval_pool.train
        eval_idx = _take_per_class(
            held_out.labels, n, eval_per_class, rng, what=f"eval set of {eval_source}", flag="--eval-per-class"
        )
    elif pool.test is not None:
        held_out = pool.test
        eval_idx = _take_per_class(
            held_out.labels, n, eval_per_class, rng, what=f"eval set of {source}", flag="--eval-per-class"
        )
    else:  # no test split: hold out images the train set did not take
        held_out = pool.train
        eval_idx = _take_per_class(
            held_out.labels,
            n,
            eval_per_class,
            rng,
            exclude=train_idx,
            what=f"eval set of {source}",
            flag="--eval-per-class",
        )
    train = Split(pool.train.images[train_idx], pool.train.labels[train_idx])
    digest = hashlib.sha256()  # over the seed's order: every entry graded on this seed gets the same hash
    for array in (train.images, train.labels, held_out.images[eval_idx], held_out.labels[eval_idx]):
        digest.update(np.ascontiguousarray(array).tobytes())
    # The held-out order comes from secret randomness: the seed, the counts and the harness's code
    # are all visible to an entry, and any order they determine hands it the labels.
    order_key = secrets.token_hex(16)
    eval_idx = eval_idx[secret_order(order_key, len(eval_idx))]
    evaluation = Split(held_out.images[eval_idx], held_out.labels[eval_idx])
    info = DataInfo(
        source=source,
        eval_source=eval_source,
        classes=list(pool.classes),
        seed=seed,
        train_per_class=train_per_class,
        eval_per_class=eval_per_class,
        train_count=len(train.labels),
        eval_count=len(evaluation.labels),
        data_sha256=digest.hexdigest(),
        heldout_public=eval_source == "cifar10",
        heldout_order_key=order_key,
    )
    curve = None
    if curve_per_class:
        curve = _draw_curve(pool, eval_pool, held_out, seed, train_idx, eval_idx, curve_per_class, source)
    return GradedSets(list(pool.classes), train, evaluation, info, curve)


CURVE_STREAM = 0x637572  # the curve set's own random stream: drawing it never changes the official sets


def _draw_curve(
    pool: Pool,
    eval_pool: Pool | None,
    held_out: Split,
    seed: int,
    train_idx: np.ndarray,
    eval_idx: np.ndarray,
    per_class: int,
    source: str,
) -> Split:
    """Seeded, class-balanced images that are neither held-out nor training images.

    From the source's test split when it has one (less the held-out images when those came from it
    too), else from its training images less the 5000 the entry trains on (and the held-out ones).
    """
    rng = np.random.default_rng([seed, CURVE_STREAM])
    if pool.test is not None:
        split = pool.test
        exclude = eval_idx if held_out is pool.test else None
    else:
        split = pool.train
        used = [train_idx] + ([eval_idx] if held_out is pool.train else [])
        exclude = np.concatenate(used)
    picked = _take_per_class(
        split.labels,
        len(pool.classes),
        per_class,
        rng,
        exclude=exclude,
        what=f"curve set of {source} (images that are neither training nor held-out)",
        flag="--curve-per-class",
    )
    return Split(split.images[picked], split.labels[picked])


def write_phase_data(sets: GradedSets, train_dir: Path, test_dir: Path) -> None:
    """train.npz (with labels) for the train phase, test.npz (images only) for predict."""
    for directory, arrays in (
        (
            train_dir / "train.npz",
            dict(images=sets.train.images, labels=sets.train.labels, classes=np.array(sets.classes)),
        ),
        (test_dir / "test.npz", dict(images=sets.eval.images)),
    ):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(directory, buffer.getvalue())
        os.chmod(directory, 0o444)
