"""The repository URL is written once (``_config.yml``); every copy agrees."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "repo_url", ROOT / "tools" / "repo_url.py"
)
repo_url = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(repo_url)

FILES = [
    "_config.yml",
    "README.md",
    "CITATION.cff",
    "book/intro.md",
    "pyproject.toml",
    ".github/ISSUE_TEMPLATE/config.yml",
]


@pytest.fixture
def copy_of_repo(tmp_path):
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    for nb in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(nb, tmp_path / "notebooks" / nb.name)
    return tmp_path


def test_every_copy_agrees_with_the_configuration():
    url = repo_url.configured_url()
    found = repo_url.copies()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    # the README, each notebook's Colab cell, CITATION.cff, the intro, pyproject
    assert {path for path, _ in found} >= {ROOT / "README.md", *notebooks}
    assert repo_url.disagreements() == [], url


def test_a_disagreeing_copy_is_caught(copy_of_repo):
    readme = copy_of_repo / "README.md"
    url = repo_url.configured_url(copy_of_repo)
    readme.write_text(
        readme.read_text().replace(url, "https://github.com/someone/else")
    )
    bad = repo_url.disagreements(copy_of_repo)
    assert len(bad) == 1 and bad[0].startswith("README.md: https://github.com/someone/")


def test_set_url_rewrites_every_copy(copy_of_repo):
    repo_url.set_url("https://github.com/reader/fork", copy_of_repo)
    assert repo_url.configured_url(copy_of_repo) == "https://github.com/reader/fork"
    assert repo_url.disagreements(copy_of_repo) == []
    assert {u for _, u in repo_url.copies(copy_of_repo)} == {
        "https://github.com/reader/fork"
    }
    assert {u for _, u in repo_url.pages_copies(copy_of_repo)} == {
        "https://reader.github.io/fork/"
    }


def test_bad_urls_are_rejected(copy_of_repo):
    with pytest.raises(ValueError, match="expected https://github.com/OWNER/NAME"):
        repo_url.set_url("git@github.com:reader/fork.git", copy_of_repo)
    config = copy_of_repo / "_config.yml"
    config.write_text(
        config.read_text().replace("  url: https://github.com/", "  url: ")
    )
    with pytest.raises(ValueError, match="_config.yml: expected"):
        repo_url.configured_url(copy_of_repo)


def test_the_readme_badges_and_book_link_are_copies():
    readme = ROOT / "README.md"
    badges = [u for path, u in repo_url.copies() if path == readme]
    assert len(badges) >= 3  # the install line, the tests badge and its link
    pages = [u for path, u in repo_url.pages_copies() if path == readme]
    assert pages and set(pages) == {repo_url.pages_url(repo_url.configured_url())}


def test_pages_url():
    assert (
        repo_url.pages_url("https://github.com/triplet-loss-book/triplet-loss-book")
        == "https://triplet-loss-book.github.io/triplet-loss-book/"
    )
    assert repo_url.pages_url("https://github.com/Reader/Fork") == (
        "https://reader.github.io/Fork/"
    )
    assert repo_url.pages_url("https://github.com/reader/reader.github.io") == (
        "https://reader.github.io/"
    )


def test_a_disagreeing_book_link_is_caught(copy_of_repo):
    config = copy_of_repo / ".github/ISSUE_TEMPLATE/config.yml"
    pages = repo_url.pages_url(repo_url.configured_url(copy_of_repo))
    config.write_text(config.read_text().replace(pages, "https://else.github.io/x/"))
    assert repo_url.disagreements(copy_of_repo) == [
        ".github/ISSUE_TEMPLATE/config.yml: https://else.github.io/x/ "
        f"(the configuration says {pages})"
    ]
