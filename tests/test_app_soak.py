"""A soak of the real server: `spadekit serve` in its own process with a tiny model, 8 clients on mixed endpoints
(generate, with a style image, style gallery uploads, rendering in a gallery style, class replace, label-map
check, info) for SPADEKIT_SOAK_SECONDS (60 by default; `make soak` runs 600). No server error and no refusal while the 8 fit in the pool, resident memory
after the warm-up growing under 10%, the queue never past its bound, and beyond it 503 with Retry-After.

Prints one JSON report (requests, statuses, p50/p95/p99 in all and per endpoint, RSS); with SPADEKIT_SOAK_REPORT
set it is also written to that file.
"""
from __future__ import annotations

import io
import json
import os
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from app_doubles import resident_bytes, run_mixed_load, scene_png, serve_in_subprocess, tiny_landscape_model
from spadekit.inference import load_label_map
from spadekit.labels import landscape_labels

WORKERS, QUEUE, CLIENTS = 2, 8, 8


def _operations(labels, preset: str) -> dict:
    """name -> (weight, send): the requests the painting page makes, each valid (so every answer must be 200).
    preset: a gallery style's id."""
    scene = scene_png(labels, (64, 64))
    ids = load_label_map(Image.open(io.BytesIO(scene)), labels)
    rng = np.random.default_rng(0)
    styles = []
    for tint in ((220, 120, 60), (60, 90, 200), (90, 160, 80)):
        photo = np.clip(rng.normal(tint, 30, (96, 128, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="JPEG", quality=90)
        styles.append(buffer.getvalue())
    label_map = {"label_map": ("scene.png", scene, "image/png")}

    def generate(session, n):
        return session.post("/api/generate", files=label_map, data={"seed": str(n)})

    def generate_with_style(session, n):
        style = ("style.jpg", styles[n % len(styles)], "image/jpeg")
        return session.post("/api/generate", files={**label_map, "style_image": style}, data={"seed": str(n)})

    def upload_style(session, n):  # kept in the server's memory: the gallery drops the oldest beyond its bound
        return session.post("/api/styles", files={"image": (f"photo {n}.jpg", styles[n % len(styles)], "image/jpeg")})

    def render_in_preset(session, n):
        return session.post("/api/render", files=label_map, data={"seed": str(n), "size": "wide", "style": preset})

    def replace_class(session, n):
        return session.post("/api/generate", json={"labels": ids.tolist(), "seed": n, "replace": ["grass=snow"]})

    def check_label_map(session, n):
        return session.post("/api/label-map", files=label_map)

    def info(session, n):
        return session.get("/api/info")

    return {"generate": (3, generate), "generate + style image": (2, generate_with_style), "style upload": (1, upload_style),
            "render in a preset style": (1, render_in_preset), "class replace": (2, replace_class),
            "label-map": (1, check_label_map), "info": (1, info)}


class Sampler(threading.Thread):
    """Every `every` seconds: the server's resident memory and its pool state from /api/health."""

    def __init__(self, url: str, pid: int, every: float = 1.0):
        super().__init__(daemon=True)
        self.url, self.pid, self.every = url, pid, every
        self.samples: list[tuple[float, int, dict]] = []
        self.stop = threading.Event()

    def run(self):
        with httpx.Client(base_url=self.url, timeout=30) as session:
            while not self.stop.wait(self.every):
                pool = session.get("/api/health").json()["pool"]
                self.samples.append((time.monotonic(), resident_bytes(self.pid), pool))


def _burst(url: str, body: bytes, count: int) -> list[httpx.Response]:
    """`count` connected clients send one generate request each at the same moment."""
    sessions = [httpx.Client(base_url=url, timeout=120) for _ in range(count)]
    for session in sessions:
        session.get("/api/health")  # connect first, so the requests arrive together
    start = threading.Barrier(count)
    answers: list[httpx.Response] = []

    def send(session):
        start.wait()
        answers.append(session.post("/api/generate", files={"label_map": ("m.png", body, "image/png")}))

    threads = [threading.Thread(target=send, args=(session,)) for session in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for session in sessions:
        session.close()
    return answers


@pytest.mark.slow
def test_soak_of_the_real_server(tmp_path):
    seconds = float(os.environ.get("SPADEKIT_SOAK_SECONDS", "60"))
    warmup = min(60.0, max(5.0, 0.2 * seconds))
    labels = landscape_labels()
    tiny_landscape_model(size=64).save_pretrained(tmp_path / "model")
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    started = time.monotonic()
    with serve_in_subprocess(tmp_path / "model", workdir, tmp_path / "server.log", workers=WORKERS, queue=QUEUE) as (url, server):
        startup = time.monotonic() - started
        presets = [style["id"] for style in httpx.get(f"{url}/api/styles").json()["styles"] if style["kind"] == "preset"]
        operations = _operations(labels, presets[0])
        sampler = Sampler(url, server.pid)
        sampler.start()
        # Warm up (allocator, caches), then soak: RSS is measured from the end of the warm-up
        warm = run_mixed_load(url, operations, CLIENTS, warmup, seed=1)
        rss_before, soak_start = resident_bytes(server.pid), time.monotonic()
        soak = run_mixed_load(url, operations, CLIENTS, seconds - warmup, seed=2)
        rss_after, soak_end = resident_bytes(server.pid), time.monotonic()
        measured = [rss for t, rss, _ in sampler.samples if soak_start <= t <= soak_end]

        # Beyond the bound: more requests at once than workers + queue
        scene = scene_png(labels, (64, 64))
        overload, overload_started = [], time.monotonic()
        for _ in range(5):
            overload += _burst(url, scene, 3 * (WORKERS + QUEUE))
            if any(r.status_code == 503 for r in overload):
                break
        overload_seconds = time.monotonic() - overload_started
        time.sleep(1.5)  # a last health sample after the burst drained
        sampler.stop.set()
        sampler.join(30)
        after = httpx.post(f"{url}/api/generate", files={"label_map": ("m.png", scene, "image/png")}, timeout=60)
        log = (tmp_path / "server.log").read_text()

    pools = [pool for _, _, pool in sampler.samples]
    report = {
        "seconds": seconds, "warmup_s": warmup, "clients": CLIENTS, "workers": WORKERS, "queue": QUEUE,
        "startup_s": round(startup, 1), "overload_s": round(overload_seconds, 1),
        "soak": soak, "warmup_requests": warm["requests"],
        "rss_mb_before": round(rss_before / 2**20, 1), "rss_mb_after": round(rss_after / 2**20, 1),
        "rss_mb_peak_after_warmup": round(max(measured, default=rss_after) / 2**20, 1),
        # at each quarter of the soak after the warm-up: growth that levels off is the allocator, a steady climb a leak
        "rss_mb_quarters": [round(measured[min(len(measured) - 1, len(measured) * q // 4)] / 2**20, 1) for q in (1, 2, 3, 4)]
        if measured else [],
        "rss_growth_pct": round(100 * (rss_after - rss_before) / rss_before, 2),
        "max_waiting": max(pool["waiting"] for pool in pools), "max_running": max(pool["running"] for pool in pools),
        "overload": {str(code): sum(r.status_code == code for r in overload) for code in sorted({r.status_code for r in overload})},
    }
    print(json.dumps(report, indent=1))
    if os.environ.get("SPADEKIT_SOAK_REPORT"):
        with open(os.environ["SPADEKIT_SOAK_REPORT"], "w") as out:
            json.dump(report, out, indent=1)

    # every request was valid and 8 clients fit in the pool: all 200, no client error
    for phase in (warm, soak):
        assert set(phase["status"]) == {"200"} and phase["client_errors"] == 0, phase
    assert all(op["requests"] > 0 for op in soak["operations"].values()), soak
    assert soak["requests"] >= 5 * CLIENTS, soak
    assert rss_after < 1.10 * rss_before, report
    # the queue stays bounded, and beyond the bound the answer is 503 with Retry-After
    assert report["max_waiting"] <= QUEUE and report["max_running"] <= WORKERS, report
    assert set(report["overload"]) <= {"200", "503"} and "503" in report["overload"] and "200" in report["overload"], report
    for busy in (r for r in overload if r.status_code == 503):
        assert int(busy.headers["retry-after"]) >= 1 and "busy" in busy.json()["detail"]
    assert pools[-1]["waiting"] == 0 and pools[-1]["running"] == 0, pools[-1]
    assert after.status_code == 200
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert list(workdir.iterdir()) == [], "the server wrote into its working folder"
