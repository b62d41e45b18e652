"""Run every worked solution of a chapter, after the chapter, and say which fail.

A solution is a ``{dropdown} Solution`` block under a chapter's ``## Exercises``
heading (:mod:`chapter_stats` counts them); its code is the ``python`` fenced
blocks inside it. The chapter's solutions are never executed by the book build
or by nbval, so this tool checks them: it runs the chapter's code cells top to
bottom in a fresh kernel (in ``notebooks/``, as ``make outputs`` does), then
each solution's code in turn, in the same kernel, and reports each one as ``ok``
(with its seconds) or with its error. Solutions end in asserts, so a wrong
answer fails as surely as a crash. The notebook file is not changed.

Usage, from the repository root::

    python tools/check_solutions.py [NOTEBOOK ...]     # default: every chapter
    python tools/check_solutions.py --executed-dir _build/stage [NOTEBOOK ...]

With ``--executed-dir``, each notebook is also written there as executed (its
own cells and their outputs, the solutions left out), at its path relative to
the repository: ``make book`` builds the book from those copies, so that one
run of each chapter serves the book and the check of its solutions. A notebook
without exercises (the results ledger) is only executed and written. A chapter
cell that fails, or writes to stderr (the book treats that as an error, as
Jupyter Book's ``stderr_output: "error"`` does), is a problem.

Exits 1 if a chapter cell or a solution fails, or a solution holds no code.
Needs ``nbclient`` and ``nbformat`` (installed with Jupyter) and a ``python3``
kernel.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
_SOLUTION = re.compile(r"^(\s*)(:::+)\s*\{dropdown\}\s*Solution[^\n]*\n", re.M | re.I)
_FENCE = re.compile(
    r"^\s*```(?:python|\{code-cell\}[^\n]*)\s*\n(.*?)^\s*```", re.M | re.S
)


def _exercise_block(markdown: str) -> str:
    start = re.search(r"^##\s+Exercises\s*$", markdown, re.M)
    if start is None:
        return ""
    rest = markdown[start.end() :]
    end = re.search(r"^##\s", rest, re.M)
    return rest if end is None else rest[: end.start()]


def _dedent(code: str) -> str:
    lines = code.splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in lines).strip("\n") + "\n"


def solutions(markdown: str) -> List[Dict[str, object]]:
    """The worked solutions of a chapter's exercise text, in order.

    Parameters
    ----------
    markdown : str
        The markdown of a chapter (all its markdown cells, joined).

    Returns
    -------
    list of dict
        One per ``{dropdown} Solution`` block under ``## Exercises``:
        ``exercise`` (the number of the list item it follows, or None) and
        ``code`` (its ``python`` fenced blocks, dedented, joined; "" if none).

    Raises
    ------
    TypeError
        If ``markdown`` is not a str.
    ValueError
        If a solution block is not closed.
    """
    if not isinstance(markdown, str):
        raise TypeError(f"markdown must be a str, got {type(markdown).__name__}")
    block = _exercise_block(markdown)
    found = []
    for match in _SOLUTION.finditer(block):
        fence = match.group(2)
        close = re.compile(rf"^\s*{fence}\s*$", re.M)
        end = close.search(block, match.end())
        if end is None:
            raise ValueError(
                f"a solution block opened with {fence!r} is not closed: "
                f"{block[match.start() : match.start() + 80]!r}"
            )
        body = block[match.end() : end.start()]
        numbers = re.findall(r"^(\d+)\.\s", block[: match.start()], re.M)
        code = "".join(_dedent(m.group(1)) for m in _FENCE.finditer(body))
        found.append({"exercise": int(numbers[-1]) if numbers else None, "code": code})
    return found


def check_chapter(
    path: Path, timeout: int = 1200, executed: Optional[Path] = None
) -> List[str]:
    """Run a chapter and then its solutions; the problems found (empty: all ran).

    Parameters
    ----------
    path : Path
        A chapter notebook.
    timeout : int, default 1200
        Seconds allowed for each cell.
    executed : Path, optional
        Where to write the chapter as executed (its own cells with their
        outputs, before any solution runs); not written when a chapter cell
        fails.

    Returns
    -------
    list of str
        One line per failing chapter cell or solution, or solution without
        code. Prints a line per solution as it runs.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    found = solutions(markdown)
    problems = []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code_cells:
        cell.outputs, cell.execution_count = [], None
    first = len(nb.cells)
    for item in found:
        if not item["code"]:
            problems.append(f"{path.name}: exercise {item['exercise']}: no code")
        nb.cells.append(nbformat.v4.new_code_cell(item["code"] or "pass"))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    own = [i for i, c in enumerate(nb.cells[:first]) if c.cell_type == "code"]
    last_own = own[-1] if own else -1
    started = time.perf_counter()
    with client.setup_kernel():
        if last_own < 0:  # nothing of the chapter's own to run
            _write_executed(nb, first, executed, problems)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t0 = time.perf_counter()
            client.execute_cell(cell, index)
            seconds = time.perf_counter() - t0
            if index < first:
                error = _error(cell) or _stderr(cell)
                if error:
                    problems.append(f"{path.name}: chapter cell {index}: {error}")
                if index == last_own:  # the chapter as the book shows it
                    _write_executed(nb, first, executed, problems)
                continue
            error = _error(cell)
            item = found[index - first]
            label = f"{path.name}: exercise {item['exercise']}"
            if error:
                problems.append(f"{label}: {error}")
            print(f"{label}: {'FAILED ' + error if error else 'ok'} ({seconds:.1f} s)")
    print(f"{path.name}: {time.perf_counter() - started:.0f} s in all")
    return problems


def _write_executed(nb, first: int, executed: Optional[Path], problems: List[str]):
    """Write the chapter's own cells, executed, unless a chapter cell failed."""
    import copy

    import nbformat

    if executed is None or problems:
        return
    done = copy.deepcopy(nb)
    done.cells = done.cells[:first]
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(done, executed)


def _stderr(cell) -> Optional[str]:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return f"stderr: {out.get('text', '')[:200]!r}"
    return None


def _error(cell) -> Optional[str]:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python tools/check_solutions.py [NOTEBOOK ...]``; 1 if anything fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1200)
    parser.add_argument("--executed-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    problems = []
    for path in paths:
        path = Path(path).resolve()
        executed = None
        if args.executed_dir is not None:
            executed = args.executed_dir.resolve() / path.relative_to(ROOT)
        problems += check_chapter(path, timeout=args.timeout, executed=executed)
    for line in problems:
        print("PROBLEM", line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
