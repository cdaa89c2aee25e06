"""The canvas endpoints of the app (size choices, style gallery, upscale, projects, exports) through the ASGI
test client, checked against the Pipeline, PIL and numpy directly, and every kind of bad request."""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app_doubles import tiny_landscape_pipeline
from spadekit.app.canvas import (
    TRANSPARENT,
    CanvasLimits,
    NetworkUpscaler,
    StyleGallery,
    bundled_upscaler,
    composite,
    encode_layer,
    id_png,
)
from spadekit.app.server import Limits, create_app

SKY, GRASS, SNOW, SEA, TREE = 156, 123, 158, 154, 168


class BicubicUpscaler:
    """A stand-in for the trained upscaler: PIL's bicubic resize."""

    scales = (2, 4)

    def __init__(self):
        self.calls = 0

    def __call__(self, image, scale):
        self.calls += 1
        return image.resize((image.width * scale, image.height * scale), Image.BICUBIC)


@pytest.fixture(scope="module")
def pipe():
    return tiny_landscape_pipeline(size=64)


@pytest.fixture(scope="module")
def app(pipe):
    return create_app(pipe, max_workers=1, max_queue=4, limits=Limits(max_upload_bytes=400_000, max_pixels=512 * 512),
                      scenes_dir=None)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def upscaler(app):
    double = BicubicUpscaler()
    app.state.canvas.upscaler = double
    yield double
    app.state.canvas.upscaler = None


