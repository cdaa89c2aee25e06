"""The painting app's REST API through the ASGI test client: results, every kind of bad request, the bounded queue."""
from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app_doubles import HookedPipeline, serve_in_thread, tiny_landscape_pipeline
from spadekit.app.pool import InferencePool
from spadekit.app.server import Limits, create_app
from spadekit.imageio import MAX_PIXELS

SKY, GRASS, SNOW, SEA = 156, 123, 158, 154


@pytest.fixture(scope="module")
def pipe():
    return tiny_landscape_pipeline(size=64)


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory, pipe):
    folder = tmp_path_factory.mktemp("scenes")
    Image.fromarray(pipe.labels.colorize(_ids())).save(folder / "hills.png")
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(folder / "alien.png")  # colours of no label: not offered
    (folder / "notes.txt").write_text("not a scene")
    return folder


@pytest.fixture(scope="module")
def client(pipe, scenes_dir):
    app = create_app(pipe, max_workers=1, max_queue=4, limits=Limits(max_upload_bytes=200_000, max_pixels=128 * 128),
                     scenes_dir=scenes_dir)
    with TestClient(app) as c:
        yield c


def _ids(h=64, w=64):
    ids = np.full((h, w), SKY, np.int64)
    ids[h // 2:] = GRASS
    ids[h // 3: h // 2, : w // 2] = SEA
    return ids


def _png(array, mode=None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array).astype(np.uint8), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _colour_png(pipe, ids) -> bytes:
    return _png(pipe.labels.colorize(ids))


def _image(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), dtype=np.float64)


def test_health_info_and_scenes(client, pipe):
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    info = client.get("/api/info").json()
    assert (info["height"], info["width"]) == pipe.size
    assert info["multimodal"] is True and info["style_image"] is True and info["random_model"] is False
    by_name = {label["name"]: label for label in info["labels"]}
    assert by_name["sky"]["id"] == SKY and by_name["sky"]["color"].startswith("#")
    assert info["limits"] == {"max_upload_bytes": 200_000, "max_pixels": 128 * 128}
    scenes = client.get("/api/scenes").json()["scenes"]
    assert [s["name"] for s in scenes] == ["hills"]  # alien colours and the text file are not offered
    scene = client.get(scenes[0]["url"])
    assert scene.headers["content-type"] == "image/png"
    assert np.array_equal(pipe.load_label_map(Image.open(io.BytesIO(scene.content))), _ids())


def test_generate_forms_agree_and_inputs_steer_the_image(client, pipe):
    ids = _ids()
    png = _colour_png(pipe, ids)
    multipart = _image(client.post("/api/generate", files={"label_map": ("m.png", png, "image/png")}, data={"seed": "5"}))
    as_json = _image(client.post("/api/generate", json={"labels": ids.tolist(), "seed": 5}))
    as_b64 = _image(client.post("/api/generate", json={"label_map_png": base64.b64encode(png).decode(), "seed": 5}))
    as_ids_png = _image(client.post("/api/generate", files={"label_map": ("m.png", _png(ids, "L"), "image/png")}, data={"seed": "5"}))
    direct = np.asarray(pipe(ids, seed=5)[0], dtype=np.float64)
    for out in (multipart, as_json, as_b64, as_ids_png):
        assert out.shape == (64, 64, 3)
        assert np.array_equal(out, direct), "every request form must give the pipeline's own image"
    other_seed = _image(client.post("/api/generate", json={"labels": ids.tolist(), "seed": 6}))
    assert np.abs(other_seed - direct).mean() > 0.5
    # grass -> snow, by name in multipart and by pair in JSON, equals painting snow directly
    winter = ids.copy()
    winter[winter == GRASS] = SNOW
    swapped = _image(client.post("/api/generate", files={"label_map": ("m.png", png, "image/png")}, data={"seed": "5", "replace": "grass=snow"}))
    swapped_json = _image(client.post("/api/generate", json={"labels": ids.tolist(), "seed": 5, "replace": [["grass", "snow"]]}))
    painted = _image(client.post("/api/generate", json={"labels": winter.tolist(), "seed": 5}))
    assert np.array_equal(swapped, painted) and np.array_equal(swapped_json, painted)
    assert np.abs(swapped - direct)[ids == GRASS].mean() > 0.5
    # a style image steers the result
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    styled = _image(client.post("/api/generate", files={"label_map": ("m.png", png, "image/png"), "style_image": ("s.png", _png(red), "image/png")}, data={"seed": "5"}))
    assert np.abs(styled - direct).mean() > 0.5
    # another size is resized to the model's, and the response says so
    small = client.post("/api/generate", json={"labels": _ids(16, 32).tolist()})
    assert _image(small).shape == (64, 64, 3) and "resized" in small.headers["x-spadekit-note"]


def test_label_map_endpoint_returns_colours(client, pipe):
    ids = _ids(20, 30)
    response = client.post("/api/label-map", files={"label_map": ("ids.png", _png(ids, "L"), "image/png")})
    assert response.status_code == 200 and response.headers["x-label-map-size"] == "30x20"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")), pipe.labels.colorize(ids))


def _bad_requests(pipe):
    ids = _ids()
    unknown = ids.copy()
    unknown[0, 0] = 42
    off_palette = pipe.labels.colorize(ids)
    off_palette[5, 5] = (1, 2, 3)
    png = _colour_png(pipe, ids)
    jpeg = io.BytesIO()
    Image.fromarray(pipe.labels.colorize(ids)).save(jpeg, format="JPEG")
    big = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)  # noise: a PNG over 200 kB
    return {
        "body over the byte limit": (dict(files={"label_map": ("m.png", _png(big), "image/png")}), 413, "upload limit"),
        "too many pixels": (dict(files={"label_map": ("m.png", _png(np.zeros((200, 100), np.uint8), "L"), "image/png")}), 413, "pixels"),
        "too many JSON pixels": (dict(json={"labels": np.full((130, 130), SKY).tolist()}), 413, "pixels"),
        "unknown ids": (dict(json={"labels": unknown.tolist()}), 422, "[42]"),
        "unknown ids in a PNG": (dict(files={"label_map": ("m.png", _png(unknown, "L"), "image/png")}), 422, "[42]"),
        "colours off the palette": (dict(files={"label_map": ("m.png", _png(off_palette), "image/png")}), 422, "#010203"),
        "not an image": (dict(files={"label_map": ("m.png", b"GIF89a but not really", "image/png")}), 422, "not an image"),
        "JPEG label map": (dict(files={"label_map": ("m.jpg", jpeg.getvalue(), "image/jpeg")}), 422, "lossy"),
        "truncated PNG": (dict(files={"label_map": ("m.png", png[: len(png) // 2], "image/png")}), 422, "truncated"),
        "empty upload": (dict(files={"label_map": ("m.png", b"", "image/png")}), 422, "empty"),
        "style image not an image": (dict(files={"label_map": ("m.png", png, "image/png"), "style_image": ("s.jpg", b"nope", "image/jpeg")}), 422, "style_image"),
        "missing label map": (dict(data={"seed": "1"}, files={"other": ("x", b"x", "text/plain")}), 422, "other"),
        "malformed JSON": (dict(content=b'{"labels": [[156, 156]', headers={"content-type": "application/json"}), 400, "malformed JSON"),
        "JSON not an object": (dict(json=[[156]]), 422, "object"),
        "both label forms": (dict(json={"labels": [[SKY]], "label_map_png": "AAAA"}), 422, "exactly one"),
        "ragged rows": (dict(json={"labels": [[SKY, SKY], [SKY]]}), 422, "same length"),
        "float ids": (dict(json={"labels": [[156.5, 156]]}), 422, "integer"),
        "huge ids": (dict(json={"labels": [[10**30]]}), 422, "integer"),
        "negative ids": (dict(json={"labels": [[-1]]}), 422, "0..65535"),
        "bad base64": (dict(json={"label_map_png": "***"}), 422, "base64"),
        "seed out of range": (dict(json={"labels": [[SKY]], "seed": -1}), 422, "seed"),
        "seed not a number": (dict(files={"label_map": ("m.png", png, "image/png")}, data={"seed": "abc"}), 422, "seed"),
        "unknown label in replace": (dict(json={"labels": [[SKY]], "replace": ["grass=lava"]}), 422, "lava"),
        "replace without '='": (dict(json={"labels": [[SKY]], "replace": ["grass"]}), 422, "SOURCE=TARGET"),
        "unsupported content type": (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "Content-Type"),
        "multipart without boundary": (dict(content=b"x", headers={"content-type": "multipart/form-data"}), 400, "boundary"),
        "unknown JSON field": (dict(json={"labels": [[SKY]], "colour": 1}), 422, "colour"),
    }


def test_each_bad_request_gets_a_clear_4xx(client, pipe):
    failures = []
    for name, (kwargs, status, words) in _bad_requests(pipe).items():
        response = client.post("/api/generate", **kwargs)
        detail = response.json().get("detail") if response.headers.get("content-type") == "application/json" else response.text
        if response.status_code != status or not isinstance(detail, str) or words not in detail:
            failures.append(f"{name}: {response.status_code} {detail!r} (wanted {status} mentioning {words!r})")
    assert not failures, "\n".join(failures)
    # the server is still fine afterwards
    assert client.post("/api/generate", json={"labels": _ids().tolist()}).status_code == 200


def test_no_request_path_reaches_the_disk(client):
    for path in ("/api/scenes/..%2Fhills", "/api/scenes/notes", "/api/scenes/alien", "/static/../server.py", "/static/%2e%2e/server.py"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert "hills" in client.get("/api/scenes/nope").json()["detail"]
    assert client.get("/").status_code == 200 and "label-canvas" in client.get("/").text
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/health", "/api/info", "/api/generate", "/api/scenes", "/api/label-map"} <= set(schema["paths"])


def _gated(pipe) -> HookedPipeline:
    """Every call waits until `.gate` opens."""
    gate = threading.Event()
    wrapped = HookedPipeline(pipe, lambda: None if gate.wait(30) else pytest.fail("test gate never opened"))
    wrapped.gate = gate
    return wrapped


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_full_queue_answers_503_with_retry_after(pipe):
    gated = _gated(pipe)
    app = create_app(gated, max_workers=1, max_queue=1, scenes_dir=None)
    body = {"labels": _ids().tolist()}
    with TestClient(app) as client:
        results = []
        threads = [threading.Thread(target=lambda: results.append(client.post("/api/generate", json=body).status_code)) for _ in range(2)]
        for t in threads:
            t.start()
        pool: InferencePool = app.state.pool
        _wait_for(lambda: pool.state()["running"] == 1 and pool.state()["waiting"] == 1)
        busy = client.post("/api/generate", json=body)
        assert busy.status_code == 503
        assert int(busy.headers["retry-after"]) >= 1
        assert "busy" in busy.json()["detail"]
        gated.gate.set()
        for t in threads:
            t.join(30)
        assert results == [200, 200]
        assert client.post("/api/generate", json=body).status_code == 200  # room again


def test_work_of_a_client_that_went_away_is_dropped(pipe):
    gated = _gated(pipe)
    app = create_app(gated, max_workers=1, max_queue=2, scenes_dir=None)
    body = {"labels": _ids().tolist()}
    with serve_in_thread(app) as url:
        first = threading.Thread(target=lambda: httpx.post(f"{url}/api/generate", json=body, timeout=30))
        first.start()
        pool: InferencePool = app.state.pool
        _wait_for(lambda: pool.state()["running"] == 1)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/api/generate", json=body, timeout=httpx.Timeout(30, read=0.5))  # gives up while queued
        _wait_for(lambda: pool.state()["waiting"] == 1)
        _wait_for(lambda: pool.state()["abandoned"] == 1)  # the server noticed the closed connection (it polls)
        gated.gate.set()
        first.join(30)
        _wait_for(lambda: pool.state()["waiting"] == 0 and pool.state()["running"] == 0)
        assert gated.calls == 1, "the abandoned request must not run the model"
        assert pool.state()["dropped"] == 1 and pool.state()["abandoned"] == 0


def test_serve_command_loads_models_and_refuses_bad_options(tmp_path, pipe, capsys):
    from helpers import tiny_model_config
    from spadekit.cli import main
    from spadekit.commands.serve import load_pipeline
    from spadekit.inference import bundled_model_path
    from spadekit.models import SPADEModel

    SPADEModel(tiny_model_config(norm="instance", use_instance=False, with_d=False)).save_pretrained(tmp_path / "m")
    loaded, is_random = load_pipeline(str(tmp_path / "m"), dtype="float32")
    assert not is_random and loaded.size == (64, 64)
    _, default_random = load_pipeline("default")
    assert default_random == (bundled_model_path("default") is None)
    assert main(["serve", "--model", str(tmp_path / "m"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    # the pixel limit of a request cannot exceed the one limit for every image spadekit opens
    assert main(["serve", "--model", str(tmp_path / "m"), "--port", "0", "--max-pixels", str(MAX_PIXELS + 1)]) == 2
    assert f"--max-pixels: the pixel limit must lie in 1..{MAX_PIXELS}" in capsys.readouterr().err


def _listening_on(port: int) -> list[str]:
    """The local addresses of the sockets listening on `port`, from the kernel's tables (Linux)."""
    import ipaddress

    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in rows.read().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                address, local_port = local.split(":")
                if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # stored as host-order words
                    found.append(str(ipaddress.ip_address(words)))
    return found


def test_serve_command_starts_a_server(tmp_path):
    import subprocess
    import sys

    from app_doubles import free_port
    from helpers import tiny_model_config
    from spadekit.models import SPADEModel

    SPADEModel(tiny_model_config(norm="instance", use_instance=False, with_d=False)).save_pretrained(tmp_path / "m")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "spadekit.cli", "serve", "--model", str(tmp_path / "m"), "--port", str(port),
                               "--dtype", "float32", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                info = httpx.get(f"{url}/api/info", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "spadekit serve did not answer"
                time.sleep(0.2)
        assert info["label_set"] == "tiny" and info["random_model"] is False and (info["height"], info["width"]) == (64, 64)
        assert _listening_on(port) == ["127.0.0.1"], "without --host the server listens on loopback only"
        ids = np.zeros((64, 64), np.int64)
        ids[32:] = 1
        assert httpx.post(f"{url}/api/generate", json={"labels": ids.tolist()}, timeout=30).headers["content-type"] == "image/png"
        # a second server on the same port is refused with a clear message
        taken = subprocess.run([sys.executable, "-m", "spadekit.cli", "serve", "--model", str(tmp_path / "m"), "--port", str(port)],
                               capture_output=True, text=True, timeout=120)
        assert taken.returncode == 2 and "cannot listen" in taken.stderr
    finally:
        server.terminate()
        server.wait(20)
    assert f"http://127.0.0.1:{port}/" in server.stdout.read()


def test_a_model_without_style_input_says_so():
    import torch

    from helpers import tiny_model_config
    from spadekit.inference import Pipeline
    from spadekit.models import SPADEModel

    torch.manual_seed(0)
    plain = Pipeline(SPADEModel(tiny_model_config(norm="instance", use_instance=False, with_d=False, use_vae=False)))
    with TestClient(create_app(plain, scenes_dir=None)) as client:
        info = client.get("/api/info").json()
        assert info["multimodal"] is False and info["style_image"] is False
        assert client.get("/api/scenes").json() == {"scenes": []}
        ids = np.zeros((64, 64), np.int64)
        ids[:, 32:] = 2
        a = _image(client.post("/api/generate", json={"labels": ids.tolist(), "seed": 1}))
        b = _image(client.post("/api/generate", json={"labels": ids.tolist(), "seed": 2}))
        assert np.array_equal(a, b), "without a latent the seed changes nothing"
        styled = client.post("/api/generate", files={"label_map": ("m.png", _png(ids, "L"), "image/png"),
                                                    "style_image": ("s.png", _png(np.zeros((8, 8, 3))), "image/png")})
        assert styled.status_code == 422 and "no image encoder" in styled.json()["detail"]
