"""The book's repository URL: written once, in ``_config.yml``, copied elsewhere.

``repository.url`` in ``_config.yml`` is the one place the URL is written; Jupyter
Book's launch and repository buttons read it there. Other files need the URL as
text (the README's install line, each notebook's Colab install cell, the citation
file, the book's "Cite this book" section, pyproject's project URLs): they are
copies, and this script checks or rewrites them. The published book's address
(GitHub Pages, ``https://OWNER.github.io/NAME/``) follows from the URL: the README's
link and badge and the issue templates' link are checked and rewritten with it.

    python tools/repo_url.py check            # exit 1 and list copies that disagree
    python tools/repo_url.py set https://github.com/you/your-fork
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
URL_PATTERN = r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"

# Each copy: a file (or glob) and the pattern whose group 1 is the URL there.
COPIES = [
    ("README.md", r"git\+(" + URL_PATTERN + r')"'),
    # the badges of the workflows and the links to their runs
    ("README.md", r"\((" + URL_PATTERN + r")/actions/workflows/"),
    ("notebooks/[0-9][0-9]_*.ipynb", r'REPO = \\"(' + URL_PATTERN + r')\\"'),
    ("CITATION.cff", r"repository-code: \"?(" + URL_PATTERN + r")\"?"),
    ("book/intro.md", r"url = \{(" + URL_PATTERN + r")\}"),
    ("pyproject.toml", r'Repository = "(' + URL_PATTERN + r')"'),
]

PAGES_PATTERN = r"https://[A-Za-z0-9-]+\.github\.io/(?:[A-Za-z0-9_.-]+/)?"
# Copies of the published book's address (GitHub Pages), derived from the URL.
PAGES_COPIES = ["README.md", ".github/ISSUE_TEMPLATE/config.yml"]


def pages_url(url: str) -> str:
    """The GitHub Pages address of the repository at ``url``.

    ``https://github.com/OWNER/NAME`` publishes to ``https://owner.github.io/NAME/``
    (the owner in lower case), and a repository named ``owner.github.io`` to
    ``https://owner.github.io/``.
    """
    if not re.fullmatch(URL_PATTERN, url):
        raise ValueError(f"expected https://github.com/OWNER/NAME, got {url!r}")
    owner, name = url.split("/")[-2:]
    host = f"{owner.lower()}.github.io"
    return f"https://{host}/" if name.lower() == host else f"https://{host}/{name}/"


def configured_url(root: Path = ROOT) -> str:
    """Return ``repository.url`` from ``root/_config.yml``.

    Raises
    ------
    ValueError
        If the configuration has no ``repository.url`` that is a GitHub URL.
    """
    text = (root / "_config.yml").read_text()
    match = re.search(
        r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.M
    )
    if not match or not re.fullmatch(URL_PATTERN, match.group(1)):
        raise ValueError(
            "_config.yml: expected `repository:` with `url: https://github.com/OWNER/"
            f"NAME`, found {match.group(1) if match else 'no repository.url'!r}"
        )
    return match.group(1)


def copies(root: Path = ROOT) -> list[tuple[Path, str]]:
    """Every copy of the URL outside ``_config.yml``: ``(file, url)`` pairs.

    Raises
    ------
    ValueError
        If a file that must hold a copy holds none.
    """
    found = []
    for pattern, regex in COPIES:
        files = sorted(root.glob(pattern))
        if not files:
            raise ValueError(f"no file matches {pattern!r} under {root}")
        for path in files:
            urls = re.findall(regex, path.read_text())
            if not urls:
                raise ValueError(f"{path.relative_to(root)}: no repository URL found")
            found += [(path, url) for url in urls]
    return found


def pages_copies(root: Path = ROOT) -> list[tuple[Path, str]]:
    """Every copy of the Pages address: ``(file, address)`` pairs.

    Raises
    ------
    ValueError
        If a file that must hold a copy is missing or holds none.
    """
    found = []
    for name in PAGES_COPIES:
        path = root / name
        urls = re.findall(PAGES_PATTERN, path.read_text()) if path.exists() else []
        if not urls:
            raise ValueError(f"{name}: no GitHub Pages address found")
        found += [(path, url) for url in urls]
    return found


def disagreements(root: Path = ROOT) -> list[str]:
    """Copies that differ from ``_config.yml``'s URL (or its Pages address).

    One line per file and wrong value: a README whose badges and install line
    all name another repository gives one line.
    """
    url = configured_url(root)
    pages = pages_url(url)
    bad = [(path, copy, url) for path, copy in copies(root) if copy != url] + [
        (path, copy, pages) for path, copy in pages_copies(root) if copy != pages
    ]
    return list(
        dict.fromkeys(
            f"{path.relative_to(root)}: {copy} (the configuration says {want})"
            for path, copy, want in bad
        )
    )


def set_url(url: str, root: Path = ROOT) -> None:
    """Write ``url`` into ``_config.yml`` and every copy."""
    if not re.fullmatch(URL_PATTERN, url):
        raise ValueError(f"expected https://github.com/OWNER/NAME, got {url!r}")
    old = configured_url(root)
    paths = {root / "_config.yml"} | {path for path, _ in copies(root)}
    for path in sorted(paths):
        path.write_text(path.read_text().replace(old, url))
    for path in sorted({path for path, _ in pages_copies(root)}):
        path.write_text(path.read_text().replace(pages_url(old), pages_url(url)))


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"] and len(argv) == 1:
        bad = disagreements()
        for line in bad:
            print(line)
        n = len(copies()) + len(pages_copies())
        print(f"{n} copies checked, {len(bad)} disagree")
        return 1 if bad else 0
    if argv[:1] == ["set"] and len(argv) == 2:
        set_url(argv[1])
        print(
            f"repository URL set to {argv[1]}; copies now disagreeing:",
            len(disagreements()),
        )
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
