"""Hostile requests against the app, each caused for real: decompression bombs, 100 MB bodies (declared and
streamed), truncated multipart, label maps of every image mode and of degenerate sizes, names with '../', bytes
that are no image. Each gets a 4xx with one clear JSON message; the server writes nothing to disk and opens
no path a request named. Also: who can reach the server (the bind address and its warning)."""
from __future__ import annotations

import contextlib
import io
import os
import select
import socket
import struct
import sys
import time
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app_doubles import serve_in_thread, tiny_landscape_pipeline
from spadekit.app.parsing import header_text
from spadekit.app.server import Limits, create_app

SKY, GRASS, SEA = 156, 123, 154
LIMITS = Limits(max_upload_bytes=1_000_000, max_pixels=256 * 256)
EVIL = "../../../../tmp/spadekit-evil"


# ---- watching the disk --------------------------------------------------------------------------
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate",
            "tempfile.mkstemp", "tempfile.mkdtemp", "shutil.rmtree", "shutil.copyfile", "shutil.move"}
_watch: dict = {"on": False, "opened": [], "written": []}


def _audit(event: str, args: tuple) -> None:
    if not _watch["on"]:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):
            return
        _watch["opened"].append(str(path))
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS):
            _watch["written"].append(f"open {path} {mode or flags}")
    elif event in _CHANGES:
        _watch["written"].append(f"{event} {args}")


sys.addaudithook(_audit)  # process-wide and permanent, so it only records while a test watches


@contextlib.contextmanager
def watching_disk():
    """Record every file the process opens or changes (all threads, the server's included) inside the block."""
    _watch.update(opened=[], written=[])
    _watch["on"] = True
    try:
        yield _watch
    finally:
        _watch["on"] = False


def assert_disk_untouched(watch, *names: str) -> None:
    assert not watch["written"], f"the server wrote to the disk: {watch['written'][:5]}"
    reached = [path for path in watch["opened"] for name in names if name in path]
    assert not reached, f"a name from a request became a path: {reached[:5]}"


# ---- fixtures and builders ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    return tiny_landscape_pipeline(size=64)


@pytest.fixture(scope="module")
def client(pipe):
    with TestClient(create_app(pipe, max_workers=1, max_queue=8, limits=LIMITS)) as c:
        yield c


