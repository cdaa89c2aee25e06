"""The painting app's canvas tools: size choices, the style gallery, upscaling, projects and exports.

Endpoints (added to the app by `server.create_app` through `add_canvas_routes`):
    GET    /api/canvas                   size choices, upscale scales, project format, limits
    POST   /api/render                   a label map at a size choice (+ seed, gallery style) -> image/png
    GET    /api/styles                   the style gallery: bundled presets, then uploads
    GET    /api/styles/{id}/thumbnail    a style's thumbnail (JPEG)
    POST   /api/styles                   upload a style photo -> its gallery entry (kept in memory)
    DELETE /api/styles/{id}              forget an uploaded style
    POST   /api/upscale                  an image -> the same image 2x or 4x larger
    POST   /api/projects/save            label layers + settings -> one project file (a zip)
    POST   /api/projects/open            a project file -> its layers and settings, validated
    POST   /api/export/label-map         a label map or a project -> colour PNG or raw-id PNG

A project file is a zip: `project.json` (format, version, label set, size, seed, style, background
label, layers bottom to top) and one RGBA PNG per layer in the model's palette colours, where a
transparent pixel lets the layer below show (and below all layers, the background label). An
uploaded style photo travels inside the project as `style.png`.

Nothing here reads a path from a request: presets are looked up by name in a listing of the
package's style folder, uploads live in memory (a bounded number, the oldest dropped first).
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import secrets
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from PIL import Image

from spadekit import SpadekitError
from spadekit.app import openapi
from spadekit.app.parsing import (
    STYLE_FORMATS,
    APIError,
    Limits,
    decode_label_map,
    header_text,
    open_upload,
    parse_multipart,
    parse_seed,
)
from spadekit.imageio import colorize, png_bytes

STYLES_DIR = Path(str(resources.files("spadekit").joinpath("assets", "styles")))
ASPECTS = {"square": 1, "wide": 2, "panorama": 4}  # width : height
UPSCALES = (2, 4)
PROJECT_FORMAT = "spadekit-project"
PROJECT_VERSION = 1
PROJECT_SUFFIX = ".spadekit"
THUMBNAIL_PX = 96
STYLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_SIZE_TEXT = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")
_STYLE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class CanvasLimits:
    """Limits of the canvas endpoints (on top of the server's upload and pixel limits).

    max_size_pixels: largest generated image (width x height); max_upscaled_pixels: largest upscale
    output; max_project_bytes: largest project file; max_layers: layers in a project;
    max_style_uploads: uploaded styles kept (the oldest is dropped beyond).
    """

    max_size_pixels: int = 2048 * 512
    max_upscaled_pixels: int = 4096 * 2048
    max_project_bytes: int = 8 * 1024 * 1024
    max_layers: int = 8
    max_style_uploads: int = 16

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise SpadekitError(f"canvas limit {name} must be a positive integer, got {value!r}")

    def describe(self) -> dict:
        return asdict(self)


class Upscaler(Protocol):
    """What the app needs of an upscaler: an RGB image and a scale in `scales` -> the larger image."""

    scales: tuple[int, ...]

    def __call__(self, image: Image.Image, scale: int) -> Image.Image: ...


class NetworkUpscaler:
    """A `spadekit.upscale` network as an `Upscaler` (2x from a 4x network is its result shrunk by 2, as `spadekit upscale` does)."""

    scales = UPSCALES

    def __init__(self, model, upscale_image: Callable):
        self.model = model
        self._upscale_image = upscale_image

    def __call__(self, image: Image.Image, scale: int) -> Image.Image:
        return self._upscale_image(self.model, image, scale)


def bundled_upscaler() -> Upscaler | None:
    """The bundled `upscaler-x4` as an `Upscaler`, or None where this installation has none."""
    try:
        from spadekit.upscale import bundled_upscaler_path, load_upscaler, upscale_image
    except ImportError:
        return None
    if bundled_upscaler_path() is None:
        return None
    return NetworkUpscaler(load_upscaler(), upscale_image)


# ---- sizes ---------------------------------------------------------------------------------------
def size_choices(model_size: tuple[int, int], limits: CanvasLimits) -> list[dict]:
    """Square, wide (2:1) and panorama (4:1) at the model's height, those within the size limit."""
    height = model_size[0]
    choices = []
    for name, aspect in ASPECTS.items():
        width = height * aspect
        if width * height <= limits.max_size_pixels:
            choices.append({"name": name, "width": width, "height": height, "aspect": f"{aspect}:1"})
    return choices


def parse_size(text: str, choices: list[dict], limits: CanvasLimits) -> tuple[int, int]:
    """A size choice's name ("panorama") or "WIDTHxHEIGHT" -> (width, height), within the size limit."""
    text = text.strip()
    for choice in choices:
        if text == choice["name"]:
            return choice["width"], choice["height"]
    match = _SIZE_TEXT.match(text)
    if not match:
        names = ", ".join(c["name"] for c in choices)
        raise APIError(422, f"size: {text[:40]!r} is neither a size choice ({names}) nor WIDTHxHEIGHT like 1024x256")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 1 or height < 1:
        raise APIError(422, f"size: {width}x{height} has no pixels; give a width and height of at least 1")
    if width * height > limits.max_size_pixels:
        raise APIError(413, f"size: {width}x{height} is {width * height} pixels, over the limit of "
                            f"{limits.max_size_pixels}; choose a smaller size (e.g. panorama) and upscale it")
    return width, height


def resize_nearest(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An id map resized (nearest) to (width, height)."""
    width, height = size
    if ids.shape == (height, width):
        return ids
    rows = np.minimum(np.arange(height) * ids.shape[0] // height, ids.shape[0] - 1)
    cols = np.minimum(np.arange(width) * ids.shape[1] // width, ids.shape[1] - 1)
    return ids[rows][:, cols]


# ---- the style gallery ---------------------------------------------------------------------------
@dataclass
class _Upload:
    name: str
    image: Image.Image  # RGB, at most the model's size on its longest side
    thumbnail: bytes


def _thumbnail(image: Image.Image) -> bytes:
    """A square JPEG thumbnail (centre crop) of an RGB image."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    thumb = image.crop((left, top, left + side, top + side)).resize((THUMBNAIL_PX, THUMBNAIL_PX), Image.BICUBIC)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _display_name(text: str) -> str:
    return " ".join(part.capitalize() for part in re.split(r"[_\-\s]+", text) if part) or text


class StyleGallery:
    """Named style photos: the bundled presets (a fixed folder, listed by name) and uploads held in memory."""

    def __init__(self, folder: Path | None, limits: Limits, canvas_limits: CanvasLimits):
        self.folder = folder
        self.limits = limits
        self.max_uploads = canvas_limits.max_style_uploads
        self._uploads: OrderedDict[str, _Upload] = OrderedDict()
        self._presets: dict[str, tuple[float, Image.Image, bytes]] = {}
        self._lock = threading.Lock()

    def _preset_files(self) -> dict[str, Path]:
        if self.folder is None or not self.folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.folder.iterdir())
                if p.suffix.lower() in STYLE_SUFFIXES and p.is_file() and _STYLE_ID.match(p.stem)}

    def _preset(self, path: Path) -> tuple[Image.Image, bytes] | None:
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._presets.get(path.stem)
        if cached and cached[0] == mtime:
            return cached[1], cached[2]
        try:
            if path.stat().st_size > self.limits.max_upload_bytes:
                return None
            image = open_upload(path.read_bytes(), f"style preset {path.name}", self.limits, STYLE_FORMATS).convert("RGB")
        except (APIError, OSError):
            return None  # unreadable: not offered
        entry = (mtime, image, _thumbnail(image))
        with self._lock:
            self._presets[path.stem] = entry
        return image, entry[2]

    def entries(self) -> list[dict]:
        """The gallery: presets (sorted by name), then uploads (oldest first)."""
        out = [{"id": key, "name": _display_name(key), "kind": "preset", "thumbnail": f"/api/styles/{key}/thumbnail"}
               for key, path in self._preset_files().items() if self._preset(path) is not None]
        with self._lock:
            uploads = list(self._uploads.items())
        out += [{"id": key, "name": entry.name, "kind": "upload", "thumbnail": f"/api/styles/{key}/thumbnail"}
                for key, entry in uploads]
        return out

    def _find(self, key: str) -> tuple[str, Image.Image, bytes]:
        with self._lock:
            upload = self._uploads.get(key)
        if upload is not None:
            return upload.name, upload.image, upload.thumbnail
        path = self._preset_files().get(key)  # looked up by name in the listing; the request never forms a path
        found = self._preset(path) if path is not None else None
        if found is None:
            known = ", ".join(e["id"] for e in self.entries()) or "none"
            raise APIError(404, f"style: no style {key[:64]!r} in the gallery (known: {known}); "
                                "pick one from GET /api/styles or upload a photo")
        return _display_name(key), found[0], found[1]

    def image(self, key: str) -> Image.Image:
        return self._find(key)[1]

    def name(self, key: str) -> str:
        return self._find(key)[0]

    def thumbnail(self, key: str) -> bytes:
        return self._find(key)[2]

    def is_upload(self, key: str) -> bool:
        with self._lock:
            return key in self._uploads

    def add(self, data: bytes, name: str | None, longest_side: int) -> dict:
        """Keep an uploaded photo (decoded, shrunk to `longest_side`) and return its gallery entry."""
        image = open_upload(data, "style_image", self.limits, STYLE_FORMATS).convert("RGB")
        if max(image.size) > longest_side:
            image.thumbnail((longest_side, longest_side), Image.BICUBIC)
        clean = re.sub(r"[^\w .()-]+", "", name or "").strip()[:40]
        key = f"upload-{secrets.token_hex(6)}"
        with self._lock:
            clean = clean or f"Upload {len(self._uploads) + 1}"
            self._uploads[key] = _Upload(clean, image, _thumbnail(image))
            while len(self._uploads) > self.max_uploads:
                self._uploads.popitem(last=False)
        return {"id": key, "name": clean, "kind": "upload", "thumbnail": f"/api/styles/{key}/thumbnail"}

    def remove(self, key: str) -> None:
        with self._lock:
            if self._uploads.pop(key, None) is not None:
                return
        if key in self._preset_files():
            raise APIError(409, f"style {key!r} is a bundled preset and cannot be removed; only uploads can")
        raise APIError(404, f"style: no uploaded style {key[:64]!r}; see GET /api/styles")


