"""Reading requests to the app: the per-request limits, request bodies (read in memory up to the limit,
never spooled to files), uploads (multipart, base64), label maps as ids or images, seeds and label
replacements. Every problem is an `APIError` with its status code and one clear message."""
from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from spadekit import SpadekitError
from spadekit.imageio import MAX_PIXELS, ImageTooLarge, open_image

LABEL_MAP_FORMATS = ("PNG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
STYLE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM")
MAX_SEED = 2**32 - 1
MAX_REPLACE = 32
MAX_PARTS = 16


@dataclass(frozen=True)
class Limits:
    """Per-request limits. Bigger requests get 413 (bytes, pixels) before any decoding work."""

    max_upload_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 2048 * 2048

    def __post_init__(self):
        if self.max_upload_bytes < 1:
            raise SpadekitError(f"the upload limit must be at least 1 byte, got {self.max_upload_bytes}")
        if not 1 <= self.max_pixels <= MAX_PIXELS:
            raise SpadekitError(f"the pixel limit must lie in 1..{MAX_PIXELS} (the limit for every image spadekit "
                                f"opens), got {self.max_pixels}")

    def describe(self) -> dict:
        return asdict(self)


class APIError(Exception):
    """An answer with a status code and one clear message: {"detail": message}."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


async def read_limited_body(request, limits: Limits) -> bytes:
    """The body of a Starlette request, refused with 413 as soon as it is known to be over the upload limit:
    from its Content-Length before reading anything, else while it streams in (never held past the limit)."""
    from starlette.requests import ClientDisconnect

    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise APIError(400, f"invalid Content-Length header {length[:20]!r}")
        if int(length) > limits.max_upload_bytes:
            raise APIError(413, f"request body is {int(length)} bytes, over the upload limit of {limits.max_upload_bytes} bytes",
                           headers={"Connection": "close"})
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_upload_bytes:
                raise APIError(413, f"request body is over the upload limit of {limits.max_upload_bytes} bytes",
                               headers={"Connection": "close"})
            chunks.append(chunk)
    except ClientDisconnect:
        raise APIError(400, "the client went away while sending the body") from None
    return b"".join(chunks)


def header_text(text: str, limit: int = 1000) -> str:
    """`text` as a response header value: one line of printable ASCII (others become '?'), at most `limit` characters."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:limit])


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk (checksum included); None for other data."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[8:16] != b"\0\0\0\x0dIHDR" or len(data) < 33:
        return None
    if zlib.crc32(data[12:29]) != int.from_bytes(data[29:33], "big"):
        return None  # a damaged header: Pillow names it
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def open_upload(data: bytes, what: str, limits: Limits, formats: tuple[str, ...]) -> Image.Image:
    """Bytes -> a loaded PIL image, refusing non-images (422) and too many pixels (413) before decoding."""
    if not data:
        raise APIError(422, f"{what}: the upload is empty; send a PNG file")
    size = _png_size(data)
    if size is not None:  # from the header, before Pillow's own decompression-bomb check words it in its limit
        width, height = size
        if width * height == 0:
            raise APIError(422, f"{what}: the image is {width}x{height} pixels, an image without pixels; send one of at least 1x1")
        if width * height > limits.max_pixels:
            raise APIError(413, f"{what}: {width}x{height} = {width * height} pixels is over the limit of {limits.max_pixels}; "
                                "shrink the image")
    try:
        return open_image(data, what, max_pixels=limits.max_pixels, formats=formats)
    except ImageTooLarge as error:
        claimed = re.search(r"\((\d+) pixels\)", str(error))  # Pillow's bomb message names the pixels only
        if claimed:
            raise APIError(413, f"{what}: refused as a possible decompression bomb: its header says {claimed.group(1)} pixels, "
                                f"over the limit of {limits.max_pixels}; shrink the image") from None
        raise APIError(413, str(error)) from None
    except SpadekitError as error:
        if data[:3] == b"\xff\xd8\xff" and "JPEG" not in formats:
            raise APIError(422, f"{what}: JPEG is lossy, so its colours are not exact label colours; send a PNG") from None
        raise APIError(422, str(error)) from None


# Image modes that hold label ids (greyscale, palette) or colours exactly; others (CMYK, YCbCr, float...) do not.
LABEL_MAP_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L")
SEND = "send label ids as an 8- or 16-bit greyscale or palette PNG, or the palette's colours as an RGB PNG"


def _label_image(image: Image.Image) -> Image.Image:
    """The upload as an image `load_label_map` reads exactly: transparent pixels and modes that cannot
    hold label ids or colours are refused (422) naming the mode; opaque grey+alpha drops its alpha."""
    mode = image.mode
    if mode not in LABEL_MAP_MODES:
        kind = f"{image.format} image" if image.format else "image"
        raise APIError(422, f"label_map: a {kind} of mode {mode} cannot hold label ids or colours exactly; {SEND}")
    if mode == "LA" or (mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA").getchannel("A") if mode == "P" else image.getchannel("A"))
        if (alpha < 255).any():
            raise APIError(422, f"label_map: the label map has {int((alpha < 255).sum())} transparent pixel(s); "
                                "paint every pixel with a label (no transparency)")
        return image if mode == "P" else image.convert("L")
    return image


def decode_label_map(pipeline, data: bytes, limits: Limits) -> np.ndarray:
    """An uploaded label map (ids or palette colours) -> raw ids, validated against the pipeline's labels."""
    image = _label_image(open_upload(data, "label_map", limits, LABEL_MAP_FORMATS))
    try:
        return pipeline.load_label_map(image)
    except SpadekitError as error:
        if image.mode == "1":
            raise APIError(422, f"{error}; a 1-bit (black and white) image holds only black and white, so {SEND}") from None
        raise APIError(422, str(error)) from None


def _b64(text: Any, field: str, limits: Limits) -> bytes:
    if not isinstance(text, str):
        raise APIError(422, f"{field}: expected a base64 string, got {type(text).__name__}")
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(422, f"{field}: not valid base64 text") from None
    if len(data) > limits.max_upload_bytes:
        raise APIError(413, f"{field}: {len(data)} bytes after decoding, over the limit of {limits.max_upload_bytes}")
    return data


def _ids_from_json(value: Any, limits: Limits) -> np.ndarray:
    if not isinstance(value, list) or not value:
        raise APIError(422, "labels: expected a non-empty list of rows, each a list of label ids, e.g. [[156, 156], [123, 123]]")
    width = len(value[0]) if isinstance(value[0], list) else -1
    if width < 1 or not all(isinstance(row, list) and len(row) == width for row in value):
        raise APIError(422, "labels: every row must be a non-empty list of label ids, all rows the same length")
    if len(value) * width > limits.max_pixels:
        raise APIError(413, f"labels: {width}x{len(value)} is {width * len(value)} pixels, over the limit of {limits.max_pixels}")
    try:
        array = np.array(value)
    except (ValueError, OverflowError, TypeError):
        array = None
    if array is None or array.dtype.kind not in "iu" or array.ndim != 2:
        raise APIError(422, "labels: every value must be an integer label id (no floats, booleans, strings or nesting)")
    return array.astype(np.int64)


def parse_seed(value: Any) -> int:
    """A request's seed: empty means 0; anything but an integer 0..MAX_SEED is a 422 naming the value."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise APIError(422, f"seed: expected an integer 0..{MAX_SEED}, got {value!r}")
    try:
        seed = int(value) if isinstance(value, (int, str)) else None
    except ValueError:
        seed = None
    if seed is None or not 0 <= seed <= MAX_SEED:
        raise APIError(422, f"seed: expected an integer 0..{MAX_SEED}, got {str(value)[:40]!r}")
    return seed


def replacements(values: list, labels) -> list[tuple[int, int]]:
    from spadekit.inference import label_id

    if len(values) > MAX_REPLACE:
        raise APIError(422, f"replace: at most {MAX_REPLACE} pairs, got {len(values)}")
    pairs = []
    for value in values:
        if isinstance(value, str) and "=" in value:
            a, b = (part.strip() for part in value.split("=", 1))
        elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            a, b = value
        else:
            raise APIError(422, f"replace: expected 'SOURCE=TARGET' (names or ids, e.g. grass=snow), got {str(value)[:60]!r}")
        try:
            pairs.append((label_id(labels, a), label_id(labels, b)))
        except SpadekitError as error:
            raise APIError(422, f"replace {a}={b}: {error}") from None
    return pairs


def parse_multipart(body: bytes, content_type: str) -> dict[str, list[tuple[str | None, bytes]]]:
    """A multipart/form-data body held in memory -> {field: [(filename or None, bytes), ...]}.

    Parsed here (not by Starlette) so that uploads never spill into temporary files.
    """
    from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise APIError(400, "multipart/form-data body without a boundary in its Content-Type header")
    fields: dict[str, list[tuple[str | None, bytes]]] = {}
    state: dict[str, Any] = {"ended": False}

    def on_part_begin():
        state.update(headers={}, data=[], field=b"", value=b"")

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        state["data"].append(data[start:end])

    def on_part_end():
        if sum(len(v) for v in fields.values()) >= MAX_PARTS:
            raise APIError(422, f"multipart body has more than {MAX_PARTS} parts")
        disposition, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise APIError(400, "a multipart part lacks 'Content-Disposition: form-data; name=...'")
        filename = options.get(b"filename")
        fields.setdefault(name.decode("utf-8", "replace"), []).append(
            (None if filename is None else filename.decode("utf-8", "replace"), b"".join(state["data"]))
        )

    def on_end():
        state["ended"] = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end,
    })
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise APIError(400, f"malformed multipart/form-data body ({error})") from None
    if not state["ended"]:
        closing = "--" + boundary.decode("latin-1")[:70] + "--"
        raise APIError(400, f"the multipart/form-data body ends before its closing boundary {closing!r} "
                            f"(a truncated upload of {len(body)} bytes?); send the whole body")
    return fields


@dataclass
class GenerateRequest:
    ids: np.ndarray | None = None
    label_png: bytes | None = None
    style_png: bytes | None = None
    seed: int = 0
    replace: list | None = None


def _text(value: bytes, field: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise APIError(422, f"{field}: expected UTF-8 text") from None


def parse_generate(body: bytes, content_type: str, limits: Limits) -> GenerateRequest:
    kind = content_type.split(";", 1)[0].strip().lower()
    request = GenerateRequest()
    if kind == "multipart/form-data":
        fields = parse_multipart(body, content_type)
        unknown = sorted(set(fields) - {"label_map", "seed", "style_image", "replace"})
        if unknown:
            raise APIError(422, f"unknown form field(s) {unknown}; use label_map (file), seed, style_image (file), replace")
        for name in ("label_map", "seed", "style_image"):
            if len(fields.get(name, [])) > 1:
                raise APIError(422, f"{name}: given {len(fields[name])} times; give it once")
        if "label_map" not in fields:
            raise APIError(422, "label_map: missing; upload the label map as a PNG file in the 'label_map' field")
        request.label_png = fields["label_map"][0][1]
        if "style_image" in fields and fields["style_image"][0][1]:
            request.style_png = fields["style_image"][0][1]
        if "seed" in fields:
            request.seed = parse_seed(_text(fields["seed"][0][1], "seed").strip())
        request.replace = [item.strip() for _, raw in fields.get("replace", []) for item in _text(raw, "replace").split(",") if item.strip()]
        return request
    if kind == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise APIError(400, f"malformed JSON body ({str(error)[:120]})") from None
        if not isinstance(data, dict):
            raise APIError(422, 'the JSON body must be an object, e.g. {"labels": [[156, 156], [123, 123]], "seed": 0}')
        unknown = sorted(set(data) - {"labels", "label_map_png", "seed", "style_image_png", "replace"})
        if unknown:
            raise APIError(422, f"unknown JSON field(s) {unknown[:5]}; use labels or label_map_png, seed, style_image_png, replace")
        if ("labels" in data) == ("label_map_png" in data):
            raise APIError(422, "give exactly one of 'labels' (a list of rows of label ids) or 'label_map_png' (a base64 PNG)")
        if "labels" in data:
            request.ids = _ids_from_json(data["labels"], limits)
        else:
            request.label_png = _b64(data["label_map_png"], "label_map_png", limits)
        if data.get("style_image_png") is not None:
            request.style_png = _b64(data["style_image_png"], "style_image_png", limits)
        request.seed = parse_seed(data.get("seed"))
        replace = data.get("replace") or []
        if not isinstance(replace, list):
            raise APIError(422, "replace: expected a list like [\"grass=snow\"] or [[\"grass\", \"snow\"]]")
        request.replace = replace
        return request
    raise APIError(415, f"unsupported Content-Type {kind or '(none)'!r}; send multipart/form-data (label_map file) or application/json")
