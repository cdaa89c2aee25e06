"""Upscaling images of any size: the input is cut into tiles, each run with a margin of context at
least the network's receptive radius, and only each tile's own part of the output is kept, so the
result equals one pass over the whole image (up to float rounding) while memory stays that of a tile.

    image = upscale_image(model, Image.open("small.png"), scale=4)     # a PIL image 4x the size
    image = upscale_image(model, picture, scale=2)                     # 4x, then an antialiased 2x shrink
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from spadekit import SpadekitError
from spadekit.upscale.model import Upscaler

MAX_OUTPUT_PIXELS = 64_000_000  # an 8000x8000 result; the output array alone is ~200 MB


@torch.no_grad()
def upscale_tensor(model: Upscaler, images: torch.Tensor, tile_size: int = 256) -> torch.Tensor:
    """images [B,3,H,W] in [-1,1] -> [B,3,sH,sW] in [-1,1] (s = model.config.scale), tile by tile
    (tiles of tile_size x tile_size input pixels plus the context margin)."""
    if tile_size < 1:
        raise SpadekitError(f"tile size must be positive, got {tile_size}")
    scale, margin = model.config.scale, model.receptive_radius
    b, c, h, w = images.shape
    device = next(model.parameters()).device
    out = torch.empty(b, c, h * scale, w * scale, dtype=images.dtype)
    for y0 in range(0, h, tile_size):
        for x0 in range(0, w, tile_size):
            y1, x1 = min(y0 + tile_size, h), min(x0 + tile_size, w)
            ty0, tx0 = max(0, y0 - margin), max(0, x0 - margin)
            ty1, tx1 = min(h, y1 + margin), min(w, x1 + margin)
            result = model(images[:, :, ty0:ty1, tx0:tx1].to(device)).clamp_(-1, 1).cpu()
            oy, ox = (y0 - ty0) * scale, (x0 - tx0) * scale
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = \
                result[:, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale]
    return out


def upscale_array(model: Upscaler, pixels: np.ndarray, scale: int = 4, tile_size: int = 256) -> np.ndarray:
    """uint8 RGB [H,W,3] -> uint8 RGB [scale*H, scale*W, 3]. scale 2 (with a 4x model) shrinks the 4x
    result by 2 with an antialiased bicubic filter."""
    if scale not in (2, 4):
        raise SpadekitError(f"--scale must be 2 or 4, got {scale}")
    if model.config.scale not in (scale, 4):
        raise SpadekitError(f"this upscaler enlarges {model.config.scale}x and cannot give {scale}x; use a 4x model")
    h, w = pixels.shape[:2]
    if h * w * model.config.scale**2 > MAX_OUTPUT_PIXELS:
        raise SpadekitError(f"a {w}x{h} image enlarged {model.config.scale}x would have {h * w * model.config.scale ** 2} pixels, "
                            f"over the limit of {MAX_OUTPUT_PIXELS}; shrink or crop the input first")
    tensor = torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 127.5 - 1
    result = upscale_tensor(model, tensor, tile_size)[0]
    array = ((result.permute(1, 2, 0) + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8).numpy()
    if model.config.scale != scale:
        array = np.asarray(Image.fromarray(array).resize((w * scale, h * scale), Image.BICUBIC))
    return array


def upscale_image(model: Upscaler, image: Image.Image, scale: int = 4, tile_size: int = 256) -> Image.Image:
    """A PIL image enlarged `scale` times (RGB; an alpha channel is dropped)."""
    return Image.fromarray(upscale_array(model, np.asarray(image.convert("RGB")), scale, tile_size))
