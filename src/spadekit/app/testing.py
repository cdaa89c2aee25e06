"""Helpers for tests and benchmarks of the app: a tiny landscape model and a server in a thread."""
from __future__ import annotations

import contextlib
import socket
import threading
import time


def tiny_landscape_pipeline(size: int = 64, ngf: int = 4, seed: int = 0):
    """A randomly initialised, very small model over the landscape labels (fast on a CPU)."""
    import torch

    from spadekit.config import EncoderConfig, GeneratorConfig, SPADEModelConfig
    from spadekit.data.labels import landscape_labels
    from spadekit.inference import Pipeline
    from spadekit.models import SPADEModel

    torch.manual_seed(seed)
    labels = landscape_labels()
    config = SPADEModelConfig(
        labels=labels.to_dict(), use_instance=False,
        generator=GeneratorConfig(semantic_channels=labels.num_channels, ngf=ngf, spade_hidden=8, use_vae=True, z_dim=16,
                                  norm="instance", crop_size=size),
        encoder=EncoderConfig(ndf=4, z_dim=16, input_size=64, num_layers=4),
    )
    return Pipeline(SPADEModel(config))


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
