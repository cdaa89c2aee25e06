"""Starter scenes of the app: label-map PNGs in one folder, offered by name when they fit the model's labels."""
from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

from spadekit.app.parsing import APIError, Limits, decode_label_map
from spadekit.imageio import colorize, png_bytes

SCENES_DIR = Path(str(resources.files("spadekit").joinpath("assets", "paintings")))


class SceneLibrary:
    """Starter scenes: PNG label maps in one folder, offered by name when they fit the model's labels."""

    def __init__(self, folder: Path | None, pipeline, limits: Limits):
        self.folder = folder
        self.pipeline = pipeline
        self.limits = limits
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self._lock = threading.Lock()

    def _files(self) -> dict[str, Path]:
        if self.folder is None or not self.folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.folder.iterdir()) if p.suffix.lower() == ".png" and p.is_file()}

    def _load(self, path: Path) -> bytes | None:
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._cache.get(path.stem)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            if path.stat().st_size > self.limits.max_upload_bytes:
                raise APIError(413, "too big")
            ids = decode_label_map(self.pipeline, path.read_bytes(), self.limits)
            png = png_bytes(colorize(ids, self.pipeline.labels), compress_level=1)
        except (APIError, OSError):
            png = None  # a scene painted for another label set, or unreadable: not offered
        with self._lock:
            self._cache[path.stem] = (mtime, png)
        return png

    def names(self) -> list[str]:
        return [name for name, path in self._files().items() if self._load(path) is not None]

    def get(self, name: str) -> bytes:
        files = self._files()
        path = files.get(name)  # looked up by name in the listing; the request never forms a path
        png = self._load(path) if path is not None else None
        if png is None:
            known = ", ".join(self.names()) or "none"
            raise APIError(404, f"no starter scene named {name[:60]!r}; known scenes: {known}")
        return png
