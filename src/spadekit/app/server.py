"""The painting app's web server: a REST API around a `Pipeline` plus the static front end.

    from spadekit.app.server import create_app
    app = create_app(Pipeline.from_pretrained("default"), max_workers=1, max_queue=8)
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (OpenAPI schema at /openapi.json, a readable page at /docs):
    GET  /api/health              liveness and queue state
    GET  /api/info                labels (id, name, colour), size, multimodal, style support, limits
    GET  /api/scenes              starter scenes (names from a fixed folder of the package)
    GET  /api/scenes/{name}       one starter scene as a colour PNG in the model's palette
    POST /api/label-map           a label map (ids or colours) -> the same map as a colour PNG
    POST /api/generate            a label map (multipart PNG, JSON ids or base64 PNG) -> image/png

Inference runs in a bounded thread pool (`max_workers` threads) behind a bounded queue
(`max_queue` waiting requests); when both are full the server answers 503 with Retry-After.
A request whose client went away before its turn is dropped without running the model.
Nothing here reads the disk except the static files, the scene folder (by names listed from it,
never by a path taken from a request) and, before this is called, the model.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import math
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.requests import ClientDisconnect

from spadekit import SpadekitError, __version__

STATIC_DIR = Path(str(resources.files("spadekit").joinpath("app", "static")))
SCENES_DIR = Path(str(resources.files("spadekit").joinpath("assets", "paintings")))
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

    def describe(self) -> dict:
        return asdict(self)


class APIError(Exception):
    """An answer with a status code and one clear message: {"detail": message}."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class _Cancelled(Exception):
    pass


# ---- bounded worker pool ------------------------------------------------------------------------
class InferencePool:
    """`workers` threads and at most `queue` jobs waiting; `try_submit` returns None when full.

    A job gets a threading.Event that is set when its client went away; a job still waiting then
    is skipped when its turn comes (the slot frees at once), a running one finishes.
    """

    def __init__(self, workers: int = 1, queue: int = 8):
        if workers < 1 or queue < 0:
            raise SpadekitError(f"the worker pool needs at least 1 worker and a queue of 0 or more, got {workers} and {queue}")
        self.workers = workers
        self.queue = queue
        self._executor: ThreadPoolExecutor | None = None  # made on first use, again after a shutdown (app restarts)
        self._lock = threading.Lock()
        self._pending = 0  # running + waiting
        self._running = 0
        self._mean_seconds = 1.0
        self.completed = 0
        self.dropped = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.queue

    def state(self) -> dict:
        with self._lock:
            return {
                "workers": self.workers, "queue": self.queue, "running": self._running,
                "waiting": self._pending - self._running, "completed": self.completed, "dropped": self.dropped,
            }

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the mean job time x jobs per worker ahead."""
        with self._lock:
            ahead = max(1, self._pending - self.workers + 1)
            return max(1, math.ceil(self._mean_seconds * ahead / self.workers))

    def full(self) -> bool:
        with self._lock:
            return self._pending >= self.capacity

    def try_submit(self, job: Callable[[threading.Event], Any]) -> tuple[Future, threading.Event] | None:
        with self._lock:
            if self._pending >= self.capacity:
                return None
            self._pending += 1
        cancelled = threading.Event()

        def run():
            start = time.perf_counter()
            try:
                if cancelled.is_set():
                    with self._lock:
                        self.dropped += 1
                    raise _Cancelled()
                with self._lock:
                    self._running += 1
                try:
                    result = job(cancelled)
                finally:
                    seconds = time.perf_counter() - start
                    with self._lock:
                        self._running -= 1
                        self.completed += 1
                        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds
                return result
            finally:
                with self._lock:
                    self._pending -= 1

        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="spadekit-infer")
            executor = self._executor
        return executor.submit(run), cancelled

    def shutdown(self) -> None:
        """Stop the threads (waiting jobs are cancelled); a later submit starts fresh ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


