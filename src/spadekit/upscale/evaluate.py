"""How well an upscaler restores held-out photo crops, against bicubic enlargement of the same input.

For each crop (spadekit.upscale.patches.heldout_crops) the input is the crop shrunk 4x, either
cleanly (PIL's antialiased bicubic) or with the fixed degradation (blur, bicubic shrink, noise, JPEG;
spadekit.upscale.degrade.fixed_degradation); the upscaler's output and PIL's bicubic enlargement of
that input are compared to the crop by LPIPS (VGG16, lower is better) and PSNR (dB, higher is better).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from spadekit.eval.pixels import psnr
from spadekit.imageio import from_uint8
from spadekit.upscale.degrade import bicubic_downscale, fixed_degradation
from spadekit.upscale.model import Upscaler
from spadekit.upscale.tiles import upscale_array

VARIANTS = ("clean", "degraded")


def bicubic_upscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    """PIL's bicubic enlargement of a uint8 RGB image by `factor`: the baseline."""
    h, w = pixels.shape[:2]
    return np.asarray(Image.fromarray(pixels).resize((w * factor, h * factor), Image.BICUBIC))


def small_input(crop: np.ndarray, variant: str, factor: int = 4, seed: int = 0) -> np.ndarray:
    """The low-resolution input of one crop for a variant ("clean" or "degraded")."""
    return bicubic_downscale(crop, factor) if variant == "clean" else fixed_degradation(crop, factor, seed)


@torch.no_grad()
def _lpips(lpips, a: np.ndarray, b: np.ndarray, batch_size: int = 4) -> np.ndarray:
    values = []
    for i in range(0, len(a), batch_size):
        values.append(lpips(from_uint8(a[i : i + batch_size]), from_uint8(b[i : i + batch_size])).double().numpy())
    return np.concatenate(values)


def evaluate_upscaler(model: Upscaler, crops: list[np.ndarray], lpips, variants=VARIANTS, factor: int = 4) -> dict:
    """{variant: {"model": {"lpips", "psnr"}, "bicubic": {...}, "lpips_reduction", "psnr_gain"}}, means
    over the crops; lpips_reduction = 1 - model / bicubic LPIPS, psnr_gain = model - bicubic PSNR (dB)."""
    targets = np.stack(crops)
    report = {}
    for variant in variants:
        inputs = [small_input(crop, variant, factor, seed=k) for k, crop in enumerate(crops)]
        outputs = {"model": np.stack([upscale_array(model, x, factor) for x in inputs]),
                   "bicubic": np.stack([bicubic_upscale(x, factor) for x in inputs])}
        row = {name: {"lpips": float(_lpips(lpips, images, targets).mean()), "psnr": float(psnr(images, targets).mean())}
               for name, images in outputs.items()}
        row["lpips_reduction"] = 1 - row["model"]["lpips"] / row["bicubic"]["lpips"]
        row["psnr_gain"] = row["model"]["psnr"] - row["bicubic"]["psnr"]
        report[variant] = row
    return report
