"""The book's repository URL: written once, in ``_config.yml``, copied elsewhere.

``repository.url`` in ``_config.yml`` is the one place the URL is written; Jupyter
Book's launch and repository buttons read it there. Other files need the URL as
text (the README's install line, each notebook's Colab install cell, the citation
file, the book's "Cite this book" section, pyproject's project URLs): they are
copies, and this script checks or rewrites them.

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
    ("notebooks/[0-9][0-9]_*.ipynb", r'REPO = \\"(' + URL_PATTERN + r')\\"'),
    ("CITATION.cff", r"repository-code: \"?(" + URL_PATTERN + r")\"?"),
    ("book/intro.md", r"url = \{(" + URL_PATTERN + r")\}"),
    ("pyproject.toml", r'Repository = "(' + URL_PATTERN + r')"'),
]


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


def disagreements(root: Path = ROOT) -> list[str]:
    """Copies whose URL differs from ``_config.yml``'s, one line each."""
    url = configured_url(root)
    return [
        f"{path.relative_to(root)}: {copy} (the configuration says {url})"
        for path, copy in copies(root)
        if copy != url
    ]


def set_url(url: str, root: Path = ROOT) -> None:
    """Write ``url`` into ``_config.yml`` and every copy."""
    if not re.fullmatch(URL_PATTERN, url):
        raise ValueError(f"expected https://github.com/OWNER/NAME, got {url!r}")
    old = configured_url(root)
    paths = {root / "_config.yml"} | {path for path, _ in copies(root)}
    for path in sorted(paths):
        path.write_text(path.read_text().replace(old, url))


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"] and len(argv) == 1:
        bad = disagreements()
        for line in bad:
            print(line)
        print(f"{len(copies())} copies checked, {len(bad)} disagree")
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