def _png(image) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def _scene(h=64, w=64) -> np.ndarray:
    ids = np.full((h, w), SKY, np.int64)
    ids[h // 2:] = GRASS
    ids[h // 3: h // 2, : w // 3] = SEA
    return ids


def _render(client, pipe, ids, **data):
    files = {"label_map": ("map.png", _png(pipe.labels.colorize(ids)), "image/png")}
    return client.post("/api/render", files=files, data={k: str(v) for k, v in data.items()})


def _image(response) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def _detail(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()["detail"]


# ---- sizes and rendering ---------------------------------------------------------------------------
def test_size_choices_follow_the_model_height(client):
    info = client.get("/api/canvas").json()
    assert [(s["name"], s["width"], s["height"]) for s in info["sizes"]] == [
        ("square", 64, 64), ("wide", 128, 64), ("panorama", 256, 64)]
    assert info["default_size"] == "square" and info["style_gallery"] is True
    assert info["limits"] == dataclasses.asdict(CanvasLimits())
    assert info["project"]["version"] == 1


@pytest.mark.parametrize("size, expected", [("square", (64, 64)), ("wide", (128, 64)), ("panorama", (256, 64)), ("192x64", (192, 64))])
def test_render_makes_the_image_the_pipeline_makes_at_that_size(client, pipe, size, expected):
    ids = _scene(expected[1], expected[0])
    response = _render(client, pipe, ids, size=size, seed=5)
    image = _image(response)
    assert image.size == expected and response.headers["x-size"] == f"{expected[0]}x{expected[1]}"
    direct = pipe.run(ids, seed=5, size=expected).images[0]
    assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(direct)), "the app must give the Pipeline's image"


def test_render_resizes_a_label_map_of_another_size_and_says_so(client, pipe):
    square = _scene(64, 64)
    response = _render(client, pipe, square, size="panorama", seed=1)
    assert _image(response).size == (256, 64)
    assert "64x64" in response.headers.get("x-spadekit-note", ""), response.headers
    direct = pipe.run(square, seed=1, size=(256, 64)).images[0]
    assert np.array_equal(np.asarray(_image(response).convert("RGB")), np.asarray(direct))


def test_render_seeds_and_gallery_styles_change_the_image(client, pipe):
    ids = _scene(64, 128)
    first = _render(client, pipe, ids, size="wide", seed=2).content
    assert _render(client, pipe, ids, size="wide", seed=2).content == first, "same seed, same image"
    assert _render(client, pipe, ids, size="wide", seed=3).content != first
    styled = _render(client, pipe, ids, size="wide", seed=2, style="sunset")
    assert styled.status_code == 200 and styled.content != first
    preset = Image.open(client.app.state.canvas.gallery.folder / "sunset.jpg").convert("RGB").resize((64, 64), Image.BICUBIC)
    direct = pipe.run(ids, seed=2, style_image=preset, size=(128, 64)).images[0]
    assert np.array_equal(np.asarray(_image(styled).convert("RGB")), np.asarray(direct)), "a preset is its photo as style image"


@pytest.mark.parametrize("data, status, words", [
    ({"size": "huge"}, 422, "size choice"),
    ({"size": "0x64"}, 422, "no pixels"),
    ({"size": "4096x4096"}, 413, "over the limit"),
    ({"style": "nope"}, 404, "no style 'nope'"),
    ({"seed": "-1"}, 422, "seed"),
    ({"colour": "red"}, 422, "unknown form field"),
])
def test_render_refuses_bad_fields_clearly(client, pipe, data, status, words):
    assert words in _detail(_render(client, pipe, _scene(), **data), status)


def test_render_needs_a_label_map_in_a_multipart_body(client, pipe):
    assert "label_map" in _detail(client.post("/api/render", files={"x": ("a", b"1")}, data={}), 422)
    assert "multipart" in _detail(client.post("/api/render", json={"labels": [[SKY]]}), 415)
    both = client.post("/api/render", files={"label_map": ("m.png", _png(pipe.labels.colorize(_scene())), "image/png"),
                                              "style_image": ("s.png", _png(np.zeros((8, 8, 3), np.uint8)), "image/png")},
                       data={"style": "sunset"})
    assert "not both" in _detail(both, 422)


# ---- the style gallery -----------------------------------------------------------------------------
def test_gallery_lists_the_bundled_photos_with_thumbnails(client):
    styles = client.get("/api/styles").json()["styles"]
    presets = {s["id"]: s for s in styles if s["kind"] == "preset"}
    assert {"meadow", "snow", "storm", "sunset"} <= set(presets) and presets["sunset"]["name"] == "Sunset"
    thumb = client.get(presets["storm"]["thumbnail"])
    assert thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (96, 96)
    assert client.get("/api/styles/..%2F..%2Fetc%2Fpasswd/thumbnail").status_code == 404
    assert "no style 'sunset.jpg'" in _detail(client.get("/api/styles/sunset.jpg/thumbnail"), 404), "names, never paths"
    assert "bundled preset" in _detail(client.delete("/api/styles/sunset"), 409)


def test_uploaded_style_joins_the_gallery_and_steers_the_image(client, pipe):
    photo = np.zeros((80, 120, 3), np.uint8)
    photo[..., 0] = 220  # a red photo
    entry = client.post("/api/styles", files={"image": ("red barn.png", _png(photo), "image/png")}).json()
    assert entry["kind"] == "upload" and entry["name"] == "red barn"
    assert entry["id"] in [s["id"] for s in client.get("/api/styles").json()["styles"]]
    thumb = Image.open(io.BytesIO(client.get(entry["thumbnail"]).content)).convert("RGB")
    assert np.asarray(thumb)[..., 0].mean() > 200 and np.asarray(thumb)[..., 1].mean() < 30
    ids = _scene()
    styled = _image(_render(client, pipe, ids, seed=4, style=entry["id"]))
    direct = pipe.run(ids, seed=4, style_image=Image.fromarray(photo).resize((64, 64), Image.BICUBIC)).images[0]
    assert np.array_equal(np.asarray(styled.convert("RGB")), np.asarray(direct))
    assert client.delete(f"/api/styles/{entry['id']}").json() == {"removed": entry["id"]}
    assert "no style" in _detail(_render(client, pipe, ids, style=entry["id"]), 404)
    assert "not an image" in _detail(client.post("/api/styles", files={"image": ("x.png", b"hello", "image/png")}), 422)


def test_gallery_keeps_a_bounded_number_of_uploads(tmp_path):
    gallery = StyleGallery(None, Limits(), CanvasLimits(max_style_uploads=2))
    ids = [gallery.add(_png(np.full((8, 8, 3), v, np.uint8)), f"grey {v}", 64)["id"] for v in (10, 20, 30)]
    assert [e["id"] for e in gallery.entries()] == ids[1:], "the oldest upload goes first"


# ---- upscale ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 4])
def test_upscale_returns_the_upscalers_image(client, upscaler, scale):
    small = np.random.default_rng(0).integers(0, 255, (16, 32, 3), dtype=np.uint8)
    response = client.post("/api/upscale", files={"image": ("r.png", _png(small), "image/png")}, data={"scale": str(scale)})
    large = _image(response)
    assert large.size == (32 * scale, 16 * scale) and response.headers["x-scale"] == str(scale)
    expected = Image.fromarray(small).resize((32 * scale, 16 * scale), Image.BICUBIC)
    assert np.array_equal(np.asarray(large.convert("RGB")), np.asarray(expected))
    assert upscaler.calls == 1


def test_upscale_limits_and_errors(app, client, upscaler):
    image = _png(np.zeros((64, 64, 3), np.uint8))
    post = lambda **data: client.post("/api/upscale", files={"image": ("r.png", image, "image/png")}, data=data)  # noqa: E731
    assert "scale" in _detail(post(scale="3"), 422)
    app.state.canvas.canvas_limits = CanvasLimits(max_upscaled_pixels=128 * 128)
    try:
        assert "over the limit" in _detail(post(scale="4"), 413)
        assert post(scale="2").status_code == 200
    finally:
        app.state.canvas.canvas_limits = CanvasLimits()
    app.state.canvas.upscaler = None
    assert "no upscaler" in _detail(post(scale="4"), 409)
    assert upscaler.calls == 1


def test_damaged_upscaler_weights_leave_the_app_running(app, client, monkeypatch):
    from spadekit import SpadekitError
    from spadekit.app import canvas

    def damaged():
        raise SpadekitError("upscaler-x4/model.safetensors: the file is damaged")

    monkeypatch.setattr(canvas, "bundled_upscaler", damaged)
    state = app.state.canvas
    monkeypatch.setattr(state, "upscaler", state._UNSET)
    assert client.get("/api/canvas").json()["upscale"] == {"available": False, "scales": []}
    response = client.post("/api/upscale", files={"image": ("r.png", _png(np.zeros((8, 8, 3), np.uint8)), "image/png")})
    assert "model.safetensors: the file is damaged" in _detail(response, 409)


def test_the_upscaler_network_serves_the_upscale_endpoint(app, client):
    """The adapter the app puts around spadekit.upscale (the bundled upscaler-x4 when installed), here
    around a small untrained network of the same kind: the endpoint returns the network's own output."""
    import torch

    from spadekit.upscale import Upscaler, UpscalerConfig, bundled_upscaler_path, upscale_image

    assert (bundled_upscaler() is None) == (bundled_upscaler_path() is None)
    torch.manual_seed(0)
    network = Upscaler(UpscalerConfig(channels=8, num_convs=2)).eval()
    app.state.canvas.upscaler = NetworkUpscaler(network, upscale_image)
    small = np.random.default_rng(1).integers(0, 255, (12, 20, 3), dtype=np.uint8)
    try:
        for scale in (2, 4):
            response = client.post("/api/upscale", files={"image": ("r.png", _png(small), "image/png")}, data={"scale": str(scale)})
            expected = upscale_image(network, Image.fromarray(small), scale)
            assert np.array_equal(np.asarray(_image(response).convert("RGB")), np.asarray(expected))
            assert expected.size == (20 * scale, 12 * scale)
    finally:
        app.state.canvas.upscaler = None


# ---- projects and exports ----------------------------------------------------------------------------
def _layers(w=128, h=64):
    ground = np.full((h, w), TRANSPARENT, np.int64)
    ground[h // 2:] = GRASS
    trees = np.full((h, w), TRANSPARENT, np.int64)
    trees[h // 4: 3 * h // 4, w // 4: w // 2] = TREE
    water = np.full((h, w), TRANSPARENT, np.int64)
    water[3 * h // 4:, :] = SEA
    return [ground, trees, water]


def _save(client, pipe, layers, visible=(True, False, True), **settings):
    h, w = layers[0].shape
    meta = {"width": w, "height": h, "size": "wide", "seed": 7, "background": SKY, "style": "meadow",
            "layers": [{"name": f"L{i}", "visible": v} for i, v in enumerate(visible)], **settings}
    files = [("project", (None, json.dumps(meta), "application/json"))]
    files += [("layer", (f"{i}.png", encode_layer(ids, pipe.labels), "image/png")) for i, ids in enumerate(layers)]
    return client.post("/api/projects/save", files=files)


def test_project_round_trip_keeps_layers_and_settings(client, pipe):
    layers = _layers()
    saved = _save(client, pipe, layers)
    assert saved.status_code == 200, saved.text
    assert saved.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(saved.content)) as archive:
        meta = json.loads(archive.read("project.json"))
        assert meta["format"] == "spadekit-project" and meta["version"] == 1 and meta["label_set"] == "landscapes"
        rgba = np.asarray(Image.open(io.BytesIO(archive.read(meta["layers"][1]["file"]))).convert("RGBA"))
    assert ((rgba[..., 3] == 255) == (layers[1] != TRANSPARENT)).all(), "transparent pixels are alpha 0 in the file"
    opened = client.post("/api/projects/open", files={"project": ("p.spadekit", saved.content, "application/zip")}).json()
    assert {k: opened[k] for k in ("width", "height", "size", "seed", "background", "style")} == {
        "width": 128, "height": 64, "size": "wide", "seed": 7, "background": SKY, "style": "meadow"}
    assert [(layer["name"], layer["visible"]) for layer in opened["layers"]] == [("L0", True), ("L1", False), ("L2", True)]
    for layer, ids in zip(opened["layers"], layers):
        rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(layer["png"]))).convert("RGBA"))
        back = np.full(ids.shape, TRANSPARENT, np.int64)
        opaque = rgba[..., 3] == 255
        back[opaque] = pipe.labels.from_colors(rgba[..., :3][opaque][None])[0]
        assert np.array_equal(back, ids)


def test_export_of_a_project_is_the_composite_of_its_visible_layers(client, pipe):
    layers = _layers()
    project = _save(client, pipe, layers).content
    response = client.post("/api/export/label-map", files={"project": ("p.spadekit", project, "application/zip")},
                           data={"format": "ids"})
    ids = np.asarray(_image(response))
    expected = np.full((64, 128), SKY)
    expected[32:] = GRASS  # layer 0; layer 1 (trees) is hidden
    expected[48:] = SEA  # layer 2 on top
    assert np.array_equal(ids, expected)
    assert np.array_equal(composite(list(zip(layers, (True, False, True))), SKY), expected)
    colour = client.post("/api/export/label-map", files={"project": ("p.spadekit", project, "application/zip")})
    assert np.array_equal(np.asarray(_image(colour).convert("RGB")), pipe.labels.colorize(expected))


def test_export_of_a_label_map_as_ids_and_colours(client, pipe):
    ids = _scene(64, 256)
    files = {"label_map": ("m.png", _png(pipe.labels.colorize(ids)), "image/png")}
    raw = client.post("/api/export/label-map", files=files, data={"format": "ids"})
    assert raw.headers["x-label-map-size"] == "256x64" and "_ids.png" in raw.headers["content-disposition"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw.content))), ids)
    assert "format" in _detail(client.post("/api/export/label-map", files=files, data={"format": "jpeg"}), 422)
    both = {**files, "project": ("p.spadekit", b"PK", "application/zip")}
    assert "exactly one" in _detail(client.post("/api/export/label-map", data={"format": "ids"}, files=both), 422)


