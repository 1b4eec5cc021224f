"""A tiny, learnable stand-in for CIFAR-10: for smoke runs (`validate`) and tests.

Each class has its own smooth colour template (a random 4x4 RGB pattern scaled up
to 32x32); an image is its class template plus per-image noise and a random
brightness shift. Nearest-class-mean already scores far above chance on it, so a
submission that learns anything at all beats 10%; one that does not, does not.
Written in the harness's `npz:FILE` layout (uint8 [N,32,32,3] RGB, int64 labels).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from harness.files import atomic_write_bytes

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def synthetic_arrays(train_per_class: int, test_per_class: int, seed: int = 0, noise: float = 60.0):
    rng = np.random.default_rng(seed)
    n = len(CLASSES)
    templates = rng.uniform(40, 215, size=(n, 4, 4, 3))
    templates = templates.repeat(8, axis=1).repeat(8, axis=2)  # [n, 32, 32, 3]

    def make(per_class: int):
        labels = np.repeat(np.arange(n, dtype=np.int64), per_class)
        rng.shuffle(labels)
        shift = rng.normal(0, 15, size=(len(labels), 1, 1, 1))
        images = templates[labels] + shift + rng.normal(0, noise, size=(len(labels), 32, 32, 3))
        return np.clip(images, 0, 255).astype(np.uint8), labels

    train_images, train_labels = make(train_per_class)
    test_images, test_labels = make(test_per_class)
    return dict(
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes=np.array(CLASSES),
    )


def colour_images(per_class: int, n_classes: int = len(CLASSES), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Easy images, class by class: each class its own mean colour (the same in every call) plus noise."""
    colours = np.random.default_rng(12345).integers(30, 225, size=(n_classes, 3))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    noise = rng.normal(0, 25, size=(len(labels), 32, 32, 3))
    images = np.clip(colours[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_synthetic_npz(
    path: Path, train_per_class: int = 100, test_per_class: int = 50, seed: int = 0, noise: float = 60.0
) -> Path:
    """Write the dataset atomically; use it as `--data npz:PATH`."""
    buffer = io.BytesIO()
    np.savez(buffer, **synthetic_arrays(train_per_class, test_per_class, seed, noise))
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