# ---- request decoding ---------------------------------------------------------------------------
def _open_limited(data: bytes, what: str, limits: Limits, formats: tuple[str, ...]) -> Image.Image:
    """Bytes -> a loaded PIL image, refusing non-images (422) and too many pixels (413) before decoding."""
    if not data:
        raise APIError(422, f"{what}: the upload is empty; send a PNG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(formats))
            pixels = image.width * image.height
            if pixels > limits.max_pixels:
                raise APIError(413, f"{what}: {image.width}x{image.height} is {pixels} pixels, over the limit of {limits.max_pixels}; send a smaller image")
            if pixels == 0:
                raise APIError(422, f"{what}: the image has no pixels ({image.width}x{image.height})")
            image.load()
    except APIError:
        raise
    except UnidentifiedImageError:
        if data[:3] == b"\xff\xd8\xff" and "JPEG" not in formats:
            raise APIError(422, f"{what}: JPEG is lossy, so its colours are not exact label colours; send a PNG") from None
        raise APIError(422, f"{what}: the upload is not an image in an accepted format ({', '.join(formats)}); send a PNG") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise APIError(413, f"{what}: the image is too large to decode (over {limits.max_pixels} pixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise APIError(422, f"{what}: the image is damaged or truncated ({str(error)[:120]}); send a complete PNG") from None
    return image


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


def _seed(value: Any) -> int:
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


def _replacements(values: list, labels) -> list[tuple[int, int]]:
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
    state: dict[str, Any] = {}

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

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise APIError(400, f"malformed multipart/form-data body ({error})") from None
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
            request.seed = _seed(_text(fields["seed"][0][1], "seed").strip())
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
        request.seed = _seed(data.get("seed"))
        replace = data.get("replace") or []
        if not isinstance(replace, list):
            raise APIError(422, "replace: expected a list like [\"grass=snow\"] or [[\"grass\", \"snow\"]]")
        request.replace = replace
        return request
    raise APIError(415, f"unsupported Content-Type {kind or '(none)'!r}; send multipart/form-data (label_map file) or application/json")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _decode_label_map(pipeline, data: bytes, limits: Limits) -> np.ndarray:
    image = _open_limited(data, "label_map", limits, LABEL_MAP_FORMATS)
    try:
        return pipeline.load_label_map(image)
    except SpadekitError as error:
        raise APIError(422, str(error)) from None


def _fit(ids: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """Nearest resize of an id map to (H, W), done here so the shared pipeline keeps no warnings."""
    h, w = size
    if ids.shape == (h, w):
        return ids, None
    rows = (np.arange(h) * ids.shape[0] // h).clip(0, ids.shape[0] - 1)
    cols = (np.arange(w) * ids.shape[1] // w).clip(0, ids.shape[1] - 1)
    return ids[rows][:, cols], f"label map resized from {ids.shape[1]}x{ids.shape[0]} to {w}x{h} (nearest)"


# ---- scenes -------------------------------------------------------------------------------------
class SceneLibrary:
    """Starter scenes: PNG label maps in one folder, offered by name when they fit the model's labels."""

    def __init__(self, folder: Path | None, pipeline, limits: Limits):
        self.folder = folder
        self.pipeline = pipeline
        self.limits = limits
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self._lock = threading.Lock()

    def _files(self) -> dict[str, Path]:
        if self.folder is None or not self.folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.folder.iterdir()) if p.suffix.lower() == ".png" and p.is_file()}

    def _load(self, path: Path) -> bytes | None:
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._cache.get(path.stem)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            if path.stat().st_size > self.limits.max_upload_bytes:
                raise APIError(413, "too big")
            ids = _decode_label_map(self.pipeline, path.read_bytes(), self.limits)
            png = _png_bytes(Image.fromarray(self.pipeline.labels.colorize(ids)))
        except (APIError, OSError):
            png = None  # a scene painted for another label set, or unreadable: not offered
        with self._lock:
            self._cache[path.stem] = (mtime, png)
        return png

    def names(self) -> list[str]:
        return [name for name, path in self._files().items() if self._load(path) is not None]

    def get(self, name: str) -> bytes:
        files = self._files()
        path = files.get(name)  # looked up by name in the listing; the request never forms a path
        png = self._load(path) if path is not None else None
        if png is None:
            known = ", ".join(self.names()) or "none"
            raise APIError(404, f"no starter scene named {name[:60]!r}; known scenes: {known}")
        return png


# ---- OpenAPI descriptions -----------------------------------------------------------------------
_ERROR = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}
_PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}

GENERATE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["label_map"],
                "properties": {
                    "label_map": {"type": "string", "format": "binary", "description": "PNG label map: label ids (greyscale / palette) or the model's palette colours. Resized (nearest) to the model's size."},
                    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 0, "description": "style seed (multimodal models)"},
                    "style_image": {"type": "string", "format": "binary", "description": "optional example photo whose style to follow (models with an image encoder)"},
                    "replace": {"type": "array", "items": {"type": "string"}, "description": "label replacements SOURCE=TARGET (names or ids), e.g. grass=snow"},
                },
            },
            "encoding": {"label_map": {"contentType": "image/png"}, "style_image": {"contentType": "image/png, image/jpeg"}},
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "labels": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, "description": "label ids, a list of rows"},
                    "label_map_png": {"type": "string", "description": "base64 PNG label map (instead of labels)"},
                    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "default": 0},
                    "style_image_png": {"type": "string", "description": "base64 style photo (PNG or JPEG)"},
                    "replace": {"type": "array", "items": {"type": "string"}, "description": "SOURCE=TARGET pairs, e.g. grass=snow"},
                },
                "example": {"labels": [[156, 156, 156, 156], [123, 123, 123, 123]], "seed": 3, "replace": ["grass=snow"]},
            },
        },
    },
}
GENERATE_RESPONSES = {
    "200": {"description": "the generated image, at the model's size", "content": _PNG},
    "400": {"description": "malformed JSON or multipart body", "content": _ERROR},
    "413": {"description": "upload bytes or pixels over the limits", "content": _ERROR},
    "415": {"description": "unsupported Content-Type", "content": _ERROR},
    "422": {"description": "not an image, unknown label ids or colours, bad seed or replacement", "content": _ERROR},
    "503": {"description": "the inference queue is full; retry after the Retry-After header's seconds", "content": _ERROR},
}
LABEL_MAP_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["label_map"], "properties": {
        "label_map": {"type": "string", "format": "binary", "description": "PNG label map (ids or palette colours)"}}}}},
}