def _ids(h=64, w=64) -> np.ndarray:
    ids = np.full((h, w), SKY, np.int64)
    ids[h // 2:] = GRASS
    ids[h // 3: h // 2, : w // 2] = SEA
    return ids


def _save(image: Image.Image, format="PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _raw_png(width: int, height: int, pixels: bytes = b"") -> bytes:
    """A greyscale PNG whose header says width x height, with `pixels` (zlib-compressed) as its data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(pixels, 9)) + _chunk(b"IEND", b"")


def _post_map(client, data: bytes, route="/api/generate", filename="map.png"):
    return client.post(route, files={"label_map": (filename, data, "image/png")})


def _detail(response) -> str:
    assert response.headers.get("content-type") == "application/json", (response.status_code, response.text[:200])
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


def _expect(response, status: int, *words: str) -> str:
    detail = _detail(response) if response.status_code != 200 else ""
    assert response.status_code == status, (response.status_code, detail or response.headers)
    for word in words:
        assert word in detail, (word, detail)
    return detail


def _image(response) -> np.ndarray:
    assert response.status_code == 200, response.text[:300]
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


# ---- label maps of every mode and size ----------------------------------------------------------
def _palette_image(indices: np.ndarray, palette: list[tuple[int, int, int]]) -> Image.Image:
    image = Image.frombytes("P", indices.shape[::-1], indices.astype(np.uint8).tobytes())
    image.putpalette([c for colour in palette for c in colour])
    return image


def _mode_cases(pipe) -> dict:
    """name -> (encoded label map, the mode Pillow reads it as, the ids it carries or None, status, words)."""
    ids = _ids()
    colours = pipe.labels.colorize(ids)
    grey = Image.fromarray(ids.astype(np.uint8))
    opaque = np.full(ids.shape, 255, np.uint8)
    holed = opaque.copy()
    holed[3, 3] = 0
    used = [SKY, GRASS, SEA]
    as_index = np.select([ids == u for u in used], range(len(used)))
    palette = [tuple(pipe.labels.colorize(np.array([[u]]))[0, 0]) for u in used]
    by_colour = _palette_image(as_index, palette)
    spare_entry = _palette_image(as_index, palette + [(0, 0, 0)])  # index 3: in the palette, on no pixel
    by_id = _palette_image(ids, [(i, i, i) for i in range(256)])
    out_of_range = Image.fromarray((ids + 1000).astype(np.uint16))
    return {
        "1 (black and white)": (_save(Image.fromarray(ids == SKY)), "1", None, 422, ("1-bit",)),
        "L ids": (_save(grey), "L", ids, 200, ()),
        "LA ids, opaque": (_save(Image.merge("LA", [grey, Image.fromarray(opaque)])), "LA", ids, 200, ()),
        "LA with a transparent pixel": (_save(Image.merge("LA", [grey, Image.fromarray(holed)])), "LA", None, 422, ("1 transparent",)),
        "P indices are ids": (_save(by_id), "P", ids, 200, ()),
        "P indices into the label colours": (_save(by_colour), "P", ids, 200, ()),
        "P with a transparent index": (_save(by_colour, transparency=1), "P", None, 422, ("transparent",)),
        "P with a transparent index no pixel uses": (_save(spare_entry, transparency=3), "P", ids, 200, ()),
        "RGB colours": (_save(Image.fromarray(colours)), "RGB", ids, 200, ()),
        "RGBA colours, opaque": (_save(Image.fromarray(np.dstack([colours, opaque]))), "RGBA", ids, 200, ()),
        "RGBA with a transparent pixel": (_save(Image.fromarray(np.dstack([colours, holed]))), "RGBA", None, 422, ("transparent",)),
        "I;16 ids": (_save(Image.fromarray(ids.astype(np.uint16))), "I;16", ids, 200, ()),
        "I;16 ids out of the label set": (_save(out_of_range), "I;16", None, 422, ("[1123, 1154, 1156]",)),
        # Pillow reads 16-bit PNGs as I;16 and writes no 32-bit PNG: mode I arrives as a TIFF
        "I ids (TIFF)": (_save(Image.fromarray(ids.astype(np.int32)), "TIFF"), "I", ids, 200, ()),
        "I negative ids (TIFF)": (_save(Image.fromarray(-ids.astype(np.int32)), "TIFF"), "I", None, 422, ("0..65535",)),
        "CMYK (TIFF)": (_save(Image.fromarray(colours).convert("CMYK"), "TIFF"), "CMYK", None, 422, ("mode CMYK", "RGB PNG")),
        "F floats (TIFF)": (_save(Image.fromarray(ids.astype(np.float32)), "TIFF"), "F", None, 422, ("mode F",)),
    }


def test_label_maps_of_every_mode(client, pipe):
    assert not {(0, 0, 0), (255, 255, 255)} & {tuple(label.color) for label in pipe.labels.labels}, \
        "the 1-bit case assumes black and white are not label colours"
    expected = np.asarray(pipe(_ids())[0])
    failures = []
    with watching_disk() as watch:
        for name, (data, mode, ids, status, words) in _mode_cases(pipe).items():
            assert Image.open(io.BytesIO(data)).mode == mode, f"{name}: the case does not test mode {mode}"
            for route in ("/api/generate", "/api/label-map"):
                response = _post_map(client, data, route)
                detail = response.json()["detail"] if response.headers.get("content-type") == "application/json" else ""
                if response.status_code != status or not all(w in detail for w in words):
                    failures.append(f"{name} {route}: {response.status_code} {detail!r}, wanted {status} with {words}")
                elif status == 200 and route == "/api/generate" and not np.array_equal(_image(response), expected):
                    failures.append(f"{name}: the image differs from the pipeline's own for these ids")
                elif status == 200 and route == "/api/label-map" and not np.array_equal(_image(response), pipe.labels.colorize(ids)):
                    failures.append(f"{name}: the label map came back with other labels")
    assert not failures, "\n".join(failures)
    assert_disk_untouched(watch)


def test_label_maps_of_degenerate_sizes(client):
    with watching_disk() as watch:
        for width, height in ((0, 0), (0, 5), (5, 0)):
            _expect(_post_map(client, _raw_png(width, height)), 422, f"{width}x{height} pixels", "at least 1x1")
        one = _post_map(client, _save(Image.fromarray(np.full((1, 1), SKY, np.uint8))))
        assert (_image(one) == _image(client.post("/api/generate", json={"labels": np.full((64, 64), SKY).tolist()}))).all()
        assert "resized from 1x1 to 64x64" in one.headers["x-spadekit-note"]
        strip = np.full((1, 65535), SKY, np.uint8)
        strip[:, 32768:] = GRASS
        wide = _post_map(client, _save(Image.fromarray(strip)))  # 65535 pixels: within the 65536-pixel limit
        assert _image(wide).shape == (64, 64, 3) and "resized from 65535x1" in wide.headers["x-spadekit-note"]
        _expect(_post_map(client, _save(Image.fromarray(np.full((2, 65535), SKY, np.uint8)))), 413, "65535x2", "over the limit of 65536")
        _expect(_post_map(client, _raw_png(65535, 65535)), 413, "65535x65535")
        for empty in ([], [[]], [[], []]):
            _expect(client.post("/api/generate", json={"labels": empty}), 422, "labels")
    assert_disk_untouched(watch)


# ---- bombs and bytes that are no image ------------------------------------------------------------
def test_decompression_bombs_are_refused_before_decoding(client):
    grey = _save(Image.fromarray(_ids().astype(np.uint8)))
    text_bomb = grey[:33] + _chunk(b"zTXt", b"note\0\0" + zlib.compress(b"\0" * 40_000_000, 9)) + grey[33:]
    profile_bomb = grey[:33] + _chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * 40_000_000, 9)) + grey[33:]
    real_pixels = _raw_png(4096, 4096, b"\0" * (4096 * 4097))  # 16 M real pixels in ~20 kB
    assert max(len(text_bomb), len(profile_bomb), len(real_pixels)) < LIMITS.max_upload_bytes
    gif = b"GIF89a" + struct.pack("<HH", 65000, 65000) + b"\x00\x00\x00" + b",\0\0\0\0" + struct.pack("<HH", 65000, 65000) + b"\0\x02\x02\x4c\x01\0;"
    bmp_header = struct.pack("<IHHIIiiHHIIiiII", 0, 0, 0, 54, 40, 100_000, 100_000, 1, 8, 0, 0, 0, 0, 0, 0)
    bmp = b"BM" + bmp_header + bytes(1024)
    with watching_disk() as watch:
        started = time.perf_counter()
        _expect(_post_map(client, _raw_png(100_000, 100_000, b"\0" * 10_000)), 413, "100000x100000")  # 10 G pixels: never decoded
        _expect(_post_map(client, bmp), 413, "decompression bomb", "10000000000 pixels", "limit of 65536")
        _expect(_post_map(client, real_pixels), 413, "4096x4096", "over the limit")
        _expect(_post_map(client, gif), 413, "decompression bomb", "4225000000 pixels")
        _expect(_post_map(client, text_bomb), 422, "too large")
        _expect(_post_map(client, profile_bomb), 422, "too large")
        style = {"label_map": ("m.png", grey, "image/png"), "style_image": ("s.png", real_pixels, "image/png")}
        _expect(client.post("/api/generate", files=style), 413, "style_image", "4096x4096")
        assert time.perf_counter() - started < 30  # decoding any of them would take minutes or fail
    assert_disk_untouched(watch)


def test_bytes_that_are_no_image(client):
    png = _save(Image.fromarray(_ids().astype(np.uint8)))
    broken_crc = png[:29] + bytes([png[29] ^ 0xFF]) + png[30:]
    not_images = {
        "text": b"hello world " * 20,
        "html": b"<html><script>alert(1)</script></html>",
        "pdf": b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n",
        "zip": b"PK\x03\x04" + bytes(40),
        "random": np.random.default_rng(0).bytes(5000),
        "PNG signature only": png[:8],
        "PNG cut in its header": png[:20],
        "PNG cut in its data": png[: len(png) - 20],
        "PNG with a broken checksum": broken_crc,
        "JPEG header only": b"\xff\xd8\xff\xe0" + bytes(20),
    }
    with watching_disk() as watch:
        for name, data in not_images.items():
            for route in ("/api/generate", "/api/label-map"):
                response = _post_map(client, data, route)
                assert response.status_code == 422, (name, route, response.status_code, response.text[:200])
                assert _detail(response).startswith("label_map"), (name, response.text[:200])
            styled = client.post("/api/generate", files={"label_map": ("m.png", png, "image/png"), "style_image": ("s.png", data, "image/png")})
            assert styled.status_code == 422 and _detail(styled).startswith("style_image"), (name, styled.text[:200])
        _expect(client.post("/api/generate", content=b"[" * 100_000, headers={"content-type": "application/json"}), 400, "malformed JSON")
        _expect(client.post("/api/generate", content=b"\xff\xfe{}", headers={"content-type": "application/json"}), 400, "malformed JSON")
    assert_disk_untouched(watch)


# ---- truncated multipart -------------------------------------------------------------------------
def test_truncated_multipart_is_a_400_saying_so(client):
    png = _save(Image.fromarray(_ids().astype(np.uint8)))
    body = (b"--XYZ\r\nContent-Disposition: form-data; name=\"seed\"\r\n\r\n3\r\n"
            b"--XYZ\r\nContent-Disposition: form-data; name=\"label_map\"; filename=\"m.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--XYZ--\r\n")
    headers = {"content-type": "multipart/form-data; boundary=XYZ"}
    whole = client.post("/api/generate", content=body, headers=headers)
    assert whole.status_code == 200 and whole.headers["x-seed"] == "3"
    with watching_disk() as watch:
        for cut in (len(body) - 5, len(body) - 40, body.index(b"image/png") + 3, 60, 10):
            for route in ("/api/generate", "/api/label-map"):
                _expect(client.post(route, content=body[:cut], headers=headers), 400, "closing boundary '--XYZ--'", "truncated")
        garbage = b"--XYZ\r\nno colon here\r\n\r\n" + png[:50]
        assert client.post("/api/generate", content=garbage, headers=headers).status_code == 400
    assert_disk_untouched(watch)


# ---- 100 MB bodies --------------------------------------------------------------------------------
class CountingApp:
    """The app with a count of the body bytes it was handed (what the server read of each request)."""

    def __init__(self, app):
        self.app, self.received = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def _send_big_body(port: int, path: str, total: int, declare_length: bool, timeout: float = 30.0) -> tuple[int, dict, bytes, int]:
    """POST `total` bytes to path, reading the answer as soon as one comes: (status, headers, body, bytes sent)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=B\r\n"
    head += f"Content-Length: {total}\r\n\r\n" if declare_length else "Transfer-Encoding: chunked\r\n\r\n"
    piece = b"x" * 65536
    frame = piece if declare_length else b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent, answer, pending, refused = 0, b"", b"", False
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [] if declare_length or refused else [sock], [], 0.5)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:  # the answer, if any, was read before the reset
                    break
                answer += data
                if not data or _complete(answer):
                    break
                continue
            if writable and sent < total:  # a declared length: send nothing, the header alone must be refused
                if not pending:
                    pending, sent = frame, sent + len(piece)
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    # the server answered and closed while we were still sending, as a refusing server may:
                    # the kernel keeps the answer it already received, so stop sending and read it
                    refused = True
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in header_block.split(b"\r\n") if b": " in line)
    return int(status_line.split()[1]), headers, body, sent


def _complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    length = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return bool(length) and len(body) >= int(length[0])


def test_100_mb_bodies_are_refused_early(pipe):
    import json

    app = CountingApp(create_app(pipe, max_workers=1, max_queue=2, limits=LIMITS, scenes_dir=None))
    total = 100 * 1024 * 1024
    with serve_in_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        schema = json.loads(__import__("httpx").get(f"{url}/openapi.json").text)
        routes = [path for path, operations in schema["paths"].items() if "post" in operations and "{" not in path]
        assert {"/api/generate", "/api/label-map"} <= set(routes)
        with watching_disk() as watch:
            for path in routes:
                app.received = 0
                status, headers, body, sent = _send_big_body(port, path, total, declare_length=True)
                assert status == 413 and sent == 0 and app.received == 0, (path, status, body[:200])
                assert f"{total} bytes, over the upload limit of {LIMITS.max_upload_bytes}" in json.loads(body)["detail"]
                status, headers, body, sent = _send_big_body(port, path, total, declare_length=False)
                assert status == 413 and headers["content-type"] == "application/json", (path, status, body[:200])
                assert "over the upload limit" in json.loads(body)["detail"]
                # refused while streaming: the app read at most a chunk past the limit, the client sent a fraction
                assert app.received <= LIMITS.max_upload_bytes + 1024 * 1024, (path, app.received)
                assert sent < total // 4, (path, sent)
        assert_disk_untouched(watch)
        assert __import__("httpx").get(f"{url}/api/health").json()["status"] == "ok"


# ---- names and paths from requests ---------------------------------------------------------------
def test_names_from_requests_never_become_paths(client, pipe):
    png = _save(Image.fromarray(pipe.labels.colorize(_ids())))
    schema = client.get("/openapi.json").json()
    named = [(method, path) for path, operations in schema["paths"].items() for method in operations
             if "{" in path and method in ("get", "delete")]
    uploads = [(path, name) for path, operations in schema["paths"].items() if "post" in operations
               for name, field in operations["post"].get("requestBody", {}).get("content", {})
               .get("multipart/form-data", {}).get("schema", {}).get("properties", {}).items() if field.get("format") == "binary"]
    assert ("get", "/api/scenes/{name}") in named and ("/api/generate", "style_image") in uploads
    names = ["..%2F..%2F..%2Fetc%2Fpasswd", "..", "%2e%2e", "....%2F%2Fspadekit-evil", "..%5C..%5Cspadekit-evil",
             "spadekit-evil%00.png", "%2Ftmp%2Fspadekit-evil", "~root"]
    with watching_disk() as watch:
        for method, path in named:
            for name in names:
                url = path.replace(path[path.index("{"): path.index("}") + 1], name)
                response = client.request(method.upper(), url)
                assert 400 <= response.status_code < 500 and _detail(response), (method, url, response.status_code)
        for path, field in uploads:
            response = client.post(path, files={field: (EVIL + ".png", png, "image/png")})
            assert response.status_code < 500, (path, field, response.status_code, response.text[:200])
        both = {"label_map": (EVIL + "-map.png", png, "image/png"), "style_image": (EVIL + "/../../etc/passwd", png, "image/png")}
        assert client.post("/api/generate", files=both).status_code == 200
        _expect(client.post("/api/generate", files={"../label_map": ("m.png", png, "image/png")}), 422, "unknown form field")
        # style names: a gallery style is looked up by id in the gallery, an upload's name is only a label
        for style in ("../../../etc/passwd", "..", "/tmp/spadekit-evil.png", "upload-../../spadekit-evil"):
            rendered = client.post("/api/render", files={"label_map": ("m.png", png, "image/png")}, data={"style": style})
            _expect(rendered, 404, "no style")
        uploaded = client.post("/api/styles", files={"image": (EVIL + ".png", png, "image/png")}, data={"name": "../../x/" + EVIL})
        assert uploaded.status_code == 200 and "/" not in uploaded.json()["name"], uploaded.text[:200]
        assert client.get(f"/api/styles/{uploaded.json()['id']}/thumbnail").status_code == 200
        for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2Fserver.py", "/static/%2Fetc%2Fpasswd",
                     "/static/..%2F..%2Fspadekit-evil"):
            assert client.get(path).status_code == 404, path  # the real server.py next to static/ is never served
    assert_disk_untouched(watch, "spadekit-evil", "passwd")
    assert not os.path.exists("/tmp/spadekit-evil.png")


