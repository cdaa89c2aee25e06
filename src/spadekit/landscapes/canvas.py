"""The canvas a landscape composite is painted on, and the painter's tools every layer uses.

A `Scene` holds the random generator, the canvas (image + label map), the texture library and what
the layers decided so far (horizon, sky colours, mood); the layer modules (sky, terrain, water,
vegetation) paint on it in the order `compose.build` calls them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spadekit.data.labels import landscape_labels
from spadekit.landscapes.noise import blur_mask, fbm, fbm1d
from spadekit.landscapes.textures import Texture, load_textures

ID = {label.name: label.id for label in landscape_labels().labels}


class Canvas:
    """Image [h, w, 3] float in [0, 1] + label map [h, w] uint8 of raw ids."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), dtype=np.float32)
        self.label = np.full((h, w), ID["sky"], dtype=np.uint8)
        self.yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
        self.xx = np.arange(w, dtype=np.float32)[None, :] + 0.5

    def paint(self, hard: np.ndarray, colour, name: str | None, feather: float = 0.7,
              alpha: np.ndarray | None = None) -> None:
        if alpha is None:
            alpha = blur_mask(hard, feather) if feather > 0 else hard.astype(np.float32)
        colour = np.asarray(colour, dtype=np.float32)
        self.img += (colour - self.img) * alpha[..., None]
        if name is not None:
            self.label[hard] = ID[name]


class Scene:
    """One composite being painted. `h`, `w`: the output size in pixels; everything scales with it."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, kind: str):
        self.rng = rng
        self.c = Canvas(h, w)
        self.h, self.w = h, w
        self.tex = load_textures()
        self.px = w / 256.0   # pixels per "256-px unit": sizes are authored at 256 px
        self.kind = kind
        # decided while painting: by compose.build (horizon, sun side), sky.paint (mood, colours, sun),
        # terrain.asphalt (road markings)
        self.horizon = 0.0
        self.sun_side = 1.0
        self.mood = "clear"
        self.zenith = self.horizon_colour = np.zeros(3, np.float32)
        self.sun_x: float | None = None
        self.road_marks = False

    def pick(self, material: str, fallback: str | None = None, exclude: tuple[str, ...] = ()) -> Texture:
        options = self.tex.get(material) or self.tex.get(fallback or "", [])
        if exclude:
            kept = [t for t in options if not Path(t.name).stem.startswith(exclude)]
            options = kept or options
        return options[int(self.rng.integers(len(options)))]

    def jitter(self, colour: np.ndarray, amount: float = 0.08) -> np.ndarray:
        gain = 1.0 + self.rng.uniform(-amount, amount)
        tint = 1.0 + self.rng.uniform(-amount / 2, amount / 2, size=3)
        return colour * (gain * tint).astype(np.float32)

    def flat_fill(self, tex: Texture, scale: float, mask_rows: slice | None = None) -> np.ndarray:
        """Texture at a uniform scale (texels per pixel) over the canvas, random offset, random flip."""
        u = self.c.xx[0] * scale + self.rng.uniform(0, 1000)
        v = self.c.yy[:, 0] * scale + self.rng.uniform(0, 1000)
        if self.rng.random() < 0.5:
            u = u[::-1]
        level = int(np.clip(np.floor(np.log2(max(scale, 1e-3)) + 0.3), 0, 3))
        return tex.sample_grid(u, v, level)

    def ground_uv(self, horizon: float, near_scale: float, aniso: float):
        """Perspective ground plane below `horizon`: texel coords (u, v) and a mip level per pixel."""
        d = np.maximum(self.c.yy - horizon, 0.6)
        d_near = max(self.h - horizon, 1.0)
        k = near_scale * d_near
        m = d_near * aniso
        u = (self.c.xx - self.w / 2) * (k / d) + self.rng.uniform(1e5, 2e5)
        v = ((k * m) / d + self.rng.uniform(0, 1000))[:, 0]
        rate = (k / d) * np.maximum(1.0, m / d)
        level = np.clip(np.log2(np.maximum(rate, 1e-3)) + 0.8, 0, 5).astype(np.int8)[:, 0]
        return u, v, level, d

    def ground_fill(self, tex: Texture, horizon: float, near_scale: float | None = None,
                    aniso: float | None = None) -> np.ndarray:
        rng = self.rng
        near_scale = (near_scale or rng.uniform(0.6, 1.3)) / self.px
        aniso = aniso or rng.uniform(0.8, 2.0)
        u, v, level, d = self.ground_uv(horizon, near_scale, aniso)
        if rng.random() < 0.5:
            u = u[:, ::-1]
        col = tex.sample_rows(u, v, level)
        # the far field: detail fades into the material's colour with broad variation (no visible tiling)
        far = np.exp(-d / (0.22 * self.h)) * 0.8
        broad = tex.mean * (0.85 + 0.3 * fbm(rng, self.h, self.w, cells=3, octaves=2, aspect=4))[..., None]
        return col * (1 - far[..., None]) + broad * far[..., None]

    def haze(self, colour: np.ndarray, horizon: float, strength: float) -> np.ndarray:
        """Atmospheric perspective: blend ground towards the horizon colour near the horizon."""
        d = np.maximum(self.c.yy - horizon, 0.0) / self.h
        t = strength * np.exp(-d / 0.06)
        return colour * (1 - t[..., None]) + self.horizon_colour * t[..., None]

    def shade_noise(self, cells: float, amount: float, aspect: float = 1.0) -> np.ndarray:
        n = fbm(self.rng, self.h, self.w, cells=cells, octaves=3, aspect=aspect)
        return (1.0 + amount * (n - 0.5) * 2.0)[..., None]

    def blob(self, cx, cy, rx, ry, rough, flat_bottom=False):
        """Hard mask of a rough ellipse-ish blob inside its bounding box; returns (mask, y0, x0)."""
        rng = self.rng
        x0, x1 = int(max(0, cx - rx * 1.4 - 1)), int(min(self.w, cx + rx * 1.4 + 2))
        y0, y1 = int(max(0, cy - ry * 1.4 - 1)), int(min(self.h, cy + ry * 1.4 + 2))
        if x1 <= x0 or y1 <= y0:
            return None
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
        ang = np.arctan2((yy - cy) / ry, (xx - cx) / rx)
        r = np.hypot((xx - cx) / rx, (yy - cy) / ry)
        prof = fbm1d(rng, 64, cells=rng.uniform(3, 7), octaves=3)
        idx = ((ang + np.pi) / (2 * np.pi) * 63).astype(int)
        edge = 1.0 + rough * prof[idx]
        m = r < edge
        if flat_bottom:
            m &= yy < cy + ry * 0.35
        return m, y0, x0

    def paint_local(self, mask, y0, x0, colour, name, feather=0.6):
        h, w = mask.shape
        big = np.zeros((self.h, self.w), dtype=bool)
        big[y0:y0 + h, x0:x0 + w] = mask
        pad = 3
        ys, xs = slice(max(0, y0 - pad), min(self.h, y0 + h + pad)), slice(max(0, x0 - pad), min(self.w, x0 + w + pad))
        alpha = np.zeros((self.h, self.w), dtype=np.float32)
        alpha[ys, xs] = blur_mask(big[ys, xs], feather)
        col = np.asarray(colour, dtype=np.float32)
        if col.ndim == 3:
            self.c.img[ys, xs] += (col[ys, xs] - self.c.img[ys, xs]) * alpha[ys, xs, None]
        else:
            self.c.img[ys, xs] += (col - self.c.img[ys, xs]) * alpha[ys, xs, None]
        self.c.label[big] = ID[name]
