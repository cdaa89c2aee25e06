"""The painting app's canvas tools in Debian's headless Chromium (driven by Playwright): paint on two layers,
hide one, reorder and merge, switch to panorama, pick a gallery preset, upload a style, upscale, export, save,
reopen. What the server receives is checked against a numpy composite of the layers read from the page."""
from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from app_doubles import CHROMIUM_ARGS, serve_in_thread, tiny_landscape_pipeline
from spadekit.app.server import create_app

CHROMIUM = os.environ.get("SPADEKIT_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 20_000
SKY, GRASS, TREE, HOUSE, SEA = 156, 123, 168, 127, 154
EMPTY = -1

pytestmark = pytest.mark.browser


class RecordingPipeline:
    """The tiny model, remembering what each run was asked (label map, size, style photo)."""

    def __init__(self, pipe):
        self.pipe, self.labels, self.size = pipe, pipe.labels, pipe.size
        self.runs: list[dict] = []

    def info(self):
        return self.pipe.info()

    def load_label_map(self, source):
        return self.pipe.load_label_map(source)

    def run(self, label_map, **kwargs):
        self.runs.append({"ids": np.array(label_map), "size": kwargs.get("size"), "style": kwargs.get("style_image")})
        return self.pipe.run(label_map, **kwargs)


class BicubicUpscaler:
    scales = (2, 4)

    def __call__(self, image, scale):
        return image.resize((image.width * scale, image.height * scale), Image.BICUBIC)


@pytest.fixture(scope="module")
def server():
    pipe = RecordingPipeline(tiny_landscape_pipeline(size=64))
    app = create_app(pipe, max_workers=1, max_queue=4, model_name="tiny test model")
    app.state.canvas.upscaler = BicubicUpscaler()
    with serve_in_thread(app) as url:
        yield url, pipe


@pytest.fixture(scope="module")
def page(server):
    assert shutil.which(CHROMIUM) or os.path.exists(CHROMIUM), \
        f"Chromium not found at {CHROMIUM}: run `make browser-deps` (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        page.goto(server[0])
        page.wait_for_function("document.body.dataset.ready === '1' && Number(document.querySelector('#result').dataset.generation) >= 1")
        yield page
        browser.close()


def _settled(page, after: int) -> None:
    """Wait for the first image after generation `after` with nothing pending (not busy, not stale)."""
    page.wait_for_function(f"Number(document.querySelector('#result').dataset.generation) > {after}"
                           " && document.querySelector('#busy').hidden"
                           " && !document.querySelector('#result-frame').classList.contains('stale')")


def _generation(page) -> int:
    return int(page.get_attribute("#result", "data-generation"))


def _state(page) -> dict:
    """The page's layers (bottom first), background and composite, as numpy arrays of shape (H, W); the
    composite once the frame an edit queued has been drawn (the page composes it then)."""
    raw = page.evaluate("""async () => { await new Promise(done => requestAnimationFrame(() => done()));
        const a = window.spadekitApp; return {W: a.W, H: a.H, background: a.background,
        active: a.active, size: a.sizeName, style: a.styleId,
        layers: a.layers.map(l => ({name: l.name, visible: l.visible, ids: Array.from(l.ids)})), ids: Array.from(a.ids)}; }""")
    shape = (raw["H"], raw["W"])
    for layer in raw["layers"]:
        layer["ids"] = np.array(layer["ids"]).reshape(shape)
    raw["ids"] = np.array(raw["ids"]).reshape(shape)
    return raw


def _composite(state) -> np.ndarray:
    out = np.full(state["ids"].shape, state["background"])
    for layer in state["layers"]:
        if layer["visible"]:
            out = np.where(layer["ids"] != EMPTY, layer["ids"], out)
    return out


def _stroke(page, label: int, y: float, x0: float, x1: float) -> None:
    page.click(f".swatch[data-id='{label}']")
    box = page.locator("#label-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(box["x"] + box["width"] * (x0 + (x1 - x0) * step / 8), box["y"] + box["height"] * y)
    page.mouse.up()


def _download(page, selector: str):
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    return download.suggested_filename, open(download.path(), "rb").read()


def _last_sent(pipe) -> dict:
    return pipe.runs[-1]


def test_layers_sizes_gallery_upscale_export_save_and_reopen(server, page, tmp_path):
    url, pipe = server
    state = _state(page)
    assert len(state["layers"]) == 1 and state["size"] == "square" and state["ids"].shape == (64, 64)
    scene = state["layers"][0]["ids"].copy()
    assert (scene != EMPTY).all(), "the starter scene fills the bottom layer"

    # ---- paint on two new layers
    generation = _generation(page)
    page.click(".sizes button[data-size='12']")
    page.click("#layer-add")
    _stroke(page, TREE, 0.3, 0.1, 0.5)
    page.click("#layer-add")
    _stroke(page, HOUSE, 0.7, 0.4, 0.9)
    _settled(page, generation)
    state = _state(page)
    assert [layer["name"] for layer in state["layers"]] == ["Background", "Layer 2", "Layer 3"] and state["active"] == 2
    trees, houses = state["layers"][1]["ids"], state["layers"][2]["ids"]
    assert set(np.unique(trees)) == {EMPTY, TREE} and (trees == TREE).sum() > 100, "the first stroke is on layer 2 only"
    assert set(np.unique(houses)) == {EMPTY, HOUSE} and (houses == HOUSE).sum() > 100
    assert np.array_equal(state["layers"][0]["ids"], scene), "painting never touches the layers below"
    assert np.array_equal(state["ids"], _composite(state))
    assert np.array_equal(_last_sent(pipe)["ids"], _composite(state)), "the server gets the composite of the visible layers"
    painted_hash = page.get_attribute("#result", "data-hash")

    # ---- hide the tree layer
    generation = _generation(page)
    page.click("#layers li[data-index='1'] .eye")
    _settled(page, generation)
    state = _state(page)
    assert state["layers"][1]["visible"] is False
    sent = _last_sent(pipe)["ids"]
    assert TREE not in sent and np.array_equal(sent, _composite(state)), "a hidden layer is not sent"
    assert page.get_attribute("#result", "data-hash") != painted_hash
    page.click("#layers li[data-index='1'] .eye")  # show it again

    # ---- reorder and merge down: move the house layer below the trees, then merge the trees into it
    generation = _generation(page)
    page.click("#layers li[data-index='2']")
    page.click("#layer-down")
    state = _state(page)
    assert [layer["name"] for layer in state["layers"]] == ["Background", "Layer 3", "Layer 2"] and state["active"] == 1
    expected = np.where(trees != EMPTY, trees, houses)  # trees now on top where both are painted
    page.click("#layers li[data-index='2']")
    page.click("#layer-merge")
    _settled(page, generation)
    state = _state(page)
    assert len(state["layers"]) == 2 and np.array_equal(state["layers"][1]["ids"], expected)
    assert np.array_equal(_last_sent(pipe)["ids"], _composite(state))
    square = state

    # ---- panorama: the painting is refitted (centre kept, edges continued), the image is 4:1
    generation = _generation(page)
    page.click("#canvas-sizes button[data-canvas-size='panorama']")
    _settled(page, generation)
    state = _state(page)
    assert state["size"] == "panorama" and state["ids"].shape == (64, 256)
    for before, after in zip(square["layers"], state["layers"]):
        assert np.array_equal(after["ids"][:, 96:160], before["ids"]), "the square painting sits in the middle"
        assert (after["ids"][:, :96] == before["ids"][:, :1]).all() and (after["ids"][:, 160:] == before["ids"][:, -1:]).all()
    assert _last_sent(pipe)["size"] == (256, 64) and np.array_equal(_last_sent(pipe)["ids"], _composite(state))
    assert page.evaluate("[document.querySelector('#result').naturalWidth, document.querySelector('#result').naturalHeight]") == [256, 64]
    assert "stacked" in page.get_attribute("#panels", "class")

    # ---- a preset from the gallery, then an uploaded photo
    generation = _generation(page)
    assert page.locator(".style-tile[data-style='sunset'] img").evaluate("img => img.complete && img.naturalWidth") == 96
    page.click(".style-tile[data-style='sunset']")
    _settled(page, generation)
    assert _last_sent(pipe)["style"] is not None and _state(page)["style"] == "sunset"
    photo = tmp_path / "red.png"
    Image.fromarray(np.full((40, 40, 3), (200, 20, 20), np.uint8)).save(photo)
    generation = _generation(page)
    page.set_input_files("#style-upload", str(photo))
    _settled(page, generation)
    uploaded = _state(page)["style"]
    assert uploaded.startswith("upload-") and page.locator(f".style-tile[data-style='{uploaded}']").count() == 1
    assert np.asarray(_last_sent(pipe)["style"])[..., 0].mean() > 150, "the uploaded photo is the style image"
    generation = _generation(page)
    page.click(".style-tile[data-style='sunset']")
    _settled(page, generation)

    # ---- upscale on request, then export the full-size result and the label map
    generation = _generation(page)
    page.select_option("#upscale-scale", "4")
    page.click("#upscale")
    page.wait_for_function(f"Number(document.querySelector('#result').dataset.generation) > {generation}"
                           " && document.querySelector('#result').dataset.upscaled === '4'")
    assert page.evaluate("document.querySelector('#result').naturalWidth") == 1024
    name, data = _download(page, "#export-result")
    assert name.endswith("_x4.png") and Image.open(io.BytesIO(data)).size == (1024, 256)
    state = _state(page)
    name, data = _download(page, "#export-ids")
    assert name == "label_map_256x64_ids.png" and np.array_equal(np.asarray(Image.open(io.BytesIO(data))), _composite(state))
    name, data = _download(page, "#export-label")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), pipe.labels.colorize(_composite(state)))

    # ---- save, start over, reopen: the same layers, size, style and label map
    name, data = _download(page, "#project-save")
    assert name.endswith(".spadekit")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        meta = json.loads(archive.read("project.json"))
    assert (meta["width"], meta["height"], meta["size"], meta["style"]) == (256, 64, "panorama", "sunset")
    assert [layer["name"] for layer in meta["layers"]] == ["Background", "Layer 3"]
    saved = state
    project = tmp_path / name
    project.write_bytes(data)
    page.click("#project-new")
    generation = _generation(page)
    page.click("#canvas-sizes button[data-canvas-size='square']")
    _settled(page, generation)
    assert _state(page)["ids"].shape == (64, 64)
    generation = _generation(page)
    page.set_input_files("#project-open", str(project))
    page.wait_for_function("window.spadekitApp.projectsOpened === 1")
    _settled(page, generation)
    state = _state(page)
    assert (state["size"], state["style"], state["background"]) == ("panorama", "sunset", saved["background"])
    assert [(layer["name"], layer["visible"]) for layer in state["layers"]] == [(layer["name"], layer["visible"]) for layer in saved["layers"]]
    for before, after in zip(saved["layers"], state["layers"]):
        assert np.array_equal(after["ids"], before["ids"])
    assert np.array_equal(_last_sent(pipe)["ids"], _composite(saved)) and _last_sent(pipe)["size"] == (256, 64)

    # ---- undo goes back through the opening
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    page.wait_for_function("window.spadekitApp.W === 64")
    assert not page.errors, page.errors


def test_bad_project_file_is_refused_with_its_message(server, page, tmp_path):
    bad = tmp_path / "broken.spadekit"
    bad.write_bytes(b"this is not a zip")
    page.set_input_files("#project-open", str(bad))
    page.wait_for_function("!document.querySelector('#error').hidden")
    assert "broken.spadekit: project: not a readable .spadekit file" in page.text_content("#error")