# ---- layers and projects -------------------------------------------------------------------------
TRANSPARENT = -1


def encode_layer(ids: np.ndarray, labels) -> bytes:
    """A layer (raw ids, TRANSPARENT where empty) -> RGBA PNG in the palette's colours, alpha 0 where empty."""
    rgba = np.zeros(ids.shape + (4,), np.uint8)
    opaque = ids != TRANSPARENT
    rgba[..., :3] = labels.colorize(np.where(opaque, ids, 0))
    rgba[..., :3][~opaque] = 0
    rgba[..., 3] = np.where(opaque, 255, 0)
    return png_bytes(Image.fromarray(rgba), compress_level=6)  # [H,W,4] uint8: mode RGBA


def decode_layer(data: bytes, what: str, labels, limits: Limits, size: tuple[int, int]) -> np.ndarray:
    """An RGBA layer PNG -> raw ids with TRANSPARENT where alpha is 0; every other pixel opaque and in the palette."""
    image = open_upload(data, what, limits, ("PNG",))
    width, height = size
    if image.size != (width, height):
        raise APIError(422, f"{what}: the layer is {image.width}x{image.height} but the project is {width}x{height}; "
                            "every layer has the project's size")
    rgba = np.array(image.convert("RGBA"))
    alpha = rgba[..., 3]
    if not np.isin(alpha, (0, 255)).all():
        count = int((~np.isin(alpha, (0, 255))).sum())
        raise APIError(422, f"{what}: {count} pixel(s) are partly transparent; each pixel must be a palette colour "
                            "(opaque) or fully transparent (alpha 0)")
    ids = np.full((height, width), TRANSPARENT, np.int64)
    opaque = alpha == 255
    if opaque.any():
        try:
            ids[opaque] = labels.from_colors(rgba[..., :3][opaque][None], what)[0]
        except SpadekitError as error:
            raise APIError(422, str(error)) from None
    return ids


