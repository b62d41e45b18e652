"""Open the built book in headless Chromium (Selenium) and check what a reader sees.

Needs ``_build/html`` (``make html``) and Debian's ``chromium`` and ``chromium-driver``
(``make test`` installs them when it runs as root). Skipped with a reason otherwise,
unless ``TRIPLETUTILS_REQUIRE_BROWSER=1`` (set by CI), which turns a skip into a
failure.
"""

import functools
import http.server
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_book import HTML, require_build, toc_files

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
EXPLORER_PAGES = {
    "notebooks/05_per_class_evaluation": "seen digits 0-9",
    "notebooks/10_unseen_classes": "unseen digits 6-9 among the seen ones",
}
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
    # CHROME_BIN / CHROMEDRIVER name any Chrome and its driver (GitHub's runners);
    # otherwise Debian's chromium and chromium-driver (`make browser`).
    chromium = (
        os.environ.get("CHROME_BIN")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver_path:
        _missing(
            "chromium and chromedriver are not installed: run `make browser` (as "
            "root), or set CHROME_BIN and CHROMEDRIVER"
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
            "return Array.from(document.images)"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
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
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference'))"
        ".map(a => a.getAttribute('href'));"
    )
    hrefs = " ".join(links)
    for entry in toc_files()[1:]:
        assert Path(entry).name + ".html" in hrefs, (
            f"{entry} missing from the sidebar: {links}"
        )


def test_mathjax_renders_the_loss_formula(site, browser):
    _open(browser, f"{site}/notebooks/03_triplet_loss.html")
    rendered = browser.execute_script(
        "return Array.from(document.querySelectorAll("
        "'mjx-container[display=\"true\"]')).map(m => m.textContent);"
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


def _element_screenshot(driver, element, name):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    time.sleep(0.3)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert element.screenshot(str(path))
    return path


def test_footer_shows_both_licences(site, browser):
    from selenium.webdriver.common.by import By

    _open(browser, f"{site}/book/intro.html")
    footer = browser.find_element(By.CSS_SELECTOR, "footer .extra_footer")
    text = " ".join(footer.text.split())
    assert "Code: MIT licence" in text and "Prose and figures: CC BY-SA 4.0" in text
    hrefs = [a.get_attribute("href") for a in footer.find_elements(By.TAG_NAME, "a")]
    assert "https://creativecommons.org/licenses/by-sa/4.0/" in hrefs
    path = _element_screenshot(browser, footer, "footer_licences.png")
    assert path.stat().st_size > 2_000


def test_chapter6_heatmap_marks_mined_pairs(site, browser):
    from selenium.webdriver.common.by import By

    _open(browser, f"{site}/notebooks/06_online_mining.html")
    cells = [
        c
        for c in browser.find_elements(By.CSS_SELECTOR, "div.cell")
        if "hardest negative (nearest, other digit)" in c.text
    ]
    assert len(cells) == 1, "the heatmap cell of chapter 6"
    image = cells[0].find_element(By.CSS_SELECTOR, ".cell_output img")
    assert browser.execute_script("return arguments[0].naturalWidth;", image) > 300
    path = _element_screenshot(browser, image, "chapter6_heatmap.png")
    assert path.stat().st_size > 10_000


def test_worked_solution_is_hidden_until_opened(site, browser):
    from selenium.webdriver.common.by import By

    _open(browser, f"{site}/notebooks/06_online_mining.html")
    solutions = [
        d
        for d in browser.find_elements(By.CSS_SELECTOR, "details.sd-dropdown")
        if d.find_element(By.TAG_NAME, "summary").text.strip().startswith("Solution")
    ]
    assert solutions, "no Solution dropdown on chapter 6"
    solution = solutions[0]
    body = solution.find_element(By.CSS_SELECTOR, ".sd-summary-content")
    assert solution.get_attribute("open") is None and not body.is_displayed()
    summary = solution.find_element(By.TAG_NAME, "summary")
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", summary)
    summary.click()
    time.sleep(0.5)
    assert solution.get_attribute("open") is not None and body.is_displayed()
    assert len(body.text) > 100
    _element_screenshot(browser, solution, "chapter6_solution_open.png")
    assert not _severe(browser)


# ------------------------------------------------------------ embedding explorer
# Bokeh draws into shadow DOM: these helpers search every shadow root, and find the
# explorer's figure through BokehJS's own view index (Bokeh.index).
_EXPLORER_JS = """
window.__deep = (selector) => {
  const out = [];
  const walk = (root) => {
    root.querySelectorAll(selector).forEach((e) => out.push(e));
    root.querySelectorAll("*").forEach((e) => {
      if (e.shadowRoot) { walk(e.shadowRoot); }
    });
  };
  walk(document);
  return out;
};
window.__explorer = () => {
  if (!window.Bokeh || !Bokeh.index) { return null; }
  for (const view of Bokeh.index.all_views()) {
    if (view.model.name === "embedding-explorer") { return view; }
  }
  return null;
};
"""


def _wait_for_explorer(driver, timeout=30):
    """Wait (bounded) until the explorer's canvas is drawn; return its facts."""
    driver.execute_script(_EXPLORER_JS)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        facts = driver.execute_script(
            """
            const view = __explorer();
            if (!view) { return null; }
            const canvas = view.canvas_view.el.getBoundingClientRect();
            const target = document.querySelector(".embedding-explorer");
            const script = document.querySelector("script[data-bokehjs]");
            return {
              width: canvas.width, height: canvas.height,
              points: view.model.renderers.reduce(
                (n, r) => n + r.data_source.data.x.length, 0),
              legend: __deep(".bk-item").map((e) => e.textContent.trim()),
              markers: [...new Set(view.model.renderers.map(
                (r) => r.glyph.marker.value || r.glyph.marker))],
              fallback: target ? target.querySelectorAll(".explorer-fallback").length
                               : -1,
              bokehjs_src: script ? script.getAttribute("src") : null,
              inline_bokehjs: script ? script.textContent.length : 0,
            };
            """
        )
        if facts and facts["width"] > 0 and facts["height"] > 0:
            return facts
        time.sleep(0.2)
    pytest.fail(f"the embedding explorer did not render within {timeout} s")


_POINTS_JS = """
const view = __explorer();
const box = view.canvas_view.el.getBoundingClientRect();
const frame = view.frame, bbox = frame.bbox;
const points = [];
for (const r of view.model.renderers) {
  const d = r.data_source.data;
  for (let i = 0; i < d.x.length; i++) {
    points.push({
      x: box.left + frame.x_scale.compute(d.x[i]),
      y: box.top + frame.y_scale.compute(d.y[i]),
      data_x: d.x[i], data_y: d.y[i],
      label: d.label[i], id: Number(d.id[i]), group: d.group[i],
    });
  }
}
const inside = (p) =>
  p.x > box.left + bbox.left + 25 && p.x < box.left + bbox.right - 25 &&
  p.y > box.top + bbox.top + 25 && p.y < box.top + bbox.bottom - 25;
const gap = (p) => {
  let nearest = Infinity;
  for (const q of points) {
    if (q !== p) { nearest = Math.min(nearest, Math.hypot(q.x - p.x, q.y - p.y)); }
  }
  return nearest;
};
"""


def _isolated_point(driver, hidden=(), spacing=16):
    """Screen position, label and id of a shown point with no other point (of any
    class) within ``spacing`` pixels: the point farthest from its nearest
    neighbour, after zooming in on it (as the zoom tools do, through the plot's
    ranges) until the others lie that far away."""
    driver.execute_script(
        "document.querySelector('.embedding-explorer').scrollIntoView("
        "{block: 'center'});"
    )
    time.sleep(0.3)
    driver.execute_script(
        _POINTS_JS
        + """
        let best = null, best_gap = -1;
        for (const p of points) {
          if (arguments[0].includes(p.label) || !inside(p)) { continue; }
          const g = gap(p);
          if (g > best_gap) { best_gap = g; best = p; }
        }
        const zoom = Math.max(1, arguments[1] / best_gap);
        const xr = view.model.x_range, yr = view.model.y_range;
        const half_x = (xr.end - xr.start) / (2 * zoom);
        const half_y = (yr.end - yr.start) / (2 * zoom);
        xr.setv({start: best.data_x - half_x, end: best.data_x + half_x});
        yr.setv({start: best.data_y - half_y, end: best.data_y + half_y});
        window.__chosen = best.id;
        """,
        list(hidden),
        spacing,
    )
    time.sleep(0.5)  # let the plot redraw with the new ranges
    return driver.execute_script(
        _POINTS_JS
        + """
        const p = points.find((q) => q.id === window.__chosen);
        p.gap = gap(p);
        p.inside = inside(p);
        return p;
        """
    )


def _move_mouse(driver, x, y):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    actions.perform()


def _click(driver, x, y):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    actions.pointer_action.click()
    actions.perform()


def _tooltips(driver, timeout=5.0, expect=True):
    """The explorer's visible tooltips (waits up to ``timeout`` s for one when
    ``expect``)."""
    deadline = time.monotonic() + timeout
    while True:
        tips = driver.execute_script(
            """
            return __deep(".explorer-tooltip").filter((t) => {
              const r = t.getBoundingClientRect();
              return r.width > 0 && r.height > 0;
            }).map((t) => {
              const img = t.querySelector("img");
              return {
                label: t.querySelector(".explorer-label").textContent.trim(),
                id: Number(t.querySelector(".explorer-id").textContent.trim()),
                image_width: img.naturalWidth, image_complete: img.complete,
                text: t.textContent.replace(/\\s+/g, " ").trim(),
              };
            });
            """
        )
        if tips or not expect or time.monotonic() > deadline:
            return tips
        time.sleep(0.1)


def _legend_entry(driver, label):
    return driver.execute_script(
        """
        const item = __deep(".bk-item").find(
          (e) => e.textContent.trim().split(" ")[0] === arguments[0]);
        if (!item) { return null; }
        const r = item.getBoundingClientRect();
        return {x: r.left + r.width / 2, y: r.top + r.height / 2,
                text: item.textContent.trim()};
        """,
        label,
    )


def _class_visibility(driver, label):
    return driver.execute_script(
        """
        return __explorer().model.renderers
          .filter((r) => r.data_source.data.label[0] === arguments[0])
          .map((r) => r.visible);
        """,
        label,
    )


@pytest.mark.parametrize("entry", list(EXPLORER_PAGES))
def test_embedding_explorer_hover_and_legend(site, browser, entry):
    """Hover a known point: its digit, label and id; click its legend entry: hidden."""
    _open(browser, f"{site}/{entry}.html")
    facts = _wait_for_explorer(browser)
    print(f"\n{entry}: {EXPLORER_PAGES[entry]}; {facts}")
    assert facts["fallback"] == 0, "the fallback text was not replaced by the figure"
    assert facts["points"] >= 1000 and len(facts["legend"]) == 10
    # the book serves BokehJS from its own _static folder (book_fixes.py), no CDN
    assert facts["bokehjs_src"] and "_static/bokehjs/bokeh-" in facts["bokehjs_src"]
    assert facts["inline_bokehjs"] == 0
    if entry.endswith("10_unseen_classes"):
        assert set(facts["markers"]) == {"circle", "triangle"}
        assert any("unseen" in text for text in facts["legend"])

    point = _isolated_point(browser)
    assert point["inside"] and point["gap"] > 10, f"no point to hover alone: {point}"
    _move_mouse(browser, point["x"], point["y"])
    tips = _tooltips(browser)
    print(f"hovered {point}: tooltips {tips}")
    assert len(tips) == 1, tips
    (tip,) = tips
    assert tip["image_complete"] and tip["image_width"] > 0
    assert tip["label"] == point["label"] and tip["id"] == point["id"]
    if entry.endswith("05_per_class_evaluation"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "explorer_tooltip.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000  # the README shows a copy of it

    label = point["label"]
    assert _class_visibility(browser, label) and all(_class_visibility(browser, label))
    entry_box = _legend_entry(browser, label)
    assert entry_box, f"no legend entry for class {label}"
    _click(browser, entry_box["x"], entry_box["y"])
    time.sleep(0.3)
    assert not any(_class_visibility(browser, label)), f"class {label} still shown"
    _move_mouse(browser, 5, 5)
    _move_mouse(browser, point["x"], point["y"])
    time.sleep(0.5)
    assert not [t for t in _tooltips(browser, expect=False) if t["id"] == point["id"]]
    # another class still answers, and a second click shows the class again
    other = _isolated_point(browser, hidden=[label])
    _move_mouse(browser, other["x"], other["y"])
    assert [t["label"] for t in _tooltips(browser)] == [other["label"]]
    _click(browser, entry_box["x"], entry_box["y"])
    time.sleep(0.3)
    assert all(_class_visibility(browser, label))
    assert not _severe(browser), _severe(browser)


def _tiny_explorer():
    from tripletutils.explore import embedding_explorer

    rng = np.random.default_rng(0)
    labels = np.arange(200) % 10
    images = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8)
    coords = rng.normal(size=(200, 2)) * 0.3 + np.c_[labels % 5, labels // 5] * 3
    return embedding_explorer(coords, labels, images, title="tiny explorer")


def test_explorer_notebook_output_works_offline(browser, tmp_path):
    """The notebook output itself (BokehJS inline), without the book: as a saved page,
    and inserted the way JupyterLab inserts HTML outputs (innerHTML, then each script
    re-created, into a node attached later), twice, as when a cell is re-run."""
    explorer = _tiny_explorer()
    page = explorer.save(tmp_path / "explorer.html")
    browser.get(page.as_uri())
    facts = _wait_for_explorer(browser)
    assert facts["points"] == 200 and facts["inline_bokehjs"] > 1_000_000
    assert facts["fallback"] == 0
    point = _isolated_point(browser)
    _move_mouse(browser, point["x"], point["y"])
    (tip,) = _tooltips(browser)
    assert tip["image_width"] == 28 and tip["label"] == point["label"]
    assert not _severe(browser), _severe(browser)

    outputs = json.dumps([explorer.to_html(), _tiny_explorer().to_html()])
    outputs = outputs.replace("</", "<\\/")  # no "</script>" inside this script
    lab = tmp_path / "lab.html"
    lab.write_text(
        f"""<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<div id="cells"></div>
<script>
for (const [i, html] of {outputs}.entries()) {{
  const host = document.createElement("div");
  host.innerHTML = html;  // scripts inserted this way do not run ...
  for (const old of Array.from(host.getElementsByTagName("script"))) {{
    const script = document.createElement("script");  // ... so re-create them
    for (const a of old.attributes) {{ script.setAttribute(a.name, a.value); }}
    script.textContent = old.textContent;
    old.parentNode.replaceChild(script, old);
  }}
  setTimeout(() => document.getElementById("cells").appendChild(host), 300 * i);
}}
</script></body></html>""",
        encoding="utf-8",
    )
    browser.get(lab.as_uri())
    _wait_for_explorer(browser)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        canvases = browser.execute_script(
            "return [...document.querySelectorAll('.embedding-explorer')].map("
            "(t) => t.querySelectorAll('.explorer-fallback').length === 0 && "
            "t.getBoundingClientRect().height > 100);"
        )
        if canvases == [True, True]:
            break
        time.sleep(0.2)
    assert canvases == [True, True], canvases
    assert not _severe(browser), _severe(browser)
