"""Geometric transforms applied identically to a photo, its label map and its instance map.

The photo is resized with bicubic (or bilinear) interpolation, label and instance maps with
NEAREST so that ids are never blended. Crop and flip are done on arrays with the same indices
for all three, so a pixel of the photo stays on top of its label.

Preprocess modes (as in the reference):
- `resize_and_crop`: resize to load_size x load_size, crop crop_size x crop_size.
- `crop`: crop crop_size x crop_size from the image as it is.
- `scale_width`: width -> load_size (aspect kept); `scale_width_and_crop` then crops
  crop_size x round(crop_size / aspect_ratio).
- `scale_shortside` / `scale_shortside_and_crop`: shorter side -> load_size, then crop.
- `fixed`: resize to crop_size x round(crop_size / aspect_ratio) (width x height).
- `none`: keep the size.
Every mode then rounds width and height to a multiple of `size_multiple` (32 by default, what
the generator's upsampling needs) and flips left-right with probability 0.5 when `flip`.

Randomness comes only from the numpy Generator passed in: same generator state, same result.
Without `random` (evaluation) the crop is centred and nothing is flipped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from spadekit import SpadekitError

PREPROCESS_MODES = (
    "resize_and_crop",
    "crop",
    "scale_width",
    "scale_width_and_crop",
    "scale_shortside",
    "scale_shortside_and_crop",
    "fixed",
    "none",
)
IMAGE_RESAMPLING = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


@dataclass
class TransformConfig:
    """How training samples are resized, cropped and flipped.

    preprocess: one of PREPROCESS_MODES.
    load_size: the size images are resized to before cropping (square side, width or short side).
    crop_size: the width of the crop (and of `fixed`).
    aspect_ratio: width / height of the crop (2.0 for Cityscapes 512x256).
    flip: random left-right flips (only when the transform is random, i.e. training).
    size_multiple: width and height are rounded to a multiple of this (1 = off).
    image_resampling: "bicubic" or "bilinear" for photos; maps always use nearest.
    color_grading: strength of a random global colour grade of the photo (training only; 0 = off, 1 =
        typical: brightness, contrast and saturation vary by about 15-25% and the colour balance by
        about 10% per channel). It gives the style encoder global lighting and colour to capture, so
        that a style photo steers them; the label map is unchanged.
    """

    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    aspect_ratio: float = 1.0
    flip: bool = True
    size_multiple: int = 32
    image_resampling: str = "bicubic"
    color_grading: float = 0.0

    def __post_init__(self):
        if self.preprocess not in PREPROCESS_MODES:
            raise SpadekitError(
                f"unknown preprocess mode {self.preprocess!r}; choose one of {', '.join(PREPROCESS_MODES)}"
            )
        if self.image_resampling not in IMAGE_RESAMPLING:
            raise SpadekitError(
                f"unknown image_resampling {self.image_resampling!r}; choose one of {', '.join(IMAGE_RESAMPLING)}"
            )
        for name in ("load_size", "crop_size", "size_multiple"):
            if int(getattr(self, name)) < 1:
                raise SpadekitError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.aspect_ratio > 0:
            raise SpadekitError(f"aspect_ratio must be positive, got {self.aspect_ratio!r}")
        if not 0 <= self.color_grading <= 4:
            raise SpadekitError(f"color_grading must be in 0..4 (0 = off, 1 = typical), got {self.color_grading!r}")

    @property
    def crop_height(self) -> int:
        return max(1, int(round(self.crop_size / self.aspect_ratio)))


@dataclass(frozen=True)
class TransformParams:
    """One draw of the random choices: the size to resize to, the crop box and the flip."""

    resize: tuple[int, int] | None  # (width, height), None = keep
    crop: tuple[int, int, int, int] | None  # (left, top, width, height), None = whole image
    final: tuple[int, int]  # (width, height) after rounding to size_multiple
    flip: bool


def _resized_size(config: TransformConfig, width: int, height: int) -> tuple[int, int] | None:
    mode = config.preprocess
    if mode == "resize_and_crop":
        return (config.load_size, config.load_size)
    if mode in ("scale_width", "scale_width_and_crop"):
        return (config.load_size, max(1, config.load_size * height // width))
    if mode in ("scale_shortside", "scale_shortside_and_crop"):
        scale = config.load_size / min(width, height)
        return (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    if mode == "fixed":
        return (config.crop_size, config.crop_height)
    return None


def sample_params(config: TransformConfig, size: tuple[int, int], rng: np.random.Generator | None, random: bool = True) -> TransformParams:
    """Draw the resize / crop / flip choices for an image of `size` = (width, height)."""
    width, height = size
    resize = _resized_size(config, width, height)
    w, h = resize if resize is not None else (width, height)
    crop = None
    if config.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop", "scale_shortside_and_crop"):
        cw, ch = min(config.crop_size, w), min(config.crop_height, h)
        if (cw, ch) != (w, h):
            if random and rng is not None:
                left = int(rng.integers(0, w - cw + 1))
                top = int(rng.integers(0, h - ch + 1))
            else:
                left, top = (w - cw) // 2, (h - ch) // 2
            crop = (left, top, cw, ch)
            w, h = cw, ch
    m = int(config.size_multiple)
    final = (max(m, int(round(w / m)) * m), max(m, int(round(h / m)) * m))
    flip = bool(config.flip and random and rng is not None and rng.random() < 0.5)
    return TransformParams(resize=resize, crop=crop, final=final, flip=flip)


def _resize_array(array: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    if (array.shape[1], array.shape[0]) == tuple(size):
        return array
    if array.ndim == 3:
        return np.array(Image.fromarray(array).resize(size, resample))
    # Label / instance maps: int32 "I" images resize exactly with NEAREST, whatever the id range.
    image = Image.fromarray(array.astype(np.int32))
    return np.asarray(image.resize(size, Image.NEAREST)).astype(array.dtype)


def apply_params(array: np.ndarray, params: TransformParams, kind: str, image_resampling: str = "bicubic") -> np.ndarray:
    """Apply one draw to an array: kind "image" ([H,W,3] uint8) or "label"/"instance" ([H,W] ints)."""
    resample = IMAGE_RESAMPLING[image_resampling] if kind == "image" else Image.NEAREST
    if params.resize is not None:
        array = _resize_array(array, params.resize, resample)
    if params.crop is not None:
        left, top, cw, ch = params.crop
        array = array[top : top + ch, left : left + cw]
    array = _resize_array(np.ascontiguousarray(array), params.final, resample)
    if params.flip:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)


def color_grade(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A random global grade of an RGB uint8 image: saturation, contrast, brightness and per-channel gains,
    each a log-normal factor around 1 (sigma 0.25, 0.15, 0.2, 0.2 times `strength`). The per-channel
    gains (white balance) were 0.1 until total step 11,160 of the default model: too faint for its encoder
    to learn warm/cool from, as the style check measured."""
    sat, contrast, bright = np.exp(rng.normal(0.0, [0.25 * strength, 0.15 * strength, 0.2 * strength]))
    gains = np.exp(rng.normal(0.0, 0.2 * strength, 3))
    x = image.astype(np.float32) / 255.0
    grey = x.mean(axis=2, keepdims=True)
    x = grey + sat * (x - grey)
    x = 0.5 + contrast * (x - 0.5)
    x = x * (bright * gains).astype(np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class PairedTransform:
    """Callable applying the same random geometry to image, label and (optional) instance map."""

    def __init__(self, config: TransformConfig | None = None):
        self.config = config or TransformConfig()

    def __call__(
        self,
        image: np.ndarray,
        label: np.ndarray,
        instance: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        random: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """image [H,W,3] uint8, label [H,W] ints, instance [H,W] ints or None -> the same, transformed."""
        height, width = label.shape[:2]
        params = sample_params(self.config, (width, height), rng, random=random)
        resampling = self.config.image_resampling
        image = apply_params(image, params, "image", resampling)
        if self.config.color_grading > 0 and random and rng is not None:
            image = color_grade(image, rng, self.config.color_grading)
        label = apply_params(label, params, "label")
        if instance is not None:
            instance = apply_params(instance, params, "instance")
        return image, label, instance