def composite(layers: list[tuple[np.ndarray, bool]], background: int) -> np.ndarray:
    """The label map of visible layers (bottom to top): a transparent pixel shows the layer below, then `background`."""
    out = np.full(layers[0][0].shape, background, np.int64)
    for ids, visible in layers:
        if visible:
            out = np.where(ids != TRANSPARENT, ids, out)
    return out


def _label(labels, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in labels.ids:
        raise APIError(422, f"{what}: {str(value)[:40]!r} is not a label id of the {labels.name!r} label set")
    return value


def _settings(data: Any, labels, choices: list[dict], canvas_limits: CanvasLimits, what: str) -> dict:
    """Check a project's settings (size, seed, background, layers' names and visibility); returns them cleaned."""
    if not isinstance(data, dict):
        raise APIError(422, f"{what}: expected a JSON object with width, height, layers, ...")
    for key in ("width", "height"):
        if isinstance(data.get(key), bool) or not isinstance(data.get(key), int):
            raise APIError(422, f"{what}: '{key}' must be an integer number of pixels, got {str(data.get(key))[:40]!r}")
    width, height = data["width"], data["height"]
    parse_size(f"{width}x{height}", choices, canvas_limits)
    size_name = data.get("size")
    if size_name is not None and size_name not in {c["name"] for c in choices} | {"custom"}:
        raise APIError(422, f"{what}: 'size' must be one of {[c['name'] for c in choices] + ['custom']}, got {str(size_name)[:40]!r}")
    layers = data.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= canvas_limits.max_layers:
        raise APIError(422, f"{what}: 'layers' must list 1..{canvas_limits.max_layers} layers, bottom first")
    clean_layers = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("name", ""), str) \
                or not isinstance(layer.get("visible", True), bool):
            raise APIError(422, f"{what}: layer {index} must be an object with a text 'name' and a true/false 'visible'")
        clean_layers.append({"name": layer.get("name", "")[:40] or f"Layer {index + 1}", "visible": layer.get("visible", True)})
    style = data.get("style")
    if style is not None and (not isinstance(style, str) or not _STYLE_ID.match(style)):
        raise APIError(422, f"{what}: 'style' must be a gallery style id or null, got {str(style)[:40]!r}")
    return {
        "width": width, "height": height, "size": size_name or "custom",
        "seed": parse_seed(data.get("seed")),
        "background": _label(labels, data.get("background", labels.ids[0]), f"{what}: background"),
        "style": style, "layers": clean_layers,
    }


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, what: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise APIError(422, f"{what}: the project file has no {name}; it is damaged or not a spadekit project") from None
    if info.file_size > limit:
        raise APIError(413, f"{what}: {name} unpacks to {info.file_size} bytes, over the limit of {limit}")
    with archive.open(info) as handle:
        data = handle.read(limit + 1)  # the header's size may lie
    if len(data) > limit:
        raise APIError(413, f"{what}: {name} unpacks to more than {limit} bytes")
    return data


