"""`spadekit serve`: the painting web app and its REST API (FastAPI + uvicorn)."""
from __future__ import annotations

import ipaddress
import socket
import sys

from spadekit.imageio import MAX_PIXELS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="start the painting web app and REST API (open the printed address in a browser)",
        description="Paint a label map in the browser and watch it become an image. API docs at /docs.",
    )
    parser.add_argument("--model", default="default", help="model folder or bundled name (default: the bundled landscape model; "
                        "a random small model when it is not installed)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 or a network address lets other machines in, with a warning: there is no authentication)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--workers", type=int, default=1, help="inference threads (default 1)")
    parser.add_argument("--queue", type=int, default=8, help="requests that may wait for a worker before the server answers 503 (default 8)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", default="auto", help="float32, bfloat16, float16 (CUDA) or auto (default)")
    parser.add_argument("--max-upload-mb", type=float, default=8.0, help="largest request body in MiB (default 8)")
    parser.add_argument("--max-pixels", type=int, default=2048 * 2048,
                        help=f"largest label map / style image in pixels (default 2048*2048, at most {MAX_PIXELS})")
    parser.add_argument("--compile", action="store_true", help="torch.compile the SPADE kernels at start (seconds; faster frames after)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(func=run)


def load_pipeline(model: str, device: str = "cpu", dtype: str = "auto", compile: bool = False):
    """(pipeline, is_random): the requested model, or the random landscape model for a missing bundled default."""
    from spadekit.inference import Pipeline, bundled_model_path

    if model == "default" and bundled_model_path("default") is None:
        from spadekit.commands.demo import random_landscape_pipeline

        return random_landscape_pipeline(), True
    return Pipeline.from_pretrained(model, device=device, dtype=dtype, compile=compile), False


def _check_port(host: str, port: int) -> int:
    """The port to listen on (a free one for 0); a clear error when it is taken or the address is not ours."""
    from spadekit import SpadekitError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SpadekitError(f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port or --host") from None
        return probe.getsockname()[1]


def bind_warning(host: str) -> str | None:
    """The warning to print for a listening address other machines can reach; None for this machine only."""
    if host in ("0.0.0.0", "::", ""):
        reach = "every network interface of this machine, so other machines can reach this server"
    else:
        try:
            addresses = {ipaddress.ip_address(host)}
        except ValueError:  # a host name: what it resolves to
            try:
                addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
            except (OSError, ValueError):
                addresses = set()
        if addresses and all(address.is_loopback for address in addresses):
            return None
        reach = "an address other machines can reach"
    return (f"warning: --host {host} listens on {reach}; the app has no authentication or encryption. "
            "Leave out --host (127.0.0.1, this machine only) unless you mean to share it.")


def run(args) -> int:
    from spadekit import SpadekitError

    try:
        import uvicorn

        from spadekit.app.server import Limits, create_app
    except ImportError as error:
        raise SpadekitError(f"the web app needs its extra packages ({error.name} is missing): pip install 'spadekit[app]'") from None
    if args.workers < 1 or args.queue < 0:
        raise SpadekitError(f"--workers must be at least 1 and --queue at least 0, got {args.workers} and {args.queue}")
    if not 0 <= args.port <= 65535:
        raise SpadekitError(f"--port {args.port}: choose a port in 0..65535")
    port = _check_port(args.host, args.port)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels)
    except SpadekitError as error:
        raise SpadekitError(f"--max-upload-mb / --max-pixels: {error}") from None
    pipe, is_random = load_pipeline(args.model, args.device, args.dtype, args.compile)
    if is_random:
        print("note: the bundled default model is not in this installation yet; serving a RANDOMLY INITIALISED small "
              "model, so images show the app working, not a trained result.")
    app = create_app(pipe, max_workers=args.workers, max_queue=args.queue, limits=limits, random_model=is_random,
                     model_name="random (untrained)" if is_random else args.model)
    warning = bind_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"spadekit serve: open http://{shown}:{port}/ (API docs at /docs); Ctrl+C stops", flush=True)
    config = uvicorn.Config(app, host=args.host, port=port, log_level="info", access_log=False)
    server = uvicorn.Server(config)
    try:
        server.run()
    except OSError as error:
        raise SpadekitError(f"cannot listen on {args.host}:{args.port} ({error.strerror or error}); choose another --port") from None
    return 0
