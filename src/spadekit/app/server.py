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

The routes are here; the worker pool is in pool.py, request parsing and limits in parsing.py, the
starter scenes in scenes.py and the OpenAPI descriptions of bodies and answers in openapi.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from spadekit import SpadekitError, __version__
from spadekit.app import openapi
from spadekit.app.canvas import add_canvas_routes
from spadekit.app.parsing import (
    STYLE_FORMATS,
    APIError,
    Limits,
    decode_label_map,
    header_text,
    open_upload,
    parse_generate,
    parse_multipart,
    read_limited_body,
    replacements,
)
from spadekit.app.pool import Cancelled, InferencePool
from spadekit.app.scenes import SCENES_DIR, SceneLibrary
from spadekit.imageio import colorize, png_bytes

__all__ = ["create_app", "Limits", "APIError", "InferencePool", "SCENES_DIR", "STATIC_DIR"]

STATIC_DIR = Path(str(resources.files("spadekit").joinpath("app", "static")))


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
    """The FastAPI app serving `pipeline` (anything with info(), labels, size, load_label_map and run).

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
        return await read_limited_body(request, limits)

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
                pool.abandon(cancelled)  # still waiting: skipped when its turn comes; running: finishes unseen
                raise APIError(499, "client closed the request")
        try:
            return waiting.result()
        except Cancelled:
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
             responses={"200": {"content": openapi.PNG}, "404": {"description": "no such scene", "content": openapi.ERROR}},
             response_class=Response)
    async def get_scene(name: str):
        png = await asyncio.to_thread(scenes.get, name)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.post("/api/label-map", summary="Check a label map (ids or colours) and return it as a colour PNG",
              openapi_extra={"requestBody": openapi.LABEL_MAP_BODY},
              responses={"200": {"content": openapi.PNG},
                         **{k: v for k, v in openapi.GENERATE_RESPONSES.items() if k in ("400", "413", "415", "422")}},
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
                ids = decode_label_map(pipeline, fields["label_map"][0][1], limits)
            return png_bytes(colorize(ids, pipeline.labels), compress_level=1), ids.shape

        png, shape = await asyncio.to_thread(work)
        return Response(png, media_type="image/png", headers={"X-Label-Map-Size": f"{shape[1]}x{shape[0]}"})

    @app.post("/api/generate", summary="Generate an image from a label map",
              description="Send the label map as a multipart PNG upload (`label_map`), or as JSON with `labels` "
                          "(rows of ids) or `label_map_png` (base64). Optional: `seed`, a style image, `replace` pairs.",
              openapi_extra={"requestBody": openapi.GENERATE_BODY}, responses=openapi.GENERATE_RESPONSES, response_class=Response)
    async def generate(request: Request):
        received = time.perf_counter()
        body = await read_body(request)
        parsed = parse_generate(body, request.headers.get("content-type", ""), limits)
        pairs = replacements(parsed.replace or [], pipeline.labels)

        if pool.full():
            raise busy()  # before spending time on decoding

        def decode():
            with decode_slots:
                return _decode(parsed)

        def _decode(parsed):
            ids = parsed.ids
            if ids is None:
                ids = decode_label_map(pipeline, parsed.label_png, limits)
            else:
                try:
                    pipeline.labels.to_channels(ids, "labels")
                except SpadekitError as error:
                    raise APIError(422, str(error)) from None
            style = None
            if parsed.style_png is not None:
                if not pipeline.info().get("style_image"):
                    raise APIError(422, "style_image: this model has no image encoder, so it cannot follow a style image; leave it out")
                style = open_upload(parsed.style_png, "style_image", limits, STYLE_FORMATS).convert("RGB")
                h, w = pipeline.size
                style = style.resize((w, h), Image.BICUBIC)
            return ids, style

        ids, style = await asyncio.to_thread(decode)
        for source, target in pairs:
            ids = np.where(ids == source, target, ids)

        def job(cancelled: threading.Event):
            start = time.perf_counter()
            try:
                result = pipeline.run(ids, seed=parsed.seed, style_image=style)  # resizes the map to the model's size
            except SpadekitError as error:
                raise APIError(422, str(error)) from None
            return png_bytes(result.images[0], compress_level=1), "; ".join(result.notes), time.perf_counter() - start

        queued = time.perf_counter()
        png, note, seconds = await run_job(request, job)
        headers = {
            "X-Seed": str(parsed.seed),
            "X-Inference-Ms": f"{seconds * 1000:.1f}",
            "X-Total-Ms": f"{(time.perf_counter() - received) * 1000:.1f}",
            "X-Queue-Ms": f"{max(0.0, time.perf_counter() - queued - seconds) * 1000:.1f}",
            "Cache-Control": "no-store",
        }
        if note:
            headers["X-Spadekit-Note"] = header_text(note)
        return Response(png, media_type="image/png", headers=headers)

    add_canvas_routes(app, pipeline, limits, read_body=read_body, run_job=run_job, busy=busy, decode_slots=decode_slots)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(static_dir / "docs.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    return app