def read_project(data: bytes, labels, limits: Limits, choices: list[dict], canvas_limits: CanvasLimits) -> dict:
    """A project file -> {settings..., "layers": [{name, visible, ids}], "style_png": bytes or None}, validated."""
    what = "project"
    if len(data) > canvas_limits.max_project_bytes:
        raise APIError(413, f"{what}: {len(data)} bytes, over the project file limit of {canvas_limits.max_project_bytes}")
    if not data:
        raise APIError(422, f"{what}: the file is empty; open a {PROJECT_SUFFIX} file saved by the app")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if len(archive.infolist()) > canvas_limits.max_layers + 8:
                raise APIError(422, f"{what}: {len(archive.infolist())} entries, more than a project holds")
            try:
                meta = json.loads(_read_member(archive, "project.json", 1024 * 1024, what))
            except (ValueError, RecursionError) as error:
                raise APIError(422, f"{what}: project.json is not valid JSON ({str(error)[:80]})") from None
            if not isinstance(meta, dict) or meta.get("format") != PROJECT_FORMAT:
                raise APIError(422, f"{what}: project.json does not describe a {PROJECT_FORMAT!r}; "
                                    f"open a {PROJECT_SUFFIX} file saved by the app")
            version = meta.get("version")
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                raise APIError(422, f"{what}: project.json has no valid version (got {str(version)[:20]!r})")
            if version > PROJECT_VERSION:
                raise APIError(422, f"{what}: version {version} was written by a newer spadekit (this one reads up to "
                                    f"version {PROJECT_VERSION}); upgrade spadekit to open it")
            if meta.get("label_set") != labels.name:
                raise APIError(422, f"{what}: painted with the {str(meta.get('label_set'))[:40]!r} labels, but this "
                                    f"server's model uses {labels.name!r}; open it with a {meta.get('label_set')!r} model")
            settings = _settings(meta, labels, choices, canvas_limits, f"{what}: project.json")
            size = (settings["width"], settings["height"])
            files = meta.get("layers")
            layers = []
            for index, (layer, clean) in enumerate(zip(files, settings["layers"])):
                name = layer.get("file")
                if not isinstance(name, str):
                    raise APIError(422, f"{what}: layer {index} names no file in project.json")
                png = _read_member(archive, name, limits.max_upload_bytes, what)
                layers.append({**clean, "ids": decode_layer(png, f"{what}: layer {index} ({name})", labels, limits, size)})
            style_png = None
            if meta.get("style_file") is not None:
                style_png = _read_member(archive, str(meta["style_file"]), limits.max_upload_bytes, what)
                settings["style_name"] = str(meta.get("style_name") or "")[:40]
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as error:
        raise APIError(422, f"{what}: not a readable {PROJECT_SUFFIX} file (a zip archive): {str(error)[:80]}; "
                            "open a project saved by the app") from None
    return {**settings, "layers": layers, "style_png": style_png}