# ---- the app ------------------------------------------------------------------------------------
def create_app(
    pipeline,
    max_workers: int = 1,
    max_queue: int = 8,
    limits: Limits | None = None,
    random_model: bool = False,
    model_name: str | None = None,
    scenes_dir: Path | None | str = "package",
    static_dir: Path = STATIC_DIR,
):
    """The FastAPI app serving `pipeline` (anything with info(), labels, size, load_label_map and __call__).

    max_workers: inference threads; max_queue: requests that may wait for one (then 503).
    limits: upload bytes and pixels per image. random_model: say in /api/info and the page that
    the weights are random. scenes_dir: the starter scenes' folder ("package": the bundled ones,
    None: none).
    """
    limits = limits or Limits()
    pool = InferencePool(max_workers, max_queue)
    scenes = SceneLibrary(SCENES_DIR if scenes_dir == "package" else (Path(scenes_dir) if scenes_dir else None), pipeline, limits)
    decode_slots = threading.BoundedSemaphore(max(2, max_workers))  # bounds decoding memory under a flood
    info = dict(pipeline.info())
    info.update(random_model=bool(random_model), model=model_name, limits=limits.describe(), version=__version__,
                workers=max_workers, queue=max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        pool.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="spadekit painting app",
        version=__version__,
        description="Paint a label map, get an image (SPADE / GauGAN). All errors answer {\"detail\": message}.",
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",
    )
    app.state.pool = pool
    app.state.pipeline = pipeline
    app.state.limits = limits

    @app.exception_handler(APIError)
    async def _api_error(request, error: APIError):
        return JSONResponse({"detail": error.message}, status_code=error.status, headers=error.headers)

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise APIError(400, f"invalid Content-Length header {length[:20]!r}")
            if int(length) > limits.max_upload_bytes:
                raise APIError(413, f"request body is {int(length)} bytes, over the upload limit of {limits.max_upload_bytes} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise APIError(413, f"request body is over the upload limit of {limits.max_upload_bytes} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise APIError(400, "the client went away while sending the body") from None
        return b"".join(chunks)

    def busy() -> APIError:
        wait = pool.retry_after()
        return APIError(503, f"the server is busy: {pool.workers} worker(s) running and {pool.queue} request(s) waiting; retry in {wait} s",
                        headers={"Retry-After": str(wait)})

    async def run_job(request: Request, job: Callable[[threading.Event], Any]):
        submitted = pool.try_submit(job)
        if submitted is None:
            raise busy()
        future, cancelled = submitted
        waiting = asyncio.wrap_future(future)
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=0.25)
            if done:
                break
            if await request.is_disconnected():
                cancelled.set()  # still waiting: skipped when its turn comes; running: finishes unseen
                raise APIError(499, "client closed the request")
        try:
            return waiting.result()
        except _Cancelled:
            raise APIError(499, "client closed the request") from None

    @app.get("/api/health", summary="Liveness and queue state")
    async def health():
        return {"status": "ok", "pool": pool.state()}

    @app.get("/api/info", summary="Model information: labels, colours, size, multimodal, style support, limits")
    async def get_info():
        return info

    @app.get("/api/scenes", summary="Names of the starter scenes that fit this model's labels")
    async def list_scenes():
        names = await asyncio.to_thread(scenes.names)
        return {"scenes": [{"name": n, "url": f"/api/scenes/{n}"} for n in names]}

    @app.get("/api/scenes/{name}", summary="One starter scene as a colour PNG in the model's palette",
             responses={"200": {"content": _PNG}, "404": {"description": "no such scene", "content": _ERROR}},
             response_class=Response)
    async def get_scene(name: str):
        png = await asyncio.to_thread(scenes.get, name)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.post("/api/label-map", summary="Check a label map (ids or colours) and return it as a colour PNG",
              openapi_extra={"requestBody": LABEL_MAP_BODY},
              responses={"200": {"content": _PNG}, **{k: v for k, v in GENERATE_RESPONSES.items() if k in ("400", "413", "415", "422")}},
              response_class=Response)
    async def normalise_label_map(request: Request):
        body = await read_body(request)
        content_type = request.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
            raise APIError(415, f"unsupported Content-Type {content_type[:60]!r}; send multipart/form-data with a label_map file")
        fields = parse_multipart(body, content_type)
        if not fields.get("label_map"):
            raise APIError(422, "label_map: missing; upload the label map as a PNG file in the 'label_map' field")

        def work():
            with decode_slots:
                ids = _decode_label_map(pipeline, fields["label_map"][0][1], limits)
            return _png_bytes(Image.fromarray(pipeline.labels.colorize(ids))), ids.shape

        png, shape = await asyncio.to_thread(work)
        return Response(png, media_type="image/png", headers={"X-Label-Map-Size": f"{shape[1]}x{shape[0]}"})

    @app.post("/api/generate", summary="Generate an image from a label map",
              description="Send the label map as a multipart PNG upload (`label_map`), or as JSON with `labels` "
                          "(rows of ids) or `label_map_png` (base64). Optional: `seed`, a style image, `replace` pairs.",
              openapi_extra={"requestBody": GENERATE_BODY}, responses=GENERATE_RESPONSES, response_class=Response)
    async def generate(request: Request):
        received = time.perf_counter()
        body = await read_body(request)
        parsed = parse_generate(body, request.headers.get("content-type", ""), limits)
        pairs = _replacements(parsed.replace or [], pipeline.labels)

        if pool.full():
            raise busy()  # before spending time on decoding

        def decode():
            with decode_slots:
                return _decode(parsed)

        def _decode(parsed):
            ids = parsed.ids
            if ids is None:
                ids = _decode_label_map(pipeline, parsed.label_png, limits)
            else:
                try:
                    pipeline.labels.to_channels(ids, "labels")
                except SpadekitError as error:
                    raise APIError(422, str(error)) from None
            style = None
            if parsed.style_png is not None:
                if not pipeline.info().get("style_image"):
                    raise APIError(422, "style_image: this model has no image encoder, so it cannot follow a style image; leave it out")
                style = _open_limited(parsed.style_png, "style_image", limits, STYLE_FORMATS).convert("RGB")
                h, w = pipeline.size
                style = style.resize((w, h), Image.BICUBIC)
            return ids, style

        ids, style = await asyncio.to_thread(decode)
        for source, target in pairs:
            ids = np.where(ids == source, target, ids)
        ids, note = _fit(ids, tuple(pipeline.size))

        def job(cancelled: threading.Event):
            start = time.perf_counter()
            try:
                image = pipeline(ids, seed=parsed.seed, style_image=style)[0]
            except SpadekitError as error:
                raise APIError(422, str(error)) from None
            return _png_bytes(image), time.perf_counter() - start

        queued = time.perf_counter()
        png, seconds = await run_job(request, job)
        headers = {
            "X-Seed": str(parsed.seed),
            "X-Inference-Ms": f"{seconds * 1000:.1f}",
            "X-Total-Ms": f"{(time.perf_counter() - received) * 1000:.1f}",
            "X-Queue-Ms": f"{max(0.0, time.perf_counter() - queued - seconds) * 1000:.1f}",
            "Cache-Control": "no-store",
        }
        if note:
            headers["X-Spadekit-Note"] = note
        return Response(png, media_type="image/png", headers=headers)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(static_dir / "docs.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    return app
