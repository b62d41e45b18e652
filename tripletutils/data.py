"""Loading MNIST, online or from a local ``mnist.npz``.

This module is self-contained (it imports only numpy and, for the download
fallback, keras), so it can be copied into another project on its own.

Where the data comes from, in this order:

1. the ``path`` argument of :func:`load_mnist`;
2. the environment variable ``TRIPLETUTILS_MNIST``;
3. ``keras.datasets.mnist.load_data()``, which downloads the file once and
   caches it under ``~/.keras/datasets``.

A local file must use Keras's layout: an ``.npz`` archive holding ``x_train``
(60000, 28, 28) uint8, ``y_train`` (60000,) uint8, ``x_test`` (10000, 28, 28)
uint8 and ``y_test`` (10000,) uint8. Any other number of images is accepted as
long as each array has the right rank, dtype and matching length, so that
small hand-made files work in tests.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Tuple, Union

import numpy as np

__all__ = ["MNIST_ENV_VAR", "MnistDataError", "load_mnist", "validate_mnist_arrays"]

#: Name of the environment variable that points at a local ``mnist.npz``.
MNIST_ENV_VAR = "TRIPLETUTILS_MNIST"

_KEYS = ("x_train", "y_train", "x_test", "y_test")

Split = Tuple[np.ndarray, np.ndarray]


class MnistDataError(ValueError):
    """Raised when an MNIST file is missing, unreadable or malformed.

    It is a :class:`ValueError`, so ``except ValueError`` catches it too. Its
    message names the file and says what was expected and what was found.
    """


def validate_mnist_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    source: str = "<arrays>",
) -> None:
    """Check four raw MNIST arrays for shape, dtype and label range.

    Parameters
    ----------
    x_train, x_test : numpy.ndarray
        Images, shape ``(N, 28, 28)``, dtype ``uint8`` (values 0..255).
    y_train, y_test : numpy.ndarray
        Labels, shape ``(N,)``, an integer dtype, values in 0..9. ``N`` must
        equal the number of images of the same split.
    source : str, optional
        Name of where the arrays came from, used in error messages.

    Raises
    ------
    MnistDataError
        If any array has the wrong type, rank, dtype or length, or a label is
        outside 0..9.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    arrays = {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
    }
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):
            raise MnistDataError(
                f"{source}: '{name}' must be a numpy array, got {type(arr).__name__}"
            )
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise MnistDataError(
                f"{source}: 'x_{split}' must have shape (N, 28, 28), got {x.shape}"
            )
        if x.dtype != np.uint8:
            raise MnistDataError(
                f"{source}: 'x_{split}' must have dtype uint8 (pixels 0..255), "
                f"got {x.dtype}"
            )
        if y.ndim != 1:
            raise MnistDataError(
                f"{source}: 'y_{split}' must have shape (N,), got {y.shape}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise MnistDataError(
                f"{source}: 'y_{split}' must have an integer dtype, got {y.dtype}"
            )
        if len(x) != len(y):
            raise MnistDataError(
                f"{source}: 'x_{split}' has {len(x)} images but 'y_{split}' has "
                f"{len(y)} labels; they must match"
            )
        if len(x) == 0:
            raise MnistDataError(f"{source}: the {split} split is empty")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > 9:
            raise MnistDataError(
                f"{source}: 'y_{split}' must hold digits 0..9, "
                f"found values in {lo}..{hi}"
            )


def _read_npz(path: Path) -> Tuple[np.ndarray, ...]:
    """Read the four arrays from ``path``, turning every failure into MnistDataError."""
    if not path.exists():
        raise MnistDataError(
            f"MNIST file not found: '{path}'. Pass an existing mnist.npz or set "
            f"{MNIST_ENV_VAR} to one."
        )
    if path.is_dir():
        raise MnistDataError(
            f"MNIST path '{path}' is a directory, expected an .npz file"
        )
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head == b"PK\x03\x04":
            raise MnistDataError(
                f"'{path}' starts like an .npz archive but is truncated or corrupt "
                "(no zip directory at its end); download or copy it again"
            )
        raise MnistDataError(
            f"'{path}' is not an .npz archive (not a zip file); expected Keras's "
            f"mnist.npz with keys {', '.join(_KEYS)}"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise MnistDataError(
                    f"'{path}' lacks the key(s) {', '.join(missing)}; found "
                    f"{', '.join(npz.files) or 'no arrays'}, "
                    f"expected {', '.join(_KEYS)}"
                )
            return tuple(npz[k] for k in _KEYS)
    except MnistDataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise MnistDataError(
            f"'{path}' could not be read as an .npz archive (truncated or corrupt?): "
            f"{exc.__class__.__name__}: {exc}"
        ) from None


def _download() -> Tuple[np.ndarray, ...]:
    """Keras's download and cache, with one clear message when offline."""
    import keras  # imported here so that loading a local file needs no keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # network errors come in many types
        raise MnistDataError(
            "Could not download MNIST through keras.datasets.mnist.load_data() "
            f"({exc.__class__.__name__}). If this machine is offline, set "
            f"{MNIST_ENV_VAR} to the path of a local mnist.npz, e.g. "
            f"export {MNIST_ENV_VAR}=/path/to/mnist.npz"
        ) from None
    return x_train, y_train, x_test, y_test


def load_mnist(
    path: Union[str, os.PathLike, None] = None,
) -> Tuple[Split, Split]:
    """Load MNIST as float images in [0, 1] and integer labels.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A local ``mnist.npz`` in Keras's layout. When omitted, the environment
        variable ``TRIPLETUTILS_MNIST`` is used if set (and non-empty);
        otherwise MNIST is downloaded with ``keras.datasets.mnist.load_data()``.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of numpy.ndarray
        ``x_*`` has shape ``(N, 28, 28, 1)``, dtype ``float32``, values in
        [0, 1] (pixels divided by 255). ``y_*`` has shape ``(N,)``, dtype
        ``int64``, values 0..9. On the full data set N is 60000 and 10000.

    Raises
    ------
    TypeError
        If ``path`` is not a str, a path-like object or None.
    MnistDataError
        (a ``ValueError``) if the file does not exist, is not an npz archive,
        is truncated, lacks a key, holds arrays of the wrong shape or dtype,
        has images and labels of different lengths or labels outside 0..9, or
        if the download fails.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_mnist("mnist.npz")  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype
    ((60000, 28, 28, 1), dtype('float32'))
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a str, an os.PathLike or None, got {type(path).__name__}"
        )
    if path is None:
        env = os.environ.get(MNIST_ENV_VAR, "").strip()
        path = env or None
    if path is None:
        arrays = _download()
        source = "keras.datasets.mnist"
    else:
        p = Path(path).expanduser()
        arrays = _read_npz(p)
        source = str(p)
    validate_mnist_arrays(*arrays, source=source)
    x_train, y_train, x_test, y_test = arrays

    def images(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / np.float32(255.0))[..., np.newaxis]

    return (
        (images(x_train), y_train.astype(np.int64)),
        (images(x_test), y_test.astype(np.int64)),
    )
