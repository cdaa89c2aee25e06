"""Texture crops of real photos (the committed assets) and how the renderer samples them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from spadekit import SpadekitError
from spadekit.imageio import open_image

MIP_LEVELS = 6


def assets_dir() -> Path:
    return Path(str(resources.files("spadekit") / "assets"))


def landscapes_dir() -> Path:
    return assets_dir() / "landscapes"


@dataclass
class Texture:
    name: str                 # asset file, relative to assets/landscapes
    material: str             # texture class (sky, grass, ...)
    mips: list[np.ndarray]    # float32 [h, w, 3] in [0, 1], each level half the previous
    mean: np.ndarray          # [3] mean colour

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.mips[0].shape[:2]
        return h, w

    def sample(self, u: np.ndarray, v: np.ndarray, level: np.ndarray | int = 0) -> np.ndarray:
        """Colours at texel coordinates (u: x, v: y) of level 0, mirror-wrapped; `level` picks a mip
        (per pixel or global). Nearest-neighbour gather."""
        if np.isscalar(level):
            return _gather(self.mips[int(level)], u / 2 ** int(level), v / 2 ** int(level))
        level = np.clip(level, 0, MIP_LEVELS - 1).astype(np.int8)
        out = np.empty(u.shape + (3,), dtype=np.float32)
        for lv in np.unique(level):
            m = level == lv
            out[m] = _gather(self.mips[int(lv)], u[m] / 2 ** int(lv), v[m] / 2 ** int(lv))
        return out

    def sample_grid(self, u: np.ndarray, v: np.ndarray, level: int = 0) -> np.ndarray:
        """Separable sampling: u [w] texel columns, v [h] texel rows -> [h, w, 3] (fast outer gather)."""
        img = self.mips[level]
        h, w = img.shape[:2]
        f = 2.0 ** level
        return img[_mirror(v / f, h)[:, None], _mirror(u / f, w)[None, :]]

    def sample_rows(self, u: np.ndarray, v: np.ndarray, level: np.ndarray) -> np.ndarray:
        """u [h, w], v [h] texel coords, level [h] mip per row (rows of one level are gathered together)."""
        out = np.empty(u.shape + (3,), dtype=np.float32)
        for lv in np.unique(level):
            rows = np.nonzero(level == lv)[0]
            img = self.mips[int(lv)]
            h, w = img.shape[:2]
            f = 2.0 ** int(lv)
            out[rows] = img[_mirror(v[rows] / f, h)[:, None], _mirror(u[rows] / f, w)]
        return out

    def resized(self, h: int, w: int) -> np.ndarray:
        """The whole texture stretched to [h, w] (bilinear)."""
        img = Image.fromarray((self.mips[0] * 255 + 0.5).astype(np.uint8))
        return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _mirror(c: np.ndarray, n: int) -> np.ndarray:
    c = c.astype(np.int32) % (2 * n)  # coordinates are kept positive by the callers' offsets
    return np.where(c >= n, 2 * n - 1 - c, c)


def _gather(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[_mirror(v, h), _mirror(u, w)]


def _load(path: Path, name: str, material: str) -> Texture:
    img = open_image(path, "landscape texture").convert("RGB")
    mips = []
    for _ in range(MIP_LEVELS):
        arr = np.asarray(img, dtype=np.float32) / 255.0
        mips.append(arr)
        w, h = img.size
        img = img.resize((max(1, w // 2), max(1, h // 2)), Image.BOX)
    return Texture(name, material, mips, mips[0].reshape(-1, 3).mean(0))


@lru_cache(maxsize=1)
def load_manifest() -> list[dict]:
    path = landscapes_dir() / "manifest.json"
    if not path.exists():
        raise SpadekitError(f"landscape assets are missing: {path} does not exist; reinstall spadekit "
                            "or run tools/build_landscape_assets.py")
    return json.loads(path.read_text())["assets"]


@lru_cache(maxsize=1)
def load_textures() -> dict[str, list[Texture]]:
    """material -> textures, in manifest (sorted) order so sampling is deterministic."""
    out: dict[str, list[Texture]] = {}
    root = landscapes_dir()
    for entry in load_manifest():
        if entry["kind"] != "texture":
            continue
        out.setdefault(entry["class"], []).append(_load(root / entry["file"], entry["file"], entry["class"]))
    return out
