"""tools/check_solutions.py: every worked solution runs after its chapter."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "check_solutions", ROOT / "tools/check_solutions.py"
)
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)

EXERCISES = """# A chapter

## Exercises

1. Add one to `x`.

   :::{dropdown} Solution
   Adding one:

   ```python
   y = x + 1
   ```

   and checking it:

   ```python
   assert y == x + 1
   ```
   :::

2. A question answered in words.

:::{dropdown} Solution
Only prose here.
:::

3. Divide by zero.

::::{dropdown} Solution
```python
z = x / 0
```
::::

## Further reading

:::{dropdown} Solution
not an exercise's
:::
"""


def test_solutions_are_found_with_their_exercise_and_code():
    found = check.solutions(EXERCISES)
    assert [s["exercise"] for s in found] == [1, 2, 3]
    assert found[0]["code"] == "y = x + 1\nassert y == x + 1\n"
    assert found[1]["code"] == ""
    assert found[2]["code"] == "z = x / 0\n"
    assert check.solutions("# no exercises\n") == []


def test_solutions_reject_bad_input():
    with pytest.raises(TypeError):
        check.solutions(b"## Exercises")
    with pytest.raises(ValueError, match="not closed"):
        check.solutions("## Exercises\n\n1. a\n\n:::{dropdown} Solution\ncode\n")


def test_a_failing_or_empty_solution_is_reported(tmp_path, capsys):
    pytest.importorskip("nbclient", reason="runs a kernel: the book's extra")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 2"),
        nbformat.v4.new_markdown_cell(EXERCISES),
    ]
    path = tmp_path / "99_toy.ipynb"
    nbformat.write(nb, path)
    before = path.read_text()
    problems = check.check_chapter(path, timeout=60)
    assert len(problems) == 2
    assert "exercise 2: no code" in problems[0]
    assert "exercise 3: ZeroDivisionError" in problems[1]
    out = capsys.readouterr().out
    assert "99_toy.ipynb: exercise 1: ok" in out
    assert path.read_text() == before  # the notebook is not changed
    nb.cells[0].source = "x = 'a'"  # a chapter cell that breaks a solution
    nbformat.write(nb, path)
    problems = check.check_chapter(path, timeout=60)
    assert any("exercise 1: TypeError" in p for p in problems)


def test_the_executed_chapter_is_written_without_its_solutions(tmp_path):
    pytest.importorskip("nbclient", reason="runs a kernel: the book's extra")
    nb = nbformat.v4.new_notebook()
    solved = EXERCISES.split("2. A question")[0]  # exercise 1 only: it runs
    nb.cells = [
        nbformat.v4.new_code_cell("x = 2\nprint(x * 21)"),
        nbformat.v4.new_markdown_cell(solved),
    ]
    path = tmp_path / "99_toy.ipynb"
    nbformat.write(nb, path)
    executed = tmp_path / "stage" / "notebooks" / "99_toy.ipynb"
    assert check.check_chapter(path, timeout=60, executed=executed) == []
    done = nbformat.read(executed, as_version=4)
    assert [c.cell_type for c in done.cells] == ["code", "markdown"]  # no solution
    assert done.cells[0].outputs[0]["text"] == "42\n"
    assert nbformat.read(path, as_version=4).cells[0].outputs == []  # source intact


def test_a_chapter_cell_that_fails_or_writes_to_stderr_is_a_problem(tmp_path):
    pytest.importorskip("nbclient", reason="runs a kernel: the book's extra")
    for source, expected in (
        ("import sys\nprint('careful', file=sys.stderr)", "stderr: 'careful"),
        ("1 / 0", "ZeroDivisionError"),
    ):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source)]
        path = tmp_path / "98_toy.ipynb"
        nbformat.write(nb, path)
        executed = tmp_path / "stage" / "98_toy.ipynb"
        problems = check.check_chapter(path, timeout=60, executed=executed)
        assert len(problems) == 1 and "chapter cell 0" in problems[0], problems
        assert expected in problems[0]
        assert not executed.exists()  # a failed chapter is not written
