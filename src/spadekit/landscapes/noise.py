"""Small, fast, deterministic noise and blur helpers for the landscape renderer (numpy + PIL only)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def upsample(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bicubic resize of a small float grid to [h, w] (float32)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32), "F").resize((w, h), Image.BICUBIC))


def fbm(rng: np.random.Generator, h: int, w: int, cells: float = 4.0, octaves: int = 4, gain: float = 0.5,
        aspect: float = 1.0) -> np.ndarray:
    """Fractal value noise in [0, 1] (roughly), [h, w]. `cells`: features across the width at the coarsest
    octave; `aspect` > 1 stretches features horizontally. Smooth noise is built at a lower resolution and
    upsampled once (the finest octave keeps >= 4 px per feature)."""
    finest = cells * 2 ** (octaves - 1) / min(aspect, 1.0)
    down = 1
    while down < 8 and w / (down * 2) >= 4 * finest and h >= 16 * down * 2:
        down *= 2
    if down > 1:
        small = _fbm(rng, -(-h // down), -(-w // down), cells, octaves, gain, aspect)
        return upsample(small, h, w)
    return _fbm(rng, h, w, cells, octaves, gain, aspect)


def _fbm(rng, h, w, cells, octaves, gain, aspect) -> np.ndarray:
    total = np.zeros((h, w), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        cx = max(2, int(round(cells * 2**o / aspect))) + 2
        cy = max(2, int(round(cells * 2**o * h / w))) + 2
        grid = rng.random((cy, cx), dtype=np.float32)
        # resize a slightly larger grid and crop so the edges do not clamp
        big = upsample(grid, int(h * cy / (cy - 2)) + 1, int(w * cx / (cx - 2)) + 1)
        oy = (big.shape[0] - h) // 2
        ox = (big.shape[1] - w) // 2
        total += amp * big[oy:oy + h, ox:ox + w]
        norm += amp
        amp *= gain
    return total / norm


def fbm1d(rng: np.random.Generator, n: int, cells: float = 4.0, octaves: int = 5, gain: float = 0.5,
          ridged: bool = False) -> np.ndarray:
    """1D fractal noise of length n in about [-1, 1]; `ridged` gives sharp peaks (mountain ridges)."""
    x = np.arange(n, dtype=np.float64)
    total = np.zeros(n)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        k = max(2, int(round(cells * 2**o))) + 2
        pts = rng.random(k) * 2.0 - 1.0
        pos = np.linspace(-n / (k - 3), n + n / (k - 3), k)
        # smooth (cosine) interpolation
        idx = np.clip(np.searchsorted(pos, x) - 1, 0, k - 2)
        t = (x - pos[idx]) / (pos[idx + 1] - pos[idx])
        t = (1 - np.cos(np.pi * t)) / 2
        v = pts[idx] * (1 - t) + pts[idx + 1] * t
        if ridged:
            v = 1.0 - 2.0 * np.abs(v)
        total += amp * v
        norm += amp
        amp *= gain
    return (total / norm).astype(np.float32)


def blur_mask(mask: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian-feathered alpha from a hard [h, w] bool/float mask in [0, 1] (8-bit precision)."""
    img = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8), "L")
    if radius > 0:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(img, dtype=np.float32) / 255.0


def blur_rgb(rgb: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a float [h, w, 3] image in [0, 1]."""
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


def box_blur(field: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Box blur of a float array along one axis (edge-clamped), width 2r+1."""
    if r <= 0:
        return field
    pad = [(0, 0)] * field.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(field, pad, mode="edge"), axis=axis, dtype=np.float64)
    n = field.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / (2 * r + 1)).astype(np.float32)


def smooth(field: np.ndarray, r: int) -> np.ndarray:
    """Approximate Gaussian blur (two box passes per axis) of a 2D float field."""
    for _ in range(2):
        field = box_blur(box_blur(field, r, 0), r, 1)
    return field


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
