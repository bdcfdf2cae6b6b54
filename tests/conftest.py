"""Shared test fixtures: the real CIFAR-10 images of ../shared/data (skipped when absent)."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_dir():
    """Returns the path of ../shared/data/cifar10; skips the test when it is absent."""
    if not (SHARED_CIFAR / "test").is_dir():
        pytest.skip(f"needs the real CIFAR-10 images of {SHARED_CIFAR} (not present here)")
    return SHARED_CIFAR


@pytest.fixture(scope="session")
def real_images(cifar_dir):
    """Returns 20 real CIFAR-10 test images (two per class) as float32 in [0, 255], 32x32x3."""
    import tensorflow as tf

    images = []
    for class_dir in sorted((cifar_dir / "test").iterdir()):
        for path in sorted(class_dir.glob("*.jpg"))[:2]:
            images.append(tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3).numpy())
    return np.stack(images).astype("float32")
