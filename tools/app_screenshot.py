"""Screenshot of the painting app for the docs, taken in Debian's headless Chromium.

    .venv/bin/python tools/app_screenshot.py docs/images/app.png [--model default|PATH] [--scene mountains]
        [--size square|wide|panorama] [--style PRESET] [--layer]

Serves the model (the random one when the bundled default is absent) on a free loopback port,
loads a starter scene, switches to the canvas size, picks a gallery style, optionally paints a
second layer, waits for the generated image and saves a palette-quantised PNG.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the app's test doubles

from app_doubles import CHROMIUM_ARGS, serve_in_thread  # noqa: E402  (after the path above)


def _settle(page, generation: int) -> None:
    page.wait_for_function(f"Number(document.querySelector('#result').dataset.generation) > {generation}"
                           " && document.querySelector('#busy').hidden"
                           " && !document.querySelector('#result-frame').classList.contains('stale')")


def _generation(page) -> int:
    return int(page.get_attribute("#result", "data-generation"))


def take(out: Path, model: str = "default", scene: str = "mountains", size: str = "panorama", style: str | None = None,
         layer: bool = False, width: int = 1360, height: int = 1160, chromium: str = "/usr/bin/chromium") -> Path:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from spadekit.app.server import create_app
    from spadekit.commands.serve import load_pipeline
    from spadekit.imageio import save_image

    pipe, is_random = load_pipeline(model)
    app = create_app(pipe, random_model=is_random, model_name="random (untrained)" if is_random else model)
    with serve_in_thread(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_function("document.body.dataset.ready === '1' && Number(document.querySelector('#result').dataset.generation) >= 1")
        if page.locator(f".scene[data-scene='{scene}']").count():
            generation = _generation(page)
            page.click(f".scene[data-scene='{scene}']")
            _settle(page, generation)
        if page.locator(f"#canvas-sizes button[data-canvas-size='{size}']").count():
            generation = _generation(page)
            page.click(f"#canvas-sizes button[data-canvas-size='{size}']")
            _settle(page, generation)
        if style and page.locator(f".style-tile[data-style='{style}']").count():
            generation = _generation(page)
            page.click(f".style-tile[data-style='{style}']")
            _settle(page, generation)
        if layer:  # a second layer with a few trees on the hills, to show the layer list
            generation = _generation(page)
            page.click("#layer-add")
            tree = page.locator(".swatch", has_text="tree")
            if tree.count():
                tree.first.click()
            page.click(".sizes button[data-size='24']")
            box = page.locator("#label-canvas").bounding_box()
            for x in (0.14, 0.2, 0.78, 0.84):
                page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * 0.5)
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * 0.62)
                page.mouse.up()
            _settle(page, generation)
        page.evaluate("window.scrollTo(0, 0)")
        box = page.locator("#label-canvas").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.78)
        time.sleep(0.3)
        png = page.screenshot(full_page=False)
        browser.close()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return save_image(out, image, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="screenshot of the painting app")
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--scene", default="mountains")
    parser.add_argument("--size", default="panorama", choices=["square", "wide", "panorama"])
    parser.add_argument("--style", default=None, help="a gallery preset, e.g. sunset (default: the seed's style)")
    parser.add_argument("--layer", action="store_true", help="paint a few trees on a second layer")
    args = parser.parse_args()
    path = take(args.out, args.model, args.scene, args.size, args.style, args.layer)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