def write_project(settings: dict, layers: list[np.ndarray], labels, style: tuple[str, bytes] | None) -> bytes:
    """Settings + layer ids (bottom first) [+ an uploaded style photo (name, PNG)] -> the project file's bytes."""
    meta = {"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "label_set": labels.name,
            "width": settings["width"], "height": settings["height"], "size": settings["size"],
            "seed": settings["seed"], "background": settings["background"], "style": settings["style"],
            "layers": [{**layer, "file": f"layers/{index:02d}.png"} for index, layer in enumerate(settings["layers"])]}
    if style is not None:
        meta.update(style=None, style_name=style[0], style_file="style.png")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.json", json.dumps(meta, indent=1))
        for index, ids in enumerate(layers):
            archive.writestr(f"layers/{index:02d}.png", encode_layer(ids, labels))
        if style is not None:
            archive.writestr("style.png", style[1])
    return buffer.getvalue()


def id_png(ids: np.ndarray) -> bytes:
    """Raw ids as a greyscale PNG: 8-bit when every id fits, else 16-bit."""
    if ids.max(initial=0) <= 255:
        return png_bytes(Image.fromarray(ids.astype(np.uint8)))  # mode L
    return png_bytes(Image.fromarray(ids.astype(np.uint16)))  # mode I;16


# ---- routes --------------------------------------------------------------------------------------
def _only_multipart(request: Request, body: bytes, allowed: set[str], what: str) -> dict[str, list[tuple[str | None, bytes]]]:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise APIError(415, f"unsupported Content-Type {content_type[:60]!r}; send multipart/form-data ({what})")
    fields = parse_multipart(body, content_type)
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise APIError(422, f"unknown form field(s) {unknown[:5]}; use {', '.join(sorted(allowed))}")
    for name, values in fields.items():
        if len(values) > 1 and name != "layer":
            raise APIError(422, f"{name}: given {len(values)} times; give it once")
    return fields


def _text(fields: dict, name: str, default: str | None = None) -> str | None:
    if name not in fields:
        return default
    try:
        return fields[name][0][1].decode("utf-8")
    except UnicodeDecodeError:
        raise APIError(422, f"{name}: expected UTF-8 text") from None


def _file(fields: dict, name: str, hint: str) -> bytes:
    if not fields.get(name) or not fields[name][0][1]:
        raise APIError(422, f"{name}: missing or empty; {hint}")
    return fields[name][0][1]


