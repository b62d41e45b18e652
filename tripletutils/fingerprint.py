"""Fingerprints of code and data: what identifies the code that made a result.

A result is worth keeping only while the code that made it still exists. These
functions give short, stable hashes for that:

* :func:`source_fingerprint`: one Python source, hashed from its syntax tree with
  every docstring removed, so editing a docstring or a comment (comments are not
  in the tree) changes nothing, and changing code (a constant, a name, a call)
  changes the hash.
* :func:`definitions_fingerprint`: the top-level definitions of one module that
  some names need (the names, and every top-level name their code refers to,
  transitively), so that adding or changing an unrelated function changes
  nothing.
* :func:`code_fingerprint`: the package modules that decide what a training run
  computes (:data:`TRAINING_MODULES`), together; for some of them, optionally,
  only what some entry points need.
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
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Set, Union

if TYPE_CHECKING:  # NumPy is imported where data is hashed
    import numpy as np

__all__ = [
    "TRAINING_MODULES",
    "source_fingerprint",
    "definitions_fingerprint",
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


def _bound_names(node: ast.stmt) -> Optional[List[str]]:
    """The names a top-level statement defines; None for one that defines none
    of its own (an ``if``, a ``try``, a call: it belongs to every closure)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names]
    targets: List[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    else:
        return None
    names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names or None


def definitions_fingerprint(source: str, names: Sequence[str]) -> str:
    """A hash of the top-level code of a module that some names need.

    The closure starts from the top-level definitions of ``names`` (functions,
    classes, assignments, imports) and adds every top-level definition of a
    name their code mentions, until nothing new is mentioned. Top-level
    statements that define no name (an ``if``, a ``try``, a bare call) are
    always in it, and so is every statement that (re)binds a name in it. The
    closure is hashed as :func:`source_fingerprint` hashes a module: without
    docstrings, comments and line numbers.

    Parameters
    ----------
    source : str
        The text of a Python module.
    names : sequence of str
        Top-level names of the module, e.g. an experiment's run function.

    Returns
    -------
    str
        16 hexadecimal digits. It changes when the code of a definition in the
        closure changes, and not when a definition outside it is added,
        changed or removed.

    Raises
    ------
    TypeError
        If ``source`` is not a str or ``names`` not a sequence of str.
    ValueError
        If ``source`` is not valid Python, ``names`` is empty, or a name is
        not defined at the top level of the module.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"names must be a sequence of str, got {names!r}")
    if len(names) == 0:
        raise ValueError("names is empty: there is no definition to fingerprint")
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"source is not valid Python: {err}") from None
    body = [node for node in tree.body if not _is_docstring(node)]
    bound = [_bound_names(node) for node in body]
    defined: Dict[str, List[int]] = {}
    for i, found in enumerate(bound):
        for name in found or ():
            defined.setdefault(name, []).append(i)
    unknown = sorted(set(names) - set(defined))
    if unknown:
        raise ValueError(f"not defined at the top level of the module: {unknown}")
    keep: Set[int] = {i for i, found in enumerate(bound) if found is None}
    todo = list(names) + [
        n.id for i in keep for n in ast.walk(body[i]) if isinstance(n, ast.Name)
    ]
    seen: Set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defined:
            continue
        seen.add(name)
        for i in defined[name]:
            if i not in keep:
                keep.add(i)
                todo.extend(n.id for n in ast.walk(body[i]) if isinstance(n, ast.Name))
    text = "\n".join(_canonical(body[i]) for i in sorted(keep))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def code_fingerprint(
    modules: Sequence[str] = TRAINING_MODULES,
    folder: Union[str, Path, None] = None,
    entry_points: Optional[Mapping[str, Sequence[str]]] = None,
) -> str:
    """A hash of several modules' code (each through :func:`source_fingerprint`).

    Parameters
    ----------
    modules : sequence of str, default :data:`TRAINING_MODULES`
        File names, relative to ``folder``.
    folder : str or Path, optional
        Default: the folder of this file (the ``tripletutils`` package).
    entry_points : mapping of str to sequence of str, optional
        ``{module: names}`` for some of ``modules``: such a module counts only
        through :func:`definitions_fingerprint` of those names (e.g.
        ``{"experiments.py": ["_smoke_run"]}``: one experiment's code, not its
        neighbours').

    Returns
    -------
    str
        16 hexadecimal digits; it changes when the code of any of the modules
        changes, and not when only their docstrings or comments do.

    Raises
    ------
    TypeError
        If ``modules`` is not a sequence of str, or ``entry_points`` not a
        mapping.
    ValueError
        If ``modules`` is empty, ``entry_points`` names a module not in
        ``modules``, or an entry point is not defined in its module.
    FileNotFoundError
        If a module is missing.
    """
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        raise TypeError(f"modules must be a sequence of str, got {modules!r}")
    if len(modules) == 0:
        raise ValueError("modules is empty: there is no code to fingerprint")
    entry_points = {} if entry_points is None else entry_points
    if not isinstance(entry_points, Mapping):
        raise TypeError(
            f"entry_points must be a mapping, got {type(entry_points).__name__}"
        )
    if set(entry_points) - set(modules):
        raise ValueError(
            f"entry_points names modules not in modules: "
            f"{sorted(set(entry_points) - set(modules))}"
        )
    base = Path(__file__).resolve().parent if folder is None else Path(folder)
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(modules):
        path = base / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such module to fingerprint")
        if name in entry_points:
            names = list(entry_points[name])
            part = definitions_fingerprint(path.read_text(), names)
            digest.update(f"{name}[{','.join(sorted(names))}]:{part};".encode())
        else:
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
