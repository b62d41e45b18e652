"""What every chapter notebook owes its reader, checked on the committed files.

Code lines fit the book's width, cells stay short, each chapter has at least three
figures, ends with take-aways and exercises (one worked solution, hidden until
opened), and starts with a Colab cell that installs tripletutils without touching
Colab's TensorFlow and that the rendered book hides.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_LINE, MAX_CELL_LINES, MIN_FIGURES = 88, 30, 3


def _cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell.get("source", []))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_and_cells_are_short(nb):
    for i, cell in enumerate(_cells(nb)):
        if cell["cell_type"] != "code":
            continue
        lines = _source(cell).split("\n")
        assert len(lines) <= MAX_CELL_LINES, f"cell {i}: {len(lines)} lines"
        for line in lines:
            assert len(line) <= MAX_LINE, f"cell {i}: {len(line)} chars: {line[:60]}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_at_least_three_figures(nb):
    figures = sum(
        "image/png" in out.get("data", {})
        for cell in _cells(nb)
        if cell["cell_type"] == "code"
        for out in cell.get("outputs", [])
    )
    assert figures >= MIN_FIGURES, f"{nb.name}: {figures} figures"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_ends_with_take_aways_and_exercises_with_a_worked_solution(nb):
    markdown = [_source(c) for c in _cells(nb) if c["cell_type"] == "markdown"]
    text = "\n".join(markdown)
    takeaway = text.find("## What to take away")
    exercises = text.find("## Exercises")
    assert 0 <= takeaway < exercises, "'What to take away' then 'Exercises'"
    after = text[exercises:]
    solutions = re.findall(r"^[ \t]*:{3,}\{dropdown\} Solution", after, flags=re.M)
    assert solutions, "no worked solution (a `:::{dropdown} Solution` block)"
    assert "## " not in after.replace("## Exercises", "", 1).replace("### ", ""), (
        "Exercises must be the last section"
    )


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_cell_keeps_colabs_tensorflow_and_is_hidden(nb):
    first = next(c for c in _cells(nb) if c["cell_type"] == "code")
    source = _source(first)
    assert "remove-cell" in first["metadata"].get("tags", []), "not hidden in the book"
    assert 'if "google.colab" in sys.modules:' in source
    (pip,) = re.findall(r"^\s*%pip install .*$", source, flags=re.M)
    # no --upgrade: pip then keeps an installed TensorFlow that satisfies the range
    assert not re.search(r"\s(-U|--upgrade|--force-reinstall)\b", pip), pip
    # the package from the book's repository, with an extra where the chapter needs one
    assert re.search(r'"tripletutils(\[\w+(,\w+)*\])? @ git\+\{REPO\}"', pip), pip
    assert 'version("tensorflow") == tf_before' in source
    assert first.get("outputs", []) == [], "the cell must print nothing off Colab"


#: Calls that list a folder's contents: their output grows with what earlier runs
#: (of this chapter or of others) left on disk.
LISTING = re.compile(r"\.(iterdir|glob|rglob)\(|os\.listdir\(|os\.scandir\(|os\.walk\(")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_compared_cells_do_not_list_shared_folders(nb):
    """A compared cell lists a folder only after the chapter has emptied one.

    (``shutil.rmtree`` in that cell or an earlier one: the chapter's own run
    folder, so that the listing shows this run's files only.)
    """
    emptied = False
    for i, cell in enumerate(_cells(nb)):
        if cell["cell_type"] != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        src = _source(cell)
        emptied = emptied or "rmtree(" in src
        if "nbval-ignore-output" in tags or not LISTING.search(src):
            continue
        assert emptied, (
            f"cell {i} lists a folder that earlier runs may have filled; empty it "
            "first (shutil.rmtree) or list only this run's files"
        )


#: The two functions every choice in the chapters goes through.
CHOOSERS = ("choose_on_validation(", "choose_threshold(")
#: A choice made by hand would take a maximum; the ones the chapters take and why
#: none of them chooses anything on test data.
HAND_MAXIMA = re.compile(r"idxmax\(|argmax\(|max\([^()]*key=")
ALLOWED_MAXIMA = {
    ("07", "top = means.idxmax()"): "ranks the final test scores, reports only",
    ("06", "hardest_pos = ops.argmax("): "batch-hard's hardest positive, in a loss",
    ("10", "top = max(METHODS, key="): "names the best test mean, reports only",
    ("12", 'same_results["speed-up"].idxmax()'): "the fastest benchmark setting",
    ("12", 'rows["images_per_second"].idxmax()'): "the fastest inference batch size",
    ("13", "np.argmax(queries[i : i + chunk] @ index.T"): "a search's nearest item",
}


def _call_arguments(source: str, start: int) -> str:
    """The text between the parenthesis that opens at ``start`` and its match."""
    depth = 0
    for end in range(start, len(source)):
        depth += {"(": 1, ")": -1}.get(source[end], 0)
        if depth == 0:
            return source[start : end + 1]
    raise AssertionError(f"unbalanced call at {source[start - 30 : start + 30]!r}")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_choices_are_made_on_validation_only(nb):
    """Every choice goes through a chooser, never handed test data."""
    chapter = nb.name[:2]
    for i, cell in enumerate(_cells(nb)):
        source = _source(cell)
        if cell["cell_type"] != "code":
            continue
        for chooser in CHOOSERS:
            for match in re.finditer(re.escape(chooser), source):
                args = _call_arguments(source, match.end() - 1)
                assert "test" not in args, f"cell {i}: {chooser}{args[1:]} on test data"
        for line in source.split("\n"):
            if HAND_MAXIMA.search(line):
                allowed = [
                    k for k in ALLOWED_MAXIMA if k[0] == chapter and k[1] in line
                ]
                assert allowed, (
                    f"cell {i}: a maximum taken by hand ({line.strip()!r}); choose "
                    "with choose_on_validation, or add it to ALLOWED_MAXIMA with why"
                )


def test_the_chapters_that_choose_use_the_chooser():
    calls = {
        nb.name[:2]: sum(_source(c).count("choose_on_validation(") for c in _cells(nb))
        for nb in NOTEBOOKS
    }
    assert all(calls[ch] > 0 for ch in ("07", "08", "10")), calls