def add_canvas_routes(app: FastAPI, pipeline, limits: Limits, *, read_body: Callable, run_job: Callable,
                      busy: Callable[[], APIError], decode_slots: threading.BoundedSemaphore,
                      canvas_limits: CanvasLimits | None = None, styles_dir: Path | None = STYLES_DIR) -> None:
    """Add the canvas endpoints to `app` (made by `server.create_app`, whose body reader, job runner and
    busy answer they share). The upscaler is the bundled one, loaded on first use; set
    `app.state.canvas.upscaler` to use another, `app.state.canvas.canvas_limits` for other limits."""
    canvas_limits = canvas_limits or CanvasLimits()
    state = CanvasState(pipeline, limits, canvas_limits, StyleGallery(styles_dir, limits, canvas_limits))
    app.state.canvas = state
    state.pool_full = app.state.pool.full
    labels = pipeline.labels

    @app.get("/api/canvas", summary="Canvas tools: size choices, upscale scales, project format, limits")
    async def canvas_info():
        upscaler = await asyncio.to_thread(state.get_upscaler)
        return {
            "sizes": (sizes := state.choices()), "default_size": sizes[0]["name"],
            "upscale": {"available": upscaler is not None, "scales": list(upscaler.scales) if upscaler else []},
            "style_gallery": bool(pipeline.info().get("style_image")),
            "project": {"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "suffix": PROJECT_SUFFIX},
            "limits": state.canvas_limits.describe(),
        }

    @app.post("/api/render", summary="Generate an image at a size choice, optionally in a gallery style",
              openapi_extra={"requestBody": openapi.RENDER_BODY}, responses=openapi.RENDER_RESPONSES, response_class=Response)
    async def render(request: Request):
        received = time.perf_counter()
        body = await read_body(request)
        fields = _only_multipart(request, body, {"label_map", "size", "seed", "style", "style_image"}, "label_map file")
        label_png = _file(fields, "label_map", "upload the label map (the composite of the visible layers) as a PNG")
        size = parse_size(_text(fields, "size", state.choices()[0]["name"]), state.choices(), state.canvas_limits)
        seed = parse_seed((_text(fields, "seed", "") or "").strip())
        style_key = (_text(fields, "style", "") or "").strip() or None
        style_png = fields["style_image"][0][1] if fields.get("style_image") and fields["style_image"][0][1] else None
        if style_key and style_png:
            raise APIError(422, "give either style (a gallery id) or style_image (a photo), not both")
        if (style_key or style_png) and not pipeline.info().get("style_image"):
            raise APIError(422, "style: this model has no image encoder, so it cannot follow a style photo; leave it out")
        if state.pool_full():
            raise busy()

        def decode():
            with decode_slots:
                ids = decode_label_map(pipeline, label_png, limits)
                style = None
                if style_key:
                    style = state.gallery.image(style_key)
                elif style_png:
                    style = open_upload(style_png, "style_image", limits, STYLE_FORMATS).convert("RGB")
                if style is not None:
                    h, w = pipeline.size
                    style = style.resize((w, h), Image.BICUBIC)
                return ids, style

        ids, style = await asyncio.to_thread(decode)

        def job(cancelled: threading.Event):
            start = time.perf_counter()
            try:
                result = pipeline.run(ids, seed=seed, style_image=style, size=size)
            except SpadekitError as error:
                raise APIError(422, str(error)) from None
            return png_bytes(result.images[0], compress_level=1), result.images[0].size, list(result.notes), time.perf_counter() - start

        png, made, notes, seconds = await run_job(request, job)
        headers = {"X-Seed": str(seed), "X-Size": f"{made[0]}x{made[1]}", "X-Inference-Ms": f"{seconds * 1000:.1f}",
                   "X-Total-Ms": f"{(time.perf_counter() - received) * 1000:.1f}", "Cache-Control": "no-store"}
        if notes:
            headers["X-Spadekit-Note"] = header_text("; ".join(notes))
        return Response(png, media_type="image/png", headers=headers)

    @app.get("/api/styles", summary="The style gallery: bundled presets, then uploads")
    async def list_styles():
        return {"styles": await asyncio.to_thread(state.gallery.entries),
                "max_uploads": state.gallery.max_uploads}

    @app.get("/api/styles/{style_id}/thumbnail", summary="A style's thumbnail (JPEG)",
             responses={"200": {"content": openapi.JPEG}, "404": {"description": "no such style", "content": openapi.ERROR}},
             response_class=Response)
    async def style_thumbnail(style_id: str):
        jpeg = await asyncio.to_thread(state.gallery.thumbnail, style_id)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/styles", summary="Add a style photo to the gallery (kept in the server's memory)",
              openapi_extra={"requestBody": openapi.STYLE_UPLOAD_BODY}, responses=openapi.STYLE_UPLOAD_RESPONSES)
    async def upload_style(request: Request):
        body = await read_body(request)
        fields = _only_multipart(request, body, {"image", "name"}, "image file")
        data = _file(fields, "image", "upload the style photo (PNG or JPEG) in the 'image' field")
        name = _text(fields, "name") or (fields["image"][0][0] or "").rsplit(".", 1)[0]
        longest = max(pipeline.size) * 2

        def work():
            with decode_slots:
                return state.gallery.add(data, name, longest)

        return await asyncio.to_thread(work)

    @app.delete("/api/styles/{style_id}", summary="Remove an uploaded style from the gallery",
                responses={"404": {"description": "no such upload", "content": openapi.ERROR},
                           "409": {"description": "a bundled preset", "content": openapi.ERROR}})
    async def delete_style(style_id: str):
        state.gallery.remove(style_id)
        return {"removed": style_id}

    @app.post("/api/upscale", summary="Upscale an image 2x or 4x with the bundled upscaler",
              openapi_extra={"requestBody": openapi.UPSCALE_BODY}, responses=openapi.UPSCALE_RESPONSES, response_class=Response)
    async def upscale(request: Request):
        body = await read_body(request)
        fields = _only_multipart(request, body, {"image", "scale"}, "image file")
        data = _file(fields, "image", "upload the image to upscale (PNG) in the 'image' field")
        scale_text = (_text(fields, "scale", "4") or "").strip()
        if scale_text not in {str(s) for s in UPSCALES}:
            raise APIError(422, f"scale: expected one of {list(UPSCALES)}, got {scale_text[:20]!r}")
        scale = int(scale_text)
        upscaler = await asyncio.to_thread(state.get_upscaler)
        if upscaler is None:
            raise APIError(409, f"upscale: this server has no upscaler ({state.upscaler_problem})")
        if scale not in upscaler.scales:
            raise APIError(422, f"scale: this upscaler makes {list(upscaler.scales)}x, not {scale}x")
        if state.pool_full():
            raise busy()

        def decode():
            with decode_slots:
                return open_upload(data, "image", limits, STYLE_FORMATS).convert("RGB")

        image = await asyncio.to_thread(decode)
        out_pixels = image.width * image.height * scale * scale
        if out_pixels > state.canvas_limits.max_upscaled_pixels:
            raise APIError(413, f"image: {image.width}x{image.height} upscaled {scale}x is {out_pixels} pixels, over the "
                                f"limit of {state.canvas_limits.max_upscaled_pixels}; use a smaller image or scale")

        def job(cancelled: threading.Event):
            start = time.perf_counter()
            try:
                larger = upscaler(image, scale)
            except SpadekitError as error:
                raise APIError(422, str(error)) from None
            return png_bytes(larger, compress_level=1), larger.size, time.perf_counter() - start

        png, made, seconds = await run_job(request, job)
        return Response(png, media_type="image/png", headers={
            "X-Size": f"{made[0]}x{made[1]}", "X-Scale": str(scale), "X-Inference-Ms": f"{seconds * 1000:.1f}",
            "Cache-Control": "no-store"})

    @app.post("/api/projects/save", summary="Label layers and settings -> one project file",
              openapi_extra={"requestBody": openapi.PROJECT_SAVE_BODY}, responses=openapi.PROJECT_SAVE_RESPONSES,
              response_class=Response)
    async def save_project(request: Request):
        body = await read_body(request)
        fields = _only_multipart(request, body, {"project", "layer"}, "project JSON + layer files")
        try:
            meta = json.loads(_file(fields, "project", "send the settings as JSON text in the 'project' field"))
        except (ValueError, RecursionError) as error:
            raise APIError(422, f"project: not valid JSON ({str(error)[:80]})") from None
        settings = _settings(meta, labels, state.choices(), state.canvas_limits, "project")
        pngs = [data for _, data in fields.get("layer", [])]
        if len(pngs) != len(settings["layers"]):
            raise APIError(422, f"project lists {len(settings['layers'])} layer(s) but {len(pngs)} 'layer' file(s) came; "
                                "send one RGBA PNG per layer, bottom first")
        size = (settings["width"], settings["height"])

        def work():
            with decode_slots:
                layers = [decode_layer(png, f"layer {i}", labels, limits, size) for i, png in enumerate(pngs)]
                style = None
                if settings["style"] and state.gallery.is_upload(settings["style"]):
                    style = (state.gallery.name(settings["style"]), png_bytes(state.gallery.image(settings["style"])))
                elif settings["style"]:
                    state.gallery.image(settings["style"])  # a preset: must exist
                return write_project(settings, layers, labels, style)

        data = await asyncio.to_thread(work)
        if len(data) > state.canvas_limits.max_project_bytes:
            raise APIError(413, f"the project file would be {len(data)} bytes, over the limit of {state.canvas_limits.max_project_bytes}")
        return Response(data, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="painting{PROJECT_SUFFIX}"', "Cache-Control": "no-store"})

    @app.post("/api/projects/open", summary="A project file -> its layers and settings, validated",
              openapi_extra={"requestBody": openapi.PROJECT_OPEN_BODY}, responses=openapi.PROJECT_OPEN_RESPONSES)
    async def open_project(request: Request):
        body = await read_body(request)
        fields = _only_multipart(request, body, {"project"}, "project file")
        data = _file(fields, "project", f"upload a {PROJECT_SUFFIX} file in the 'project' field")

        def work():
            with decode_slots:
                project = read_project(data, labels, limits, state.choices(), state.canvas_limits)
                notes = []
                if project["style_png"] is not None:
                    project["style"] = state.gallery.add(project["style_png"], project.pop("style_name", ""),
                                                         max(pipeline.size) * 2)["id"]
                elif project["style"]:
                    try:
                        state.gallery.image(project["style"])
                    except APIError:
                        notes.append(f"style {project['style']!r} is not in this server's gallery; no style is selected")
                        project["style"] = None
                layers = [{"name": layer["name"], "visible": layer["visible"],
                           "png": base64.b64encode(encode_layer(layer["ids"], labels)).decode()} for layer in project["layers"]]
                return {"format": PROJECT_FORMAT, "version": PROJECT_VERSION, "label_set": labels.name,
                        **{k: project[k] for k in ("width", "height", "size", "seed", "background", "style")},
                        "layers": layers, "notes": notes}

        return await asyncio.to_thread(work)

    @app.post("/api/export/label-map", summary="A label map or a project -> colour PNG or raw-id PNG",
              openapi_extra={"requestBody": openapi.EXPORT_BODY}, responses=openapi.EXPORT_RESPONSES, response_class=Response)
    async def export_label_map(request: Request):
        body = await read_body(request)
        fields = _only_multipart(request, body, {"label_map", "project", "format"}, "label_map or project file")
        kind = (_text(fields, "format", "color") or "").strip().lower()
        if kind not in ("color", "ids"):
            raise APIError(422, f"format: expected 'color' (palette colours) or 'ids' (raw label ids), got {kind[:20]!r}")
        if bool(fields.get("label_map")) == bool(fields.get("project")):
            raise APIError(422, "give exactly one of label_map (a PNG) or project (a project file)")

        def work():
            with decode_slots:
                if fields.get("label_map"):
                    ids = decode_label_map(pipeline, _file(fields, "label_map", "upload a PNG label map"), limits)
                else:
                    project = read_project(_file(fields, "project", "upload a project file"), labels, limits, state.choices(), state.canvas_limits)
                    ids = composite([(layer["ids"], layer["visible"]) for layer in project["layers"]], project["background"])
                png = png_bytes(colorize(ids, labels)) if kind == "color" else id_png(ids)
                return png, ids.shape

        png, shape = await asyncio.to_thread(work)
        name = f"label_map_{shape[1]}x{shape[0]}{'_ids' if kind == 'ids' else ''}.png"
        return Response(png, media_type="image/png", headers={
            "Content-Disposition": f'attachment; filename="{name}"', "X-Label-Map-Size": f"{shape[1]}x{shape[0]}"})


class CanvasState:
    """What the canvas routes share: the pipeline, limits, the style gallery and the (lazily loaded) upscaler."""

    _UNSET = object()

    def __init__(self, pipeline, limits: Limits, canvas_limits: CanvasLimits, gallery: StyleGallery):
        self.pipeline = pipeline
        self.limits = limits
        self.canvas_limits = canvas_limits
        self.gallery = gallery
        self.upscaler: Any = self._UNSET
        self.upscaler_problem = "the bundled upscaler-x4 is missing; reinstall spadekit to get it"
        self.pool_full: Callable[[], bool] = lambda: False  # set to the server pool's full()
        self._lock = threading.Lock()

    def choices(self) -> list[dict]:
        return size_choices(tuple(self.pipeline.size), self.canvas_limits)

    def get_upscaler(self) -> Upscaler | None:
        with self._lock:
            if self.upscaler is self._UNSET:
                try:
                    self.upscaler = bundled_upscaler()
                except SpadekitError as error:  # damaged weights: the app runs on without upscaling, and says why
                    self.upscaler, self.upscaler_problem = None, str(error)
            return self.upscaler


__all__ = ["add_canvas_routes", "CanvasLimits", "StyleGallery", "Upscaler", "composite", "decode_layer", "encode_layer",
           "read_project", "write_project"]
