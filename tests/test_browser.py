"""Open the built book in headless Chromium (Selenium) and check what a reader sees.

Needs ``_build/html`` (``make html``) and Debian's ``chromium`` and ``chromium-driver``
(``make test`` installs them when it runs as root). Skipped with a reason otherwise,
unless ``TRIPLETUTILS_REQUIRE_BROWSER=1`` (set by CI), which turns a skip into a failure.
"""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from test_book import HTML, require_build, toc_files

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
pytestmark = pytest.mark.book


def _missing(reason):
    if os.environ.get("TRIPLETUTILS_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    require_build()
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _missing(
            "chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(driver, url):
    driver.get(url)
    driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const ready = () => document.readyState === "complete";
        const wait = () => ready() ? done(true) : setTimeout(wait, 50);
        wait();
        """
    )
    # let MathJax finish typesetting when the page uses it
    driver.set_script_timeout(60)
    driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            MathJax.startup.promise.then(() => done(true), () => done(false));
        } else { done(true); }
        """
    )


def _severe(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_pages_render_without_console_errors_or_broken_images(site, browser):
    titles = []
    for entry in toc_files():
        _open(browser, f"{site}/{entry}.html")
        errors = _severe(browser)
        assert not errors, f"{entry}: console errors {errors}"
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
        )
        assert not broken, f"{entry}: images that did not load: {broken}"
        titles.append(
            browser.execute_script(
                "return document.querySelector('main h1').textContent.trim();"
            )
        )
    assert len(titles) == len(toc_files())


def test_sidebar_lists_every_chapter(site, browser):
    _open(browser, f"{site}/book/intro.html")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference')).map(a => a.getAttribute('href'));"
    )
    hrefs = " ".join(links)
    for entry in toc_files()[1:]:
        assert Path(entry).name + ".html" in hrefs, (
            f"{entry} missing from the sidebar: {links}"
        )


def test_mathjax_renders_the_loss_formula(site, browser):
    _open(browser, f"{site}/notebooks/03_triplet_loss.html")
    rendered = browser.execute_script(
        "return Array.from(document.querySelectorAll('mjx-container[display=\"true\"]')).map(m => m.textContent);"
    )
    assert rendered, "no display formula was typeset by MathJax"
    assert (
        browser.execute_script(
            "return document.querySelectorAll('mjx-container').length;"
        )
        > 10
    )
    raw = browser.execute_script("return document.querySelector('main').innerText;")
    assert "\\max\\bigl" not in raw, "the loss formula is still raw LaTeX"
    assert not _severe(browser)


def test_search_finds_margin(site, browser):
    _open(browser, f"{site}/search.html?q=margin")
    browser.set_script_timeout(60)
    count = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const start = Date.now();
        const poll = () => {
            const items = document.querySelectorAll('#search-results ul.search li');
            if (items.length > 0 || Date.now() - start > 30000) { done(items.length); }
            else { setTimeout(poll, 200); }
        };
        poll();
        """
    )
    assert count > 0, "the search page found nothing for 'margin'"


@pytest.mark.parametrize(
    "entry,name",
    [
        ("book/intro", "intro.png"),
        ("notebooks/05_per_class_evaluation", "evaluation.png"),
    ],
)
def test_screenshots(site, browser, entry, name):
    _open(browser, f"{site}/{entry}.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
