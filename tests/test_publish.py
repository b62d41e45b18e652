"""``make publish`` puts the built book on a gh-pages branch (ghp-import).

Run against a bare repository in a temporary folder, from a temporary clone of this
repository, so that neither this checkout nor any real remote is touched.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from test_book import HTML, require_build, toc_files

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.book


def _git(*args, cwd=None):
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120
    ).stdout


def test_make_publish_pushes_the_book_to_gh_pages(tmp_path):
    require_build()
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    _git("init", "--quiet", "--bare", str(remote))
    _git("clone", "--quiet", "--no-local", "--depth", "1", f"file://{ROOT}", str(work))
    for key, value in (("user.name", "Book test"), ("user.email", "book@test.invalid")):
        _git("config", key, value, cwd=work)
    proc = subprocess.run(
        [
            "make", "--no-print-directory", "-C", str(work), "publish",
            f"VENV={Path(sys.executable).parent.parent}",
            f"SITE={HTML}",
            f"PUBLISH_REMOTE={remote}",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = _git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).splitlines()
    print(f"gh-pages holds {len(files)} files; first: {files[:5]}")
    assert "index.html" in files and ".nojekyll" in files
    for entry in toc_files():
        assert f"{entry}.html" in files, entry
    # the branch holds the site only, not the sources
    assert "Makefile" not in files and "pyproject.toml" not in files


def test_publish_refuses_an_unbuilt_site(tmp_path):
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), "publish",
         f"SITE={tmp_path}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"{tmp_path} is not built: make html" in proc.stdout