def test_header_text_is_one_safe_line():
    assert header_text("resized 16×32\r\nX-Evil: 1") == "resized 16?32??X-Evil: 1"
    assert header_text("a" * 5000) == "a" * 1000


# ---- who can reach the server ---------------------------------------------------------------------
def test_bind_address_is_loopback_unless_told(tmp_path, monkeypatch, capsys):
    import uvicorn

    from helpers import tiny_model_config
    from spadekit.cli import main
    from spadekit.commands.serve import bind_warning
    from spadekit.models import SPADEModel

    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert bind_warning(host) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "8.8.8.8", "fe80::1"):
        assert "other machines can reach" in bind_warning(host) and "no authentication" in bind_warning(host), host

    SPADEModel(tiny_model_config(norm="instance", use_instance=False, with_d=False)).save_pretrained(tmp_path / "m")
    bound = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: bound.append(server.config.host))  # no serving
    for extra, host in (([], "127.0.0.1"), (["--host", "0.0.0.0"], "0.0.0.0")):
        assert main(["serve", "--model", str(tmp_path / "m"), "--port", "0", "--dtype", "float32", *extra]) == 0
        assert bound[-1] == host
        out, err = capsys.readouterr()
        assert ("warning: --host 0.0.0.0 listens on every network interface" in err) == (host == "0.0.0.0"), err
        assert "open http://127.0.0.1:" in out
