"""Pixel-level measures of generated images against photos.

- PSNR of one image against its photo: 10 log10(255^2 / MSE) over all pixels and channels of the
  uint8 images (infinite for identical images; the report averages finite values per image).
- Sharpness: mean |Laplacian| of the grey level (mean of R, G, B on a 0..1 scale) with the
  4-neighbour kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]], over interior pixels (no padding).
  A blurred image has a lower value than the photo; noise raises it, so read it beside LPIPS.
"""
from __future__ import annotations

import numpy as np
import torch

from spadekit import SpadekitError
from spadekit.losses import abs_laplacian


def _as_uint8_batch(images, what: str) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise SpadekitError(f"{what}: expected uint8 RGB images [N,H,W,3], got {array.dtype} {array.shape}")
    return array


def psnr(images, references) -> np.ndarray:
    """PSNR in dB of each image against its reference, both uint8 [N,H,W,3] (or one [H,W,3]) -> [N]."""
    a = _as_uint8_batch(images, "PSNR images").astype(np.float64)
    b = _as_uint8_batch(references, "PSNR references").astype(np.float64)
    if a.shape != b.shape:
        raise SpadekitError(f"PSNR compares images of one shape, got {a.shape} and {b.shape}")
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


def mean_abs_laplacian(images) -> np.ndarray:
    """Sharpness of each uint8 image [N,H,W,3] (or one [H,W,3]) -> [N] (module docstring)."""
    array = _as_uint8_batch(images, "sharpness images")
    if array.shape[1] < 3 or array.shape[2] < 3:
        raise SpadekitError(f"sharpness needs images of at least 3x3 pixels, got {array.shape[2]}x{array.shape[1]}")
    grey = torch.from_numpy(array.astype(np.float32)).mean(dim=-1)[:, None] / 255.0
    return abs_laplacian(grey).mean(dim=(1, 2, 3)).double().numpy()
