"""Degradations that turn a sharp photo patch into the kind of small image an upscaler is given, as
pure functions of uint8 RGB arrays [H,W,3] (and a numpy Generator where they are random).

    small = bicubic_downscale(photo, 4)                            # the clean case
    small = degrade(photo, 4, np.random.default_rng(0))            # blur, resize, noise, JPEG at random
    small = fixed_degradation(photo, 4, seed=0)                    # the evaluation's degraded variant

The random pipeline (`degrade`) follows Real-ESRGAN's first order: a Gaussian blur of the large image,
a resize by the scale with a random filter, Gaussian noise, then JPEG; each step at a random strength,
and a share of samples left clean (a plain bicubic downscale), so sharp inputs stay sharp.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from spadekit import SpadekitError

RESAMPLERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "box": Image.BOX, "lanczos": Image.LANCZOS}


def _check(image: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise SpadekitError(f"{what}: expected a uint8 RGB image [H,W,3], got {array.dtype} {array.shape}")
    return array


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of standard deviation `sigma` pixels, radius ceil(3 sigma)."""
    if sigma <= 0:
        return np.ones(1, dtype=np.float32)
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (edges reflected); sigma 0 returns the image unchanged."""
    array = _check(image, "blur input")
    kernel = gaussian_kernel(sigma)
    if len(kernel) == 1:
        return array.copy()
    radius = len(kernel) // 2
    out = array.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
        out = sum(weight * np.take(padded, range(k, k + out.shape[axis]), axis=axis) for k, weight in enumerate(kernel))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize(image: np.ndarray, size: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Resize to size = (width, height) with PIL's filter `method` (antialiased when shrinking)."""
    array = _check(image, "resize input")
    if method not in RESAMPLERS:
        raise SpadekitError(f"resize method {method!r} is unknown; choose one of {', '.join(RESAMPLERS)}")
    return np.asarray(Image.fromarray(array).resize(size, RESAMPLERS[method]))


def bicubic_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """The image shrunk by `factor` with PIL's antialiased bicubic (its size must divide by factor)."""
    array = _check(image, "downscale input")
    h, w = array.shape[:2]
    if h % factor or w % factor:
        raise SpadekitError(f"downscale by {factor}: the image is {w}x{h}; crop it to a multiple of {factor}")
    return resize(array, (w // factor, h // factor), "bicubic")


def add_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator, gray: bool = False) -> np.ndarray:
    """Add Gaussian noise of standard deviation `sigma` (in 0..255 levels), the same in every channel
    when `gray`, then round and clip."""
    array = _check(image, "noise input")
    shape = array.shape[:2] + ((1,) if gray else (3,))
    noisy = array.astype(np.float32) + rng.normal(0.0, sigma, size=shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """The image after a JPEG round trip at `quality` (1..95)."""
    array = _check(image, "JPEG input")
    if not 1 <= quality <= 95:
        raise SpadekitError(f"JPEG quality must be within 1..95, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def degrade(image: np.ndarray, factor: int, rng: np.random.Generator, clean_share: float = 0.4) -> np.ndarray:
    """A random low-resolution version of `image` (module docstring), 1/factor of its size."""
    array = _check(image, "degrade input")
    h, w = array.shape[:2]
    size = (w // factor, h // factor)
    if rng.random() < clean_share:
        return bicubic_downscale(array, factor)
    if rng.random() < 0.7:
        array = gaussian_blur(array, float(rng.uniform(0.2, 1.5) * factor / 2))
    array = resize(array, size, str(rng.choice(["bicubic", "bilinear", "box", "lanczos"])))
    if rng.random() < 0.6:
        array = add_gaussian_noise(array, float(rng.uniform(1.0, 10.0)), rng, gray=bool(rng.random() < 0.4))
    if rng.random() < 0.8:
        array = jpeg(array, int(rng.integers(40, 96)))
    return array


def fixed_degradation(image: np.ndarray, factor: int, seed: int = 0) -> np.ndarray:
    """The evaluation's degraded variant: blur sigma 0.5*factor, bicubic downscale, Gaussian noise of 4
    levels (seeded), JPEG quality 75."""
    array = gaussian_blur(_check(image, "degrade input"), 0.5 * factor)
    array = add_gaussian_noise(bicubic_downscale(array, factor), 4.0, np.random.default_rng(seed))
    return jpeg(array, 75)
