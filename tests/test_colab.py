"""Colab's runtime, read from constraints-colab.txt: what the chapters may rely on.

The full check (every chapter alone, on Colab's stack) is ``make colab``
(tools/colab_check.py); these tests read files only.
"""

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "colab_check", ROOT / "tools/colab_check.py"
)
colab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab)
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: Import names of the distributions whose import name is not their own.
IMPORT_NAMES = {
    "scikit-learn": "sklearn",
    "pillow": "PIL",
    "umap-learn": "umap",
    "ipython": "IPython",
    "protobuf": "google",
}


def _requires_python() -> SpecifierSet:
    text = (ROOT / "pyproject.toml").read_text()
    return SpecifierSet(re.search(r'^requires-python = "([^"]+)"', text, re.M)[1])


def _dependencies() -> list:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S)[1]
    return [re.split(r"[<>=!~ \[]", d)[0] for d in re.findall(r'"([^"]+)"', block)]


def _module(dist: str) -> str:
    dist = dist.lower().replace("_", "-")
    return IMPORT_NAMES.get(dist, dist.replace("-", "_"))


def _imports(notebook: Path) -> set:
    names = set()
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        code = "\n".join(
            "" if line.lstrip().startswith(("%", "!")) else line for line in lines
        )
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_the_package_installs_on_colabs_python():
    version = colab.colab_python_version()
    assert version.startswith("3.13.")
    assert _requires_python().contains(version), (
        f"requires-python excludes Colab's Python {version}: the install cell fails"
    )
    # the check itself can fail: a range that stops at 3.13 excludes it
    assert not SpecifierSet(">=3.11,<3.13").contains(version)


def test_colabs_pins_satisfy_the_package():
    pins = colab.colab_packages()
    assert {"tensorflow", "keras", "numpy", "nbclient", "psutil"} <= set(pins)
    for line in re.findall(
        r'"([^"]+)"',
        re.search(
            r"^dependencies = \[(.*?)^\]",
            (ROOT / "pyproject.toml").read_text(),
            re.M | re.S,
        )[1],
    ):
        name = re.split(r"[<>=!~ \[]", line)[0].lower()
        if name in pins:  # else pip installs it beside Colab's packages
            assert SpecifierSet(line[len(name) :].split(";")[0]).contains(pins[name]), (
                f"Colab's {name}=={pins[name]} does not satisfy {line}"
            )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_imports_only_what_colab_and_its_install_cell_give(chapter):
    provided = {_module(d) for d in colab.colab_packages()}
    provided |= {_module(d) for d in _dependencies()} | {"tripletutils", "google"}
    missing = {
        name
        for name in _imports(chapter)
        if name not in sys.stdlib_module_names and name not in provided
    }
    assert not missing, f"{chapter.name} imports {missing}: not on Colab, not installed"


def test_the_import_check_can_fail(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "source": "%pip install x\nimport faiss\n"},
            {"cell_type": "code", "source": "from sklearn import svm\nimport os\n"},
        ]
    }
    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps(nb))
    assert _imports(path) == {"faiss", "sklearn", "os"}
    provided = {_module(d) for d in colab.colab_packages()}
    assert "sklearn" in provided and "faiss" not in provided


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_installs_from_a_repo_the_check_can_replace(chapter):
    nb = json.loads(chapter.read_text())
    copy = colab.for_colab(nb, "file:///somewhere/book")
    sources = ["".join(c["source"]) for c in copy["cells"] if c["cell_type"] == "code"]
    assert sum('REPO = "file:///somewhere/book"' in s for s in sources) == 1
    assert all(c.get("outputs", []) == [] for c in copy["cells"])
    assert nb != copy or not any(c.get("outputs") for c in nb["cells"])


def test_for_colab_needs_an_install_cell():
    nb = {"cells": [{"cell_type": "code", "source": "import numpy\n", "outputs": []}]}
    with pytest.raises(ValueError, match="no install cell"):
        colab.for_colab(nb, "file:///x")


def test_colab_packages_are_exact_pins(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("# a comment\npython_version==3.13.1\nNumPy_x==1.0 # pinned\n")
    assert colab.colab_packages(path) == {"numpy-x": "1.0"}
    assert colab.colab_python_version(path) == "3.13.1"
    path.write_text("numpy>=1\n")
    with pytest.raises(ValueError, match="exact pin"):
        colab.colab_packages(path)
    path.write_text("numpy==1\n")
    with pytest.raises(ValueError, match="python_version"):
        colab.colab_python_version(path)
