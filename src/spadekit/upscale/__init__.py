"""A small trained 4x upscaler: the network (model), the degradations it was trained on (degrade),
tiled inference for any image size (tiles), its losses and its training and evaluation pictures.

    from spadekit.upscale import load_upscaler, upscale_image
    large = upscale_image(load_upscaler(), Image.open("small.png"), scale=4)
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from spadekit import SpadekitError
from spadekit.upscale.model import Upscaler, UpscalerConfig
from spadekit.upscale.tiles import upscale_array, upscale_image, upscale_tensor

__all__ = ["BUNDLED_UPSCALER", "Upscaler", "UpscalerConfig", "bundled_upscaler_path", "load_upscaler",
           "upscale_array", "upscale_image", "upscale_tensor"]

BUNDLED_UPSCALER = "upscaler-x4"


def bundled_upscaler_path() -> Path | None:
    """Folder of the bundled upscaler (spadekit/pretrained/upscaler-x4), or None when this installation lacks it."""
    path = Path(str(resources.files("spadekit").joinpath("pretrained", BUNDLED_UPSCALER)))
    return path if (path / "config.json").is_file() else None


def load_upscaler(name_or_path: str | os.PathLike = BUNDLED_UPSCALER, device: str = "cpu") -> Upscaler:
    """The bundled upscaler (by its name) or one saved in a folder, in eval mode."""
    if str(name_or_path) == BUNDLED_UPSCALER:
        path = bundled_upscaler_path()
        if path is None:
            raise SpadekitError(f"the bundled upscaler {BUNDLED_UPSCALER!r} is not in this installation "
                                f"(spadekit/pretrained/{BUNDLED_UPSCALER} is missing); reinstall spadekit from a full checkout")
        return Upscaler.from_pretrained(path, device)
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise SpadekitError(f"upscaler {str(name_or_path)!r} not found: not a folder, and not the bundled {BUNDLED_UPSCALER!r}")
    return Upscaler.from_pretrained(path, device)
