"""Fingerprints: docstrings and comments change nothing, code and data do."""

import numpy as np
import pytest

from tripletutils.fingerprint import (
    TRAINING_MODULES,
    code_fingerprint,
    data_fingerprint,
    source_fingerprint,
)

MODULE = '''"""A module."""

MARGIN = 0.2  # a comment


def loss(d):
    """The loss."""
    return max(0.0, d + MARGIN)


class Net:
    """A class."""

    def call(self, x):
        """Call."""
        return x
'''


def test_source_fingerprint_ignores_docstrings_comments_and_layout():
    base = source_fingerprint(MODULE)
    edited = MODULE.replace('"""The loss."""', '"""The hinge, explained at length."""')
    edited = edited.replace("# a comment", "# another comment entirely")
    edited = edited.replace('"""A module."""', "")
    edited = edited.replace("return max(0.0, d + MARGIN)", "return max(0.0,  d+MARGIN)")
    assert source_fingerprint(edited) == base
    assert source_fingerprint(MODULE.replace('"""Call."""\n', "")) == base


@pytest.mark.parametrize(
    "old, new",
    [
        ("MARGIN = 0.2", "MARGIN = 0.3"),  # a constant
        ("max(0.0, d + MARGIN)", "max(0.0, d - MARGIN)"),  # an operator
        ("return x", "return -x"),
        ("def loss(d)", "def loss(e)"),
    ],
)
def test_source_fingerprint_sees_every_code_change(old, new):
    assert source_fingerprint(MODULE.replace(old, new)) != source_fingerprint(MODULE)


def test_source_fingerprint_rejects_bad_input():
    with pytest.raises(TypeError, match="source must be a str"):
        source_fingerprint(b"x = 1")
    with pytest.raises(ValueError, match="not valid Python"):
        source_fingerprint("def f(:\n")


def test_code_fingerprint_covers_the_training_modules(tmp_path):
    for name in ("callbacks.py", "monitor.py", "runtime.py", "losses.py"):
        assert name in TRAINING_MODULES
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(MODULE)
    base = code_fingerprint(["a.py", "b.py"], tmp_path)
    assert code_fingerprint(["b.py", "a.py"], tmp_path) == base  # order-free
    (tmp_path / "b.py").write_text(MODULE.replace('"""Call."""', '"""Calls."""'))
    assert code_fingerprint(["a.py", "b.py"], tmp_path) == base
    (tmp_path / "b.py").write_text(MODULE.replace("0.2", "0.25"))
    assert code_fingerprint(["a.py", "b.py"], tmp_path) != base
    assert len(code_fingerprint()) == 16  # the package's own modules parse


def test_code_fingerprint_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="sequence of str"):
        code_fingerprint("a.py", tmp_path)
    with pytest.raises(ValueError, match="empty"):
        code_fingerprint([], tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.py"):
        code_fingerprint(["missing.py"], tmp_path)


def test_data_fingerprint_sees_every_byte_shape_and_dtype():
    x = np.zeros((200, 28, 28, 1), np.float32)
    y = np.arange(200) % 4
    base = data_fingerprint(x, y)
    x2 = x.copy()
    x2[5, 3, 3, 0] = 1e-6  # one pixel of one image that a sample of rows would skip
    assert data_fingerprint(x2, y) != base
    assert data_fingerprint(x, y) == base
    assert data_fingerprint(x.reshape(200, 784), y) != base
    assert data_fingerprint(x.astype(np.float64), y) != base
    assert data_fingerprint(x, y, salt="subset") != base


def test_data_fingerprint_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        data_fingerprint()
    with pytest.raises(TypeError, match="numpy arrays"):
        data_fingerprint([1, 2])
    with pytest.raises(ValueError, match="object"):
        data_fingerprint(np.array([None]))
    with pytest.raises(TypeError, match="salt"):
        data_fingerprint(np.zeros(2), salt=1)
