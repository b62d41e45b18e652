"""Result figures in the chapters' prose come from cells (myst-nb ``glue``).

A number typed into markdown goes stale the day a re-run changes it; a glued one
is pasted from the output of the cell that computed it. This test scans every
markdown cell of every chapter, after removing what is not prose (code, maths,
links, glue and citation roles), for *result-like* figures:

* a decimal with two or more digits after the point (``0.9883``, ``0.12``);
* a decimal percentage (``98.8 %``) or speed-up (``1.45x``).

Each must be glued, or listed below with the reason it may be typed: a figure
cited from elsewhere (the seed's README, a paper), a setting chosen by the book
(a margin, a dropout rate) or a worked derivation. Every glue key a chapter's
prose uses must be defined by a ``glue(...)`` call in that chapter.
"""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: Figures any chapter may type, with their source.
CITED: dict[str, str] = {}  # the seed's 0.9911 and TPS figures are glued too

#: Per chapter: typed figures that are not results of this book, with reasons.
ALLOWED: dict[str, dict[str, str]] = {
    "09": {"0.1%": "exercise 5's false-positive rate (a setting the reader chooses)"},
    "11": {"0.05": "exercise 4's margin (a setting the reader chooses)"},
    "13": {"2.21": "the TensorFlow version"},
}

_NOT_PROSE = [
    re.compile(r"```.*?```", re.S),  # fenced code
    re.compile(r"\$\$.*?\$\$", re.S),  # display maths
    re.compile(r"\$[^$\n]+\$"),  # inline maths
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: {glue:text}`k:.4f`, {cite}`x`
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<https?://[^>]*>|https?://\S+"),  # bare links
]
RESULT_LIKE = re.compile(
    r"(?<![\w.])(\d+\.\d{2,}|\d+\.\d+\s?%|\d+\.\d+\s?[x×])(?![\w.])"
)
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)(?::[^`]*)?`")
GLUE_CALL = re.compile(r"""glue\(\s*f?["']([^"']+)["']""")


def _cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def glued_values(cells: list[dict]):
    """Each glued output of a chapter: (key, stored text, its literal value or None)."""
    for c in cells:
        for out in c.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if not name:
                continue
            text = "".join(
                v for k, v in out.get("data", {}).items() if k.endswith("text/plain")
            )
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = None
            yield name, text, value


def _prose(markdown: str) -> str:
    for pattern in _NOT_PROSE:
        markdown = pattern.sub(" ", markdown)
    return markdown


def typed_figures(markdown: str) -> list[str]:
    """The result-like figures typed in a markdown cell's prose."""
    return [m.group(1) for m in RESULT_LIKE.finditer(_prose(markdown))]


@pytest.mark.parametrize(
    "text, found",
    [
        ("The seed recipe scored 0.9883 on its test triplets.", ["0.9883"]),
        ("a gap of 0.12 points", ["0.12"]),
        ("about 98.8 % of the queries", ["98.8 %"]),
        ("1.45x the plain port", ["1.45x"]),
        ("a margin of 0.2 and 54,200 triplets", []),
        ("scored {glue:text}`p1:.4f` against `lr=0.001`", []),
        ("$\\alpha = 0.25$ and [v0.11](https://x.org/v0.11.2)", []),
        ("```python\nprint(0.9883)\n```", []),
    ],
)
def test_typed_figures_detector(text, found):
    assert typed_figures(text) == found


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_result_figures_in_prose_are_glued(nb):
    allowed = {**CITED, **ALLOWED.get(nb.stem[:2], {})}
    typed = []
    for i, cell in enumerate(_cells(nb)):
        if cell["cell_type"] == "markdown":
            src = "".join(cell["source"])
            typed += [f"cell {i}: {f}" for f in typed_figures(src) if f not in allowed]
    assert not typed, (
        "result figures typed into prose (glue them from the cell that computes "
        f"them, or allow them with a reason in tests/test_glue.py): {typed}"
    )


def _prose_keys(cells, pattern):
    """The glue keys a chapter's markdown cells refer to through ``pattern``."""
    return {
        key
        for c in cells
        if c["cell_type"] == "markdown"
        for key in pattern.findall("".join(c["source"]))
    }


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_glue_key_is_defined_in_the_chapter(nb):
    cells = _cells(nb)
    used = _prose_keys(cells, GLUE_ROLE)
    defined = set()
    for c in cells:
        if c["cell_type"] != "code":
            continue
        for out in c.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                defined.add(name)
    missing = sorted(used - defined)
    assert not missing, (
        f"glue keys used in prose but not in any cell's output: {missing}"
    )


GLUE_FORMATTED = re.compile(r"\{glue(?::\w+)?\}`([^`:]+):[^`]+`")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_formatted_glue_values_are_plain_numbers(nb):
    """A key shown with a format (``{glue:text}`k:.2f```) must hold a plain number.

    myst-nb formats the stored text, so ``np.float64(2.17)`` (NumPy 2's repr)
    fails to format: a warning, and with ``-W`` a failed book build.
    """
    cells = _cells(nb)
    formatted = _prose_keys(cells, GLUE_FORMATTED)
    bad = []
    for name, text, value in glued_values(cells):
        if name in formatted and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            bad.append(f"{name}: {text[:40]}")
    assert not bad, f"glue float(...) or int(...) for these: {bad}"
