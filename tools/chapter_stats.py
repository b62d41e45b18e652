"""Cells, reading time and exercises per chapter: is each one a sitting?

For every ``notebooks/NN_*.ipynb`` (or the notebooks given), prints the cells
(markdown / code), the words of prose, the lines of code, an estimate of the
reading time (prose at 150 words a minute plus code at 20 lines a minute,
exercises not counted: the teaching review's rule), the minutes the exercises'
text adds for a reader who works them (hints and folded solutions, at the same
rate), and the exercises and their worked solutions. An
exercise is an item of the numbered list under a chapter's ``## Exercises``
heading; a solution is a ``{dropdown} Solution`` block inside it.

Usage, from the repository root: ``python tools/chapter_stats.py [NOTEBOOK ...]``
(``--limit-cells 40 --limit-minutes 35`` also exits 1 when a chapter is above).
Imports only the standard library.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
PROSE_WPM = 150
CODE_LPM = 20
_ITEM = re.compile(r"^\d+\.\s", re.M)
_SOLUTION = re.compile(r"^\s*:::+\s*\{dropdown\}\s*Solution", re.M | re.I)
_ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")


def _exercise_block(markdown: str) -> str:
    """The text under a ``## Exercises`` heading, up to the next ``## `` heading."""
    start = re.search(r"^##\s+Exercises\s*$", markdown, re.M)
    if start is None:
        return ""
    rest = markdown[start.end() :]
    end = re.search(r"^##\s", rest, re.M)
    return rest if end is None else rest[: end.start()]


def _items(block: str) -> List[str]:
    """The numbered items of an exercise block (each with its nested text)."""
    starts = [m.start() for m in _ITEM.finditer(block)]
    return [block[a:b] for a, b in zip(starts, starts[1:] + [len(block)])]


def _words(markdown: str) -> int:
    """Words of prose: fenced code left out, a role such as a glue counted as one."""
    return len(
        _ROLE.sub(" x ", re.sub(r"```.*?```", " ", markdown, flags=re.S)).split()
    )


def _fenced_lines(markdown: str) -> int:
    """Non-blank lines inside fenced code blocks."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S)
    return sum(1 for block in blocks for line in block.splitlines() if line.strip())


def chapter_stats(path: Path) -> Dict[str, float]:
    """The counts of one notebook.

    Parameters
    ----------
    path : Path
        A ``.ipynb`` file.

    Returns
    -------
    dict
        ``cells``, ``markdown``, ``code``, ``words`` (of prose outside the
        exercises), ``code_lines``, ``minutes`` (reading, exercises not
        counted), ``exercise_minutes`` (the exercises' text, hints and
        solutions with their code), ``exercises``, ``solved`` (exercises with a
        worked solution).
    """
    cells = json.loads(Path(path).read_text())["cells"]
    md = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    prose = "\n".join(md)
    exercise_text = "\n".join(map(_exercise_block, md))
    words = _words(prose) - _words(exercise_text)
    lines = sum(1 for c in code for line in c.splitlines() if line.strip())
    items = [item for block in map(_exercise_block, md) for item in _items(block)]
    return {
        "cells": len(cells),
        "markdown": len(md),
        "code": len(code),
        "words": words,
        "code_lines": lines,
        "minutes": words / PROSE_WPM + lines / CODE_LPM,
        "exercise_minutes": _words(exercise_text) / PROSE_WPM
        + _fenced_lines(exercise_text) / CODE_LPM,
        "exercises": len(items),
        "solved": sum(bool(_SOLUTION.search(item)) for item in items),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exit 1 when a limit is given and a chapter exceeds it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--limit-cells", type=int, default=None)
    parser.add_argument("--limit-minutes", type=float, default=None)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    head = f"{'chapter':34s} {'cells':>5s} {'md/code':>8s} {'words':>6s}"
    print(
        head
        + f" {'code':>5s} {'min':>4s} {'ex min':>6s} {'exercises':>9s} {'solved':>6s}"
    )
    over = []
    for path in paths:
        s = chapter_stats(path)
        split = f"{s['markdown']}/{s['code']}"
        print(
            f"{path.stem:34s} {s['cells']:5d} {split:>8s} {s['words']:6d} "
            f"{s['code_lines']:5d} {s['minutes']:4.0f} {s['exercise_minutes']:6.0f} "
            f"{s['exercises']:9d} {s['solved']:6d}"
        )
        if (args.limit_cells is not None and s["cells"] > args.limit_cells) or (
            args.limit_minutes is not None and s["minutes"] > args.limit_minutes
        ):
            over.append(path.stem)
    if over:
        print(f"above the limits: {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
