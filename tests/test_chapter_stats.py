"""tools/chapter_stats.py: cells, reading time and exercises per chapter."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "chapter_stats", ROOT / "tools/chapter_stats.py"
)
stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stats)


def _notebook(tmp_path, cells):
    nb = {
        "cells": [
            {"cell_type": kind, "source": source, "metadata": {}}
            for kind, source in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "99_toy.ipynb"
    path.write_text(json.dumps(nb))
    return path


EXERCISES = """## Exercises

1. First question, with a {glue:text}`role:.2f` inside.

   :::{dropdown} Solution
   Worked.
   :::

2. Second question, only a hint.

## Next steps

3. Not an exercise: under another heading.
"""


def test_counts_cells_words_code_and_exercises(tmp_path):
    path = _notebook(
        tmp_path,
        [
            ("markdown", "# Title\n\nfive words of plain prose"),
            ("code", "x = 1\n\ny = 2\n"),
            ("markdown", EXERCISES),
        ],
    )
    s = stats.chapter_stats(path)
    assert (s["cells"], s["markdown"], s["code"]) == (3, 2, 1)
    assert s["code_lines"] == 2
    assert (s["exercises"], s["solved"]) == (2, 1)
    outside = "# Title five words of plain prose ## Exercises "
    outside += "## Next steps 3. Not an exercise: under another heading."
    # the exercises are not reading time (the review's rule); the rest of the page is
    assert s["words"] == len(outside.split())
    assert abs(s["minutes"] - (s["words"] / 150 + 2 / 20)) < 1e-9
    exercise_words = len(stats._exercise_block(EXERCISES).split())  # a role: 1 word
    assert abs(s["exercise_minutes"] - exercise_words / 150) < 1e-9


def test_solution_code_counts_in_the_exercise_minutes(tmp_path):
    block = "## Exercises\n\n1. Q.\n\n```python\nx = 1\n\ny = 2\n```\n"
    s = stats.chapter_stats(_notebook(tmp_path, [("markdown", block)]))
    assert s["words"] == 2 and s["minutes"] == 2 / 150  # the heading only
    assert abs(s["exercise_minutes"] - (len("1. Q.".split()) / 150 + 2 / 20)) < 1e-9


def test_a_chapter_without_exercises_has_none(tmp_path):
    s = stats.chapter_stats(_notebook(tmp_path, [("markdown", "# Only prose")]))
    assert (s["exercises"], s["solved"]) == (0, 0)


def test_limits_set_the_exit_code(tmp_path, capsys):
    path = _notebook(tmp_path, [("markdown", "# A"), ("code", "x = 1")])
    assert stats.main([str(path), "--limit-cells", "2"]) == 0
    assert stats.main([str(path), "--limit-cells", "1"]) == 1
    assert "above the limits: 99_toy" in capsys.readouterr().out


def test_every_chapter_is_counted():
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert chapters
    for path in chapters:
        s = stats.chapter_stats(path)
        assert s["cells"] == s["markdown"] + s["code"] and s["exercises"] >= 1, path
        # every exercise has its worked solution (the teaching issue: all of them)
        assert s["solved"] == s["exercises"], f"{path.name}: {s}"
