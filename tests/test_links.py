"""Every internal link and anchor of the built book resolves (``_build/html``).

External links (``https:``, ``mailto:``...) are not followed: the book is built and
tested offline. A relative ``href`` or ``src`` must name a file of the build, and a
``#fragment`` must name an ``id`` (or ``name``) in the page it points to.
"""

import html.parser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from test_book import HTML, require_build

pytestmark = pytest.mark.book


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag != "meta" else ():
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None and tag != "base":
                self.links.append((tag, attrs[key]))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(site: Path) -> list[str]:
    """Internal links of every HTML page under ``site`` that do not resolve."""
    # _static/ holds the theme's assets (and Jinja templates named *.html), not pages
    pages = {
        p.resolve(): _parse(p)
        for p in site.rglob("*.html")
        if "_static" not in p.relative_to(site).parts
    }
    broken = []
    for path, page in sorted(pages.items()):
        for tag, link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # external (https:, mailto:, data:, javascript:)
            target = (
                (path.parent / unquote(parts.path)).resolve() if parts.path else path
            )
            if target.is_dir():
                target = target / "index.html"
            where = f"{path.relative_to(site.resolve())}: <{tag}> {link}"
            if not target.is_file():
                broken.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{where} (no anchor #{parts.fragment})")
    return broken


def test_every_internal_link_resolves():
    require_build()
    pages = list(HTML.rglob("*.html"))
    assert len(pages) >= 10
    broken = broken_links(HTML)
    assert broken == [], "\n".join(broken[:40])


def test_a_broken_link_and_anchor_are_caught(tmp_path):
    (tmp_path / "a.html").write_text(
        '<p id="top"><a href="b.html#missing">b</a> <a href="a.html#top">ok</a>'
        '<img src="img/none.png"><a href="https://example.org/x">ext</a></p>'
    )
    (tmp_path / "b.html").write_text('<h1 id="here">b</h1><a href="#here">self</a>')
    assert broken_links(tmp_path) == [
        "a.html: <a> b.html#missing (no anchor #missing)",
        "a.html: <img> img/none.png (no such file)",
    ]