def test_raw_ids_over_255_are_16_bit():
    ids = np.array([[3, 300], [65000, 0]])
    image = Image.open(io.BytesIO(id_png(ids)))
    assert image.mode.startswith("I") and np.array_equal(np.asarray(image), ids)


def test_uploaded_style_travels_inside_the_project(client, pipe):
    photo = np.zeros((32, 32, 3), np.uint8)
    photo[..., 2] = 200
    entry = client.post("/api/styles", files={"image": ("blue.png", _png(photo), "image/png")}).json()
    saved = _save(client, pipe, _layers(), style=entry["id"])
    with zipfile.ZipFile(io.BytesIO(saved.content)) as archive:
        assert "style.png" in archive.namelist() and json.loads(archive.read("project.json"))["style_name"] == "blue"
    client.delete(f"/api/styles/{entry['id']}")
    opened = client.post("/api/projects/open", files={"project": ("p.spadekit", saved.content, "application/zip")}).json()
    assert opened["style"].startswith("upload-") and opened["style"] != entry["id"]
    thumb = Image.open(io.BytesIO(client.get(f"/api/styles/{opened['style']}/thumbnail").content)).convert("RGB")
    assert np.asarray(thumb)[..., 2].mean() > 180


def _zip(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _project(pipe, meta_changes=None, layer=None, extra=None) -> bytes:
    meta = {"format": "spadekit-project", "version": 1, "label_set": "landscapes", "width": 64, "height": 64,
            "size": "square", "seed": 0, "background": SKY, "style": None,
            "layers": [{"name": "a", "visible": True, "file": "layers/00.png"}]}
    meta.update(meta_changes or {})
    files = {"project.json": json.dumps(meta),
             "layers/00.png": layer if layer is not None else encode_layer(np.full((64, 64), GRASS), pipe.labels)}
    files.update(extra or {})
    return _zip(files)


def _rgba(h, w, alpha):
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = (123, 200, 0)  # grass's colour
    rgba[..., 3] = alpha
    return _png(Image.fromarray(rgba))


@pytest.mark.parametrize("make, status, words", [
    (lambda pipe: b"PK\x03\x04 not really a zip", 422, "not a readable .spadekit file"),
    (lambda pipe: _zip({"readme.txt": "hi"}), 422, "no project.json"),
    (lambda pipe: _zip({"project.json": "{not json"}), 422, "not valid JSON"),
    (lambda pipe: _project(pipe, {"format": "photoshop"}), 422, "does not describe"),
    (lambda pipe: _project(pipe, {"version": 9}), 422, "newer spadekit"),
    (lambda pipe: _project(pipe, {"version": "1"}), 422, "no valid version"),
    (lambda pipe: _project(pipe, {"label_set": "cityscapes"}), 422, "'cityscapes' labels"),
    (lambda pipe: _project(pipe, {"width": 4096, "height": 4096}), 413, "over the limit"),
    (lambda pipe: _project(pipe, {"layers": []}), 422, "1..8 layers"),
    (lambda pipe: _project(pipe, {"background": 7}), 422, "not a label id"),
    (lambda pipe: _project(pipe, {"seed": -4}), 422, "seed"),
    (lambda pipe: _project(pipe, {"layers": [{"name": "a", "visible": True, "file": "layers/09.png"}]}), 422, "no layers/09.png"),
    (lambda pipe: _project(pipe, layer=_rgba(32, 64, 255)), 422, "the layer is 64x32 but the project is 64x64"),
    (lambda pipe: _project(pipe, layer=_rgba(64, 64, 128)), 422, "partly transparent"),
    (lambda pipe: _project(pipe, layer=_png(np.full((64, 64, 3), 7, np.uint8))), 422, "not in the 'landscapes' palette"),
    (lambda pipe: _project(pipe, layer=b"not a png"), 422, "not an image"),
    (lambda pipe: _project(pipe, extra={"layers/00.png": b"\0" * 500_000}), 413, "unpacks to"),
])
def test_open_refuses_bad_project_files_clearly(client, pipe, make, status, words):
    response = client.post("/api/projects/open", files={"project": ("p.spadekit", make(pipe), "application/zip")})
    assert words in _detail(response, status)


def test_project_file_size_limit(app, client, pipe):
    project = _project(pipe)
    app.state.canvas.canvas_limits = CanvasLimits(max_project_bytes=len(project) - 1)
    try:
        response = client.post("/api/projects/open", files={"project": ("p.spadekit", project, "application/zip")})
        assert "project file limit" in _detail(response, 413)
    finally:
        app.state.canvas.canvas_limits = CanvasLimits()


def test_save_refuses_mismatched_layers(client, pipe):
    layers = _layers()
    assert "3 layer(s) but 2" in _detail(_save(client, pipe, layers[:2]), 422)
    wrong = [layers[0], layers[1][:, :64], layers[2]]
    assert "the layer is 64x64 but the project is 128x64" in _detail(_save(client, pipe, wrong), 422)
    assert "no style" in _detail(_save(client, pipe, layers, style="nope"), 404)


class NoEncoderPipeline:
    """The tiny model presented as one without an image encoder."""

    def __init__(self, pipe):
        self.pipe, self.labels, self.size = pipe, pipe.labels, pipe.size

    def info(self):
        return {**self.pipe.info(), "style_image": False}

    def load_label_map(self, source):
        return self.pipe.load_label_map(source)

    def run(self, *args, **kwargs):
        return self.pipe.run(*args, **kwargs)


def test_a_model_without_encoder_has_no_gallery_and_refuses_styles(pipe):
    with TestClient(create_app(NoEncoderPipeline(pipe), scenes_dir=None)) as client:
        assert client.get("/api/canvas").json()["style_gallery"] is False
        assert "no image encoder" in _detail(_render(client, pipe, _scene(), style="sunset"), 422)
        assert _render(client, pipe, _scene(), size="wide").status_code == 200
