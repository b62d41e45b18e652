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
        pytest.skip("full MNIST not available: set TRIPLETUTILS_MNIST to a local mnist.npz")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
