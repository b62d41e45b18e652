"""Fingerprints of code and data: what identifies the code that made a result.

A result is worth keeping only while the code that made it still exists. These
functions give short, stable hashes for that:

* :func:`source_fingerprint`: one Python source, hashed from its syntax tree with
  every docstring removed, so editing a docstring or a comment (comments are not
  in the tree) changes nothing, and changing code (a constant, a name, a call)
  changes the hash.
* :func:`code_fingerprint`: the package modules that decide what a training run
  computes (:data:`TRAINING_MODULES`), together.
* :func:`data_fingerprint`: every byte of some arrays, with their shapes and
  dtypes.

The experiment records (:mod:`tripletutils.engine`) and the cache of trained
networks (:func:`tripletutils.recipes.load_or_train`) both use them.
Standalone: imports only the standard library (and NumPy, to hash data).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Union

if TYPE_CHECKING:  # NumPy is imported where data is hashed
    import numpy as np

__all__ = [
    "TRAINING_MODULES",
    "source_fingerprint",
    "code_fingerprint",
    "data_fingerprint",
]

#: The modules of ``tripletutils`` whose code decides what a training run and
#: its scores compute: the recipe, the network, the loss, the batches, the
#: loops, the callbacks that run during training, the seeding, the data
#: loader, embedding and scoring, and the experiments' run functions.
TRAINING_MODULES = (
    "callbacks.py",
    "data.py",
    "distributed.py",
    "evaluation.py",
    "experiments.py",
    "losses.py",
    "metrics.py",
    "models.py",
    "monitor.py",
    "recipes.py",
    "runtime.py",
    "sampling.py",
    "training.py",
)


def _is_docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _canonical(node) -> str:
    """A text for a syntax tree that is the same on every Python version.

    ``ast.dump`` is not: Python 3.12 adds ``type_params`` to every function
    and class, 3.13 leaves empty and None fields out. Here a node is its type
    and its fields that hold something, children recursively; docstrings
    (string expression statements) are left out of every body.
    """
    if isinstance(node, ast.AST):
        parts = []
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list) and field == "body":
                value = [child for child in value if not _is_docstring(child)]
            if value is None or value == []:
                continue
            parts.append(f"{field}={_canonical(value)}")
        return f"{type(node).__name__}({','.join(parts)})"
    if isinstance(node, list):
        return "[" + ",".join(_canonical(item) for item in node) + "]"
    return repr(node)


def source_fingerprint(source: str) -> str:
    """A hash of Python source code that ignores docstrings and comments.

    Parameters
    ----------
    source : str
        The text of a Python module.

    Returns
    -------
    str
        16 hexadecimal digits: a BLAKE2b hash of the module's syntax tree
        without line numbers and without string expression statements (the
        docstrings of the module, its classes and functions). Formatting,
        comments and docstrings do not change it; any change to code does.
        It is the same on every Python version that parses the source to the
        same tree (3.11 to 3.13: empty fields are left out).

    Raises
    ------
    TypeError
        If ``source`` is not a str.
    ValueError
        If ``source`` is not valid Python (the message gives the line).
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"source is not valid Python: {err}") from None
    text = _canonical(tree)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def code_fingerprint(
    modules: Sequence[str] = TRAINING_MODULES,
    folder: Union[str, Path, None] = None,
) -> str:
    """A hash of several modules' code (each through :func:`source_fingerprint`).

    Parameters
    ----------
    modules : sequence of str, default :data:`TRAINING_MODULES`
        File names, relative to ``folder``.
    folder : str or Path, optional
        Default: the folder of this file (the ``tripletutils`` package).

    Returns
    -------
    str
        16 hexadecimal digits; it changes when the code of any of the modules
        changes, and not when only their docstrings or comments do.

    Raises
    ------
    TypeError
        If ``modules`` is not a sequence of str.
    ValueError
        If ``modules`` is empty.
    FileNotFoundError
        If a module is missing.
    """
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        raise TypeError(f"modules must be a sequence of str, got {modules!r}")
    if len(modules) == 0:
        raise ValueError("modules is empty: there is no code to fingerprint")
    base = Path(__file__).resolve().parent if folder is None else Path(folder)
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(modules):
        path = base / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such module to fingerprint")
        digest.update(f"{name}:{source_fingerprint(path.read_text())};".encode())
    return digest.hexdigest()


def data_fingerprint(*arrays: "np.ndarray", salt: Optional[str] = None) -> str:
    """A hash of every byte of some arrays, with their shapes and dtypes.

    Parameters
    ----------
    *arrays : numpy.ndarray
        Any shapes and dtypes (e.g. MNIST's ``uint8`` images ``(N, 28, 28)``
        and labels ``(N,)``).
    salt : str, optional
        Mixed into the hash (e.g. the name of a subset).

    Returns
    -------
    str
        16 hexadecimal digits.

    Raises
    ------
    TypeError
        If an argument is not a NumPy array, or ``salt`` not a str.
    ValueError
        If no array is given, or an array has dtype object.
    """
    import numpy as np

    if not arrays:
        raise ValueError("data_fingerprint needs at least one array")
    if salt is not None and not isinstance(salt, str):
        raise TypeError(f"salt must be a str, got {type(salt).__name__}")
    digest = hashlib.blake2b(digest_size=8)
    if salt is not None:
        digest.update(salt.encode())
    for arr in arrays:
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"arrays must be numpy arrays, got {type(arr).__name__}")
        if arr.dtype == object:
            raise ValueError("arrays of dtype object have no stable bytes to hash")
        arr = np.ascontiguousarray(arr)
        digest.update(str((arr.shape, arr.dtype.str)).encode())
        digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()
