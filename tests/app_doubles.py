"""Test doubles and load generators for the painting app: a tiny landscape model, a pipeline that can hold
requests in flight, a server in a thread or in its own process, a starter scene as PNG bytes, load
generators (one endpoint, or a weighted mix) and a process's resident memory.

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

def tiny_landscape_model(size: int = 64, ngf: int = 4, seed: int = 0):
    """A randomly initialised, very small SPADE model (with image encoder) over the landscape labels."""
    import torch

    from spadekit.config import ModelConfig
    from spadekit.labels import landscape_labels
    from spadekit.models import SPADEModel

    torch.manual_seed(seed)
    labels = landscape_labels()
    config = ModelConfig(labels=labels.to_dict(), ngf=ngf, spade_hidden=8, use_vae=True, z_dim=16, norm="instance",
                         crop_size=size, encoder_ndf=4, encoder_size=64, encoder_layers=4)
    return SPADEModel(config, with_discriminator=False)


def tiny_landscape_pipeline(size: int = 64, ngf: int = 4, seed: int = 0):
    """A Pipeline over `tiny_landscape_model` (fast on a CPU)."""
    from spadekit.inference import Pipeline

    return Pipeline(tiny_landscape_model(size, ngf, seed))


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


def _percentiles(latencies: list[float]) -> dict:
    import numpy as np

    values = np.array(latencies) if latencies else np.array([np.nan])
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)} | {"max_ms": round(float(values.max()), 1)}


def run_mixed_load(url: str, operations: dict, clients: int, duration: float, timeout: float = 120.0, seed: int = 0) -> dict:
    """`clients` threads send requests back to back for `duration` seconds, each picking its next request
    from `operations` ({name: (weight, send)}, send(session, request_number) -> httpx.Response) at random.

    A 503 makes that client wait its Retry-After. Returns counts by status and latency percentiles (ms) of the
    successful requests, in all and per operation, and throughput. Only for servers on this machine (loopback).
    """
    import collections

    import httpx
    import numpy as np

    host = httpx.URL(url).host
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise ValueError(f"load tests only target this machine (loopback), not {host}")
    names = list(operations)
    weights = np.array([operations[name][0] for name in names], dtype=float)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    statuses: dict[str, collections.Counter] = {name: collections.Counter() for name in names}
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def client(index: int) -> None:
        rng = np.random.default_rng([seed, index])
        number = index * 1_000_000
        with httpx.Client(base_url=url, timeout=timeout) as session:
            while time.monotonic() < stop_at:
                number += 1
                name = names[rng.choice(len(names), p=weights / weights.sum())]
                start = time.perf_counter()
                try:
                    response = operations[name][1](session, number)
                except httpx.HTTPError as error:
                    with lock:
                        errors.append(f"{name}: {type(error).__name__}: {error}")
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    statuses[name][response.status_code] += 1
                    if response.status_code == 200:
                        latencies[name].append(elapsed)
                if response.status_code == 503:
                    time.sleep(min(float(response.headers.get("retry-after", "1")), max(0.0, stop_at - time.monotonic())))

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + timeout + 10)
    wall = time.monotonic() - started
    status = sum(statuses.values(), collections.Counter())
    every = [ms for name in names for ms in latencies[name]]
    return {
        "clients": clients,
        "duration_s": round(wall, 2),
        "requests": int(sum(status.values())),
        "status": {str(k): v for k, v in sorted(status.items())},
        "client_errors": len(errors),
        "first_client_error": errors[0] if errors else None,
        "throughput_rps": round(len(every) / wall, 3),
        **_percentiles(every),
        "operations": {name: {"requests": int(sum(statuses[name].values())),
                              "status": {str(k): v for k, v in sorted(statuses[name].items())}, **_percentiles(latencies[name])}
                       for name in names},
    }


def run_load(url: str, label_png: bytes, clients: int, duration: float, timeout: float = 120.0) -> dict:
    """`clients` threads POST /api/generate back to back (new seed each time) for `duration` seconds.

    Returns request counts by status, latency percentiles of the successful ones (ms) and throughput.
    Only for servers on this machine (loopback addresses).
    """
    def generate(session, number):
        return session.post("/api/generate", files={"label_map": ("map.png", label_png, "image/png")}, data={"seed": str(number)})

    result = run_mixed_load(url, {"generate": (1, generate)}, clients, duration, timeout)
    del result["operations"]
    return result


@contextlib.contextmanager
def serve_in_subprocess(model_dir, cwd, log_path, workers: int = 2, queue: int = 8, timeout: float = 120.0, extra: tuple = ()):
    """`spadekit serve --model model_dir` in its own process (working folder `cwd`, one torch thread, its output
    in the file `log_path`) on a free loopback port; yields (base URL, process) once /api/info answers, and
    stops the server afterwards."""
    import os
    import subprocess
    import sys

    import httpx

    port = free_port()
    command = [sys.executable, "-m", "spadekit.cli", "serve", "--model", str(model_dir), "--port", str(port), "--workers",
               str(workers), "--queue", str(queue), "--threads", "1", "--dtype", "float32", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = open(log_path, "w")  # a file, not a pipe: a pipe nobody reads would block a chatty server
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"spadekit serve exited with {server.returncode}: {open(log_path).read()[-2000:]}")
            try:
                httpx.get(f"{url}/api/info", timeout=5).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"spadekit serve did not answer on {url} within {timeout:.0f} s") from None
                time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()


def resident_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS from /proc, Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


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
