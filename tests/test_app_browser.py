"""The painting app in Debian's headless Chromium (driven by Playwright): paint, generate, swap a label, generate again."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from app_doubles import CHROMIUM_ARGS, HookedPipeline, serve_in_thread, tiny_landscape_pipeline
from spadekit.app.server import create_app

CHROMIUM = os.environ.get("SPADEKIT_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    pipe = HookedPipeline(tiny_landscape_pipeline(size=64), lambda: time.sleep(0.25))  # a request stays in flight
    app = create_app(pipe, max_workers=1, max_queue=4, random_model=True, model_name="tiny test model")
    with serve_in_thread(app) as url:
        yield url, pipe, app


@pytest.fixture(scope="module")
def page(server):
    assert shutil.which(CHROMIUM) or os.path.exists(CHROMIUM), \
        f"Chromium not found at {CHROMIUM}: run `make browser-deps` (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        yield page
        browser.close()


def _generation(page) -> int:
    return int(page.get_attribute("#result", "data-generation"))


def _wait_new_result(page, after: int) -> str:
    """The hash of the first image shown after generation `after` once nothing is pending: not busy, and
    not stale (a debounced request still scheduled, e.g. after a stroke that ended while one ran)."""
    page.wait_for_function(f"Number(document.querySelector('#result').dataset.generation) > {after}"
                           " && document.querySelector('#busy').hidden"
                           " && !document.querySelector('#result-frame').classList.contains('stale')")
    return page.get_attribute("#result", "data-hash")


def _count(page, name: str) -> int:
    """Pixels of a label in the composite the page shows. The page composes it when it draws the next
    frame (an edit, undo or redo only queues that), so wait for that frame first."""
    return page.evaluate("""async name => {
        await new Promise(done => requestAnimationFrame(() => done()));
        const app = window.spadekitApp, id = app.labels.find(l => l.name === name).id;
        let n = 0; for (const v of app.ids) if (v === id) n++; return n; }""", name)


def test_paint_generate_swap_a_label_and_generate_again(server, page):
    url, pipe, app = server
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === '1' && Number(document.querySelector('#result').dataset.generation) >= 1")
    assert page.is_visible("#banner"), "a random model must be announced"
    assert page.locator(".swatch").count() == len(pipe.labels.labels)
    first = page.get_attribute("#result", "data-hash")
    generation = _generation(page)

    # paint two strokes of grass with a big brush
    page.click(".swatch[data-id='123']")
    page.click(".sizes button[data-size='24']")
    grass_before = _count(page, "grass")
    box = page.locator("#label-canvas").bounding_box()
    for y in (0.3, 0.8):
        page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * y)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] * (0.1 + 0.08 * step), box["y"] + box["height"] * y)
        page.mouse.up()
    assert _count(page, "grass") > grass_before + 200
    painted = _wait_new_result(page, generation)
    assert painted != first, "painting must change the generated image"
    generation = _generation(page)

    # the canvas holds palette colours only (no anti-aliased edges)
    off_palette = page.evaluate("""() => {
        const app = window.spadekitApp, c = document.querySelector('#label-canvas');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let bad = 0; for (let j = 0; j < px.length; j += 4) if (!app.idOfColour.has((px[j] << 16) | (px[j+1] << 8) | px[j+2])) bad++;
        return bad; }""")
    assert off_palette == 0

    # replace grass by snow
    page.select_option("#replace-from", "123")
    page.select_option("#replace-to", "158")
    page.click("#replace")
    assert _count(page, "grass") == 0 and _count(page, "snow") > 200
    winter = _wait_new_result(page, generation)
    assert winter not in (painted, first), "swapping grass for snow must change the image"
    generation = _generation(page)

    # keyboard: Ctrl+Z brings the grass back, N draws a new style
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    assert _count(page, "grass") > 200
    restored = _wait_new_result(page, generation)
    assert restored == painted, "undo must give back the painted map's image (same seed)"
    generation = _generation(page)

    # a newer request aborts the one in flight; the page shows progress meanwhile
    aborted = []
    page.on("requestfailed", lambda request: aborted.append(request.url) if "/api/render" in request.url else None)
    with page.expect_request("**/api/render"):
        page.keyboard.press("n")
    assert page.is_visible("#busy")
    page.keyboard.press("n")
    _wait_new_result(page, generation)
    page.wait_for_timeout(100)
    assert any("/api/render" in u for u in aborted), "the stale request must be aborted"
    assert _generation(page) == generation + 1, "only the newest request's image is shown"
    assert not page.errors, page.errors
