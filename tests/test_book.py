"""The book's table of contents, and the built HTML (``_build/html``)."""

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def require_build():
    if not (HTML / "index.html").exists():
        message = "the book is not built: run `make html` (or `make book`) first"
        if os.environ.get("TRIPLETUTILS_REQUIRE_BOOK") == "1":
            pytest.fail(message)
        pytest.skip(message)


def test_every_notebook_is_in_the_toc():
    listed = set(toc_files())
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{nb.stem}" in listed, f"{nb.name} is missing from _toc.yml"


def test_every_toc_entry_exists():
    for entry in toc_files():
        assert (ROOT / f"{entry}.md").exists() or (ROOT / f"{entry}.ipynb").exists(), (
            entry
        )


def test_notebooks_are_numbered():
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        assert re.fullmatch(r"\d\d_[a-z0-9_]+", nb.stem), nb.name


@pytest.mark.book
def test_every_page_was_built():
    require_build()
    for entry in toc_files():
        assert (HTML / f"{entry}.html").exists(), entry


@pytest.mark.book
def test_built_html_holds_no_error_output():
    require_build()
    pages = sorted(HTML.rglob("*.html"))
    assert len(pages) >= len(toc_files())
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        assert "Traceback (most recent call last)" not in text, page
        assert 'class="output stderr"' not in text, f"{page}: stderr output"
        assert 'class="output traceback' not in text, f"{page}: error output"
        assert "system-message" not in text, f"{page}: docutils error"


@pytest.mark.book
def test_colab_cell_is_hidden_and_launch_buttons_remain():
    require_build()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    owner_repo = config["repository"]["url"].removeprefix("https://github.com/")
    for entry in toc_files():
        if not entry.startswith("notebooks/"):
            continue
        page = (HTML / f"{entry}.html").read_text(encoding="utf-8")
        assert "google.colab" not in page, f"{entry}: the Colab cell is shown"
        colab = (
            f"https://colab.research.google.com/github/{owner_repo}/blob/main/"
            f"{entry}.ipynb"
        )
        assert colab in page, f"{entry}: no Colab launch button ({colab})"
        assert "mybinder.org/v2/gh/" + owner_repo in page, f"{entry}: no Binder button"
