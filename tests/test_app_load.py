"""Eight concurrent clients against the app for a while (20 s; SPADEKIT_LOAD_SECONDS to change): no server errors."""
from __future__ import annotations

import os

import pytest

from app_doubles import run_load, scene_png, serve_in_thread, tiny_landscape_pipeline
from spadekit.app.server import create_app


@pytest.mark.slow
def test_eight_clients_get_no_server_errors():
    seconds = float(os.environ.get("SPADEKIT_LOAD_SECONDS", "20"))
    pipe = tiny_landscape_pipeline(size=64)
    app = create_app(pipe, max_workers=2, max_queue=8)
    with serve_in_thread(app) as url:
        result = run_load(url, scene_png(pipe.labels, pipe.size), clients=8, duration=seconds)
        health = app.state.pool.state()
    print(result)
    server_errors = {code: n for code, n in result["status"].items() if code.startswith("5")}
    assert not server_errors, result  # 8 clients fit in 2 workers + 8 waiting: not even a 503
    assert result["client_errors"] == 0, result
    assert set(result["status"]) == {"200"} and result["status"]["200"] >= 8, result
    assert health["running"] == 0 and health["waiting"] == 0
