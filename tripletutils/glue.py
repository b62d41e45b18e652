"""``glue`` for the chapters: myst-nb's where installed, a plain display elsewhere.

The book's chapters compute every figure their prose states and hand it to
myst-nb's ``glue``, which stores it in the cell's output for the rendered page
(``{glue:text}`key``` in the markdown). A chapter opened alone, in Colab or in
an empty folder, has no myst-nb: there :func:`glue` shows the value when asked
to (``display=True``) and otherwise does nothing, so the chapter runs on.

Standalone: imports only the standard library (and IPython, to display).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["glue", "myst_nb_available"]


def myst_nb_available() -> bool:
    """Whether myst-nb can be imported (then :func:`glue` is myst-nb's).

    Returns
    -------
    bool
    """
    try:
        importlib.import_module("myst_nb")
    except ImportError:
        return False
    return True


def glue(name: str, value: Any, display: bool = True) -> None:
    """Store ``value`` under ``name`` for the book's prose (myst-nb's ``glue``).

    Parameters
    ----------
    name : str
        The key the chapter's markdown refers to (``{glue:text}`name```):
        non-empty, without whitespace, colons or backticks, which the role's
        syntax cannot hold.
    value : object
        Anything IPython can display: a number, a string, a figure, a frame.
    display : bool, default True
        Also show the value in the cell's output.

    Without myst-nb, a value with ``display=True`` is shown with IPython's
    ``display`` (printed, outside IPython) and one with ``display=False`` is
    dropped: only the rendered book reads it.

    Raises
    ------
    TypeError
        If ``name`` is not a str or ``display`` not a bool.
    ValueError
        If ``name`` is empty or holds whitespace, a colon or a backtick.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name or any(c.isspace() or c in ":`" for c in name):
        raise ValueError(
            f"name must be non-empty, without whitespace, ':' or '`', got {name!r}"
        )
    if not isinstance(display, bool):
        raise TypeError(f"display must be a bool, got {type(display).__name__}")
    if myst_nb_available():
        from myst_nb import glue as myst_glue

        myst_glue(name, value, display=display)
        return
    if not display:
        return
    try:
        from IPython.display import display as show
    except ImportError:  # plain Python: print what a notebook would show
        print(value)
        return
    show(value)
