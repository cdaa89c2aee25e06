"""Request latency of the painting app's /api/generate: p50 / p95 with 1 and 8 concurrent clients.

    .venv/bin/python benchmarks/app_latency.py                      # default model (random one when absent), 20 s per level
    .venv/bin/python benchmarks/app_latency.py --duration 60 --clients 1 8 --workers 1

Starts `spadekit serve` in a subprocess on a free loopback port (so the load generator does not share
the server's interpreter), sends a starter scene as a multipart PNG with a new seed per request for a
bounded time per concurrency level, and prints one JSON object. Needs the app extra.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the app's load generator

from app_doubles import free_port, run_load, scene_png  # noqa: E402  (after the path above)


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            response = httpx.get(f"{url}/api/info", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer at {url} within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model folder or 'default' (random model when not installed)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrency levels (default 1 8)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per level (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of single-client warm-up, not counted")
    parser.add_argument("--workers", type=int, default=1, help="server inference threads (default 1)")
    parser.add_argument("--queue", type=int, default=8, help="server queue (default 8)")
    parser.add_argument("--threads", type=int, default=0, help="server torch threads (default: torch's choice)")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "spadekit.cli", "serve", "--model", args.model, "--port", str(port),
               "--workers", str(args.workers), "--queue", str(args.queue)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    log = tempfile.TemporaryFile(mode="w+")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            info = wait_healthy(url, server)
        except SystemExit:
            log.seek(0)
            print(log.read()[-2000:], file=sys.stderr)
            raise
        from spadekit.data.labels import LabelSet

        labels = LabelSet.from_dict({"name": info["label_set"], "labels": info["labels"]})
        png = scene_png(labels, (info["height"], info["width"]))
        if args.warmup > 0:
            run_load(url, png, 1, args.warmup)
        results = [run_load(url, png, clients, args.duration) for clients in args.clients]
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    report = {
        "benchmark": "app_latency",
        "model": info.get("model"),
        "random_model": info.get("random_model"),
        "size": [info["height"], info["width"]],
        "server": {"workers": args.workers, "queue": args.queue, "torch_threads": args.threads or "default"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "results": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
