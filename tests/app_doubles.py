"""Test doubles and load generators for the painting app: a tiny landscape model, a pipeline that can hold
requests in flight, a server in a thread, a starter scene as PNG bytes and a load generator.

Used by the app tests and, through the repository's tests/ folder, by benchmarks/app_latency.py and
tools/app_screenshot.py; not part of the installed package.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time

# Debian's headless Chromium as the browser test and the screenshot tool start it (Playwright drives it).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

def tiny_landscape_pipeline(size: int = 64, ngf: int = 4, seed: int = 0):
    """A randomly initialised, very small model over the landscape labels (fast on a CPU)."""
    import torch

    from spadekit.config import ModelConfig
    from spadekit.inference import Pipeline
    from spadekit.labels import landscape_labels
    from spadekit.models import SPADEModel

    torch.manual_seed(seed)
    labels = landscape_labels()
    config = ModelConfig(labels=labels.to_dict(), ngf=ngf, spade_hidden=8, use_vae=True, z_dim=16, norm="instance",
                         crop_size=size, encoder_ndf=4, encoder_size=64, encoder_layers=4)
    return Pipeline(SPADEModel(config, with_discriminator=False))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int | None = None, timeout: float = 20.0):
    """Run `app` with uvicorn in a daemon thread on host:port (a free port by default); yields the base URL."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="spadekit-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def scene_png(labels, size: tuple[int, int], name: str | None = None) -> bytes:
    """A starter scene (the first that fits `labels`, or `name`) as a colour PNG, else a drawn two-label map of `size`."""
    import io

    import numpy as np
    from PIL import Image

    from spadekit import SpadekitError
    from spadekit.app.server import SCENES_DIR
    from spadekit.inference import load_label_map

    paths = sorted(SCENES_DIR.glob("*.png")) if SCENES_DIR.is_dir() else []
    for path in paths:
        if name in (None, path.stem):
            try:
                ids = load_label_map(path, labels)
                break
            except SpadekitError:  # a scene for other labels
                continue
    else:
        h, w = size
        ids = np.full((h, w), labels.ids[0], np.int64)
        ids[h // 2:] = labels.ids[min(1, len(labels.ids) - 1)]
    buffer = io.BytesIO()
    Image.fromarray(labels.colorize(ids)).save(buffer, format="PNG")
    return buffer.getvalue()


def run_load(url: str, label_png: bytes, clients: int, duration: float, timeout: float = 120.0) -> dict:
    """`clients` threads POST /api/generate back to back (new seed each time) for `duration` seconds.

    Returns request counts by status, latency percentiles of the successful ones (ms) and throughput.
    Only for servers on this machine (loopback addresses).
    """
    import collections

    import httpx
    import numpy as np

    host = httpx.URL(url).host
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise ValueError(f"load tests only target this machine (loopback), not {host}")
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def client(index: int) -> None:
        seed = index * 1_000_000
        with httpx.Client(base_url=url, timeout=timeout) as session:
            while time.monotonic() < stop_at:
                seed += 1
                start = time.perf_counter()
                try:
                    response = session.post("/api/generate", files={"label_map": ("map.png", label_png, "image/png")}, data={"seed": str(seed)})
                except httpx.HTTPError as error:
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        latencies.append(elapsed)
                if response.status_code == 503:
                    time.sleep(min(float(response.headers.get("retry-after", "1")), max(0.0, stop_at - time.monotonic())))

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + timeout + 10)
    wall = time.monotonic() - started
    values = np.array(latencies) if latencies else np.array([np.nan])
    return {
        "clients": clients,
        "duration_s": round(wall, 2),
        "requests": int(sum(statuses.values())),
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "client_errors": len(errors),
        "first_client_error": errors[0] if errors else None,
        "throughput_rps": round(len(latencies) / wall, 3),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "max_ms": round(float(values.max()), 1),
    }


class HookedPipeline:
    """A pipeline wrapper for server tests: counts generate calls and runs `before_call()` first
    (a delay, or waiting on a gate), so tests can hold requests in flight."""

    def __init__(self, pipe, before_call=None):
        self.pipe, self.before_call = pipe, before_call
        self.labels, self.size = pipe.labels, pipe.size
        self.calls = 0

    def info(self):
        return self.pipe.info()

    def load_label_map(self, source):
        return self.pipe.load_label_map(source)

    def run(self, *args, **kwargs):
        self.calls += 1
        if self.before_call is not None:
            self.before_call()
        return self.pipe.run(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.run(*args, **kwargs).images
