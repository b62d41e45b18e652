"""The ``#:`` doc comments of documented names read as text, not as types.

Sphinx takes a ``#:`` comment above an assignment as the name's docstring, and
napoleon reads a first line ``text: more`` as ``type: description``. With the
book's nitpicky build (``-n -W``) the "type" becomes a reference that cannot be
resolved, and the build fails far from the cause. This test finds it at once.
"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "tripletutils").glob("[a-z]*.py"))
ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=")


def doc_comments(source):
    """Yield (line number, first comment line, assigned name) per ``#:`` block."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("#:") or (i and lines[i - 1].startswith("#:")):
            continue
        j = i
        while j < len(lines) and lines[j].startswith("#:"):
            j += 1
        match = ASSIGNMENT.match(lines[j]) if j < len(lines) else None
        yield i + 1, line[2:].strip(), match.group(1) if match else None


def looks_typed(first_line):
    """What napoleon would split off as a type: text before ': ' outside backticks."""
    outside = re.sub(r"`[^`]*`", "``", first_line)
    return re.search(r":\s", outside) is not None or outside.endswith(":")


def test_looks_typed_catches_the_failure_it_is_for():
    assert looks_typed("The candidates of chapter 8, in words: a, b")
    assert looks_typed("Ends with a colon:")
    assert not looks_typed("Anything :func:`keras.ops.convert_to_tensor` accepts")
    assert not looks_typed("A plain sentence, with a comma")


@pytest.mark.parametrize("name", MODULES)
def test_documented_names_have_untyped_first_lines(name):
    module = importlib.import_module(f"tripletutils.{name}")
    public = set(getattr(module, "__all__", ()))
    source = (ROOT / "tripletutils" / f"{name}.py").read_text()
    bad = [
        f"line {n}: {first!r}"
        for n, first, assigned in doc_comments(source)
        if assigned in public and looks_typed(first)
    ]
    assert not bad, (
        f"tripletutils/{name}.py: reword so no ': ' is on the first line: {bad}"
    )
