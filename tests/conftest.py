"""Shared fixtures: TensorFlow imported quietly, seeds, the MNIST file."""

import os
from pathlib import Path

import numpy as np
import pytest

from tripletutils.runtime import import_tensorflow

import_tensorflow()

ROOT = Path(__file__).resolve().parents[1]


def _mnist_path():
    env = os.environ.get("TRIPLETUTILS_MNIST")
    if env and Path(env).is_file():
        return Path(env)
    return None


@pytest.fixture(scope="session")
def mnist_path():
    path = _mnist_path()
    if path is None:
        pytest.skip(
            "full MNIST not available: set TRIPLETUTILS_MNIST to a local mnist.npz"
        )
    return path


@pytest.fixture(autouse=True)
def bfloat16_everywhere(monkeypatch):
    """Recipes asking for bfloat16 train in bfloat16 on any machine in the tests.

    So the bfloat16 code paths are tested on CPUs that emulate it too (where
    :func:`tripletutils.training.train` would otherwise compute in float32);
    the tests of that choice set or remove the variable themselves.
    """
    monkeypatch.setenv("TRIPLETUTILS_BFLOAT16", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _tiny_data(n=240, seed=0):
    """n images of 4 classes, each with a class-specific bright band.

    Learnable in a few steps.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.random((n, 28, 28, 1)).astype(np.float32) * 0.2
    for i, c in enumerate(y):
        x[i, c * 6 : c * 6 + 4, :, 0] += 0.8  # a class-specific bright band
    return x, y


@pytest.fixture
def tiny_data():
    """The function ``tiny_data(n=240, seed=0) -> (x, y)``."""
    return _tiny_data
