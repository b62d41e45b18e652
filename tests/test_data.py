import subprocess
import sys

import numpy as np
import pytest

from tripletutils.data import (
    MNIST_ENV_VAR,
    MnistDataError,
    load_mnist,
    validate_mnist_arrays,
)


def make_arrays(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }


def write(tmp_path, name="m.npz", **overrides):
    arrays = make_arrays()
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_loads_small_file(tmp_path):
    path = write(tmp_path)
    (xtr, ytr), (xte, yte) = load_mnist(path)
    raw = np.load(path)
    assert xtr.shape == (20, 28, 28, 1) and xte.shape == (10, 28, 28, 1)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    np.testing.assert_allclose(xtr[..., 0] * 255.0, raw["x_train"], atol=1e-4)
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    np.testing.assert_array_equal(yte, raw["y_test"])


def test_path_as_str_and_env_var(tmp_path, monkeypatch):
    path = write(tmp_path)
    monkeypatch.setenv(MNIST_ENV_VAR, str(path))
    (xtr, _), _ = load_mnist()
    assert xtr.shape[0] == 20
    assert load_mnist(str(path))[0][0].shape[0] == 20


def test_argument_beats_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(MNIST_ENV_VAR, str(tmp_path / "missing.npz"))
    path = write(tmp_path)
    assert load_mnist(path)[1][0].shape[0] == 10


BAD = {
    "missing file": (lambda t: t / "nope.npz", "not found"),
    "directory": (lambda t: t, "directory"),
    "not an npz": (lambda t: _text(t), "not an .npz"),
    "truncated": (lambda t: _truncated(t), "truncated or corrupt"),
    "missing key": (lambda t: write(t, y_test=None), "lacks the key(s) y_test"),
    "wrong image shape": (
        lambda t: write(t, x_train=np.zeros((20, 28, 27), np.uint8)),
        "shape (N, 28, 28)",
    ),
    "wrong image dtype": (
        lambda t: write(t, x_test=np.zeros((10, 28, 28), np.float64)),
        "dtype uint8",
    ),
    "float labels": (
        lambda t: write(t, y_train=np.zeros(20, np.float32)),
        "integer dtype",
    ),
    "2-D labels": (
        lambda t: write(t, y_train=np.zeros((20, 10), np.uint8)),
        "shape (N,)",
    ),
    "length mismatch": (
        lambda t: write(t, y_train=np.zeros(19, np.uint8)),
        "has 20 images but 'y_train' has 19",
    ),
    "label out of range": (
        lambda t: write(t, y_test=np.full(10, 10, np.uint8)),
        "digits 0..9",
    ),
    "negative label": (
        lambda t: write(t, y_test=np.full(10, -1, np.int64)),
        "digits 0..9",
    ),
    "empty split": (
        lambda t: write(
            t, x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)
        ),
        "empty",
    ),
}


def _text(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("this is not a zip archive")
    return path


def _truncated(tmp_path):
    good = write(tmp_path, name="good.npz")
    data = good.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_raise_clear_errors(tmp_path, case):
    make, fragment = BAD[case]
    path = make(tmp_path)
    with pytest.raises(MnistDataError) as info:
        load_mnist(path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_error_is_a_value_error_and_names_the_file(tmp_path):
    path = write(tmp_path, y_test=None)
    with pytest.raises(ValueError, match=str(path.name)):
        load_mnist(path)


def test_type_error_for_non_path():
    with pytest.raises(TypeError, match="path must be a str"):
        load_mnist(123)


def test_validate_rejects_lists():
    a = make_arrays()
    with pytest.raises(MnistDataError, match="numpy array"):
        validate_mnist_arrays(
            a["x_train"], list(a["y_train"]), a["x_test"], a["y_test"]
        )


def test_offline_download_failure_has_one_message(monkeypatch):
    import keras

    def boom():
        raise OSError("no network")

    monkeypatch.delenv(MNIST_ENV_VAR, raising=False)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", boom)
    with pytest.raises(MnistDataError, match=f"set {MNIST_ENV_VAR}"):
        load_mnist()


def test_command_line_error_is_one_clear_line():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tripletutils.data import load_mnist; load_mnist('/nonexistent.npz')",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "tripletutils.data.MnistDataError: MNIST file not found: '/nonexistent.npz'"
    )


def test_full_mnist(mnist_path):
    (xtr, ytr), (xte, yte) = load_mnist(mnist_path)
    assert xtr.shape == (60000, 28, 28, 1) and xte.shape == (10000, 28, 28, 1)
    assert np.bincount(ytr).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert ytr[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yte[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
