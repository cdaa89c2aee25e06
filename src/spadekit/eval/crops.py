"""Many crops of few photos: the samples of the real-photo evaluation.

A held-out set of a dozen photos gives a dozen images, too few for FID or KID. Each photo is
therefore cut into `count` crops with the model's aspect ratio at several scales: crop k of a
photo takes scale `scales[k % len(scales)]` (a fraction of the largest crop that fits the photo),
at a random position. Crops are never smaller than `min_side` pixels high (the model's frame, so
real crops are not upsampled), nor larger than the photo. The position depends only on
(seed, photo name, k): adding a photo to the set leaves the other photos' crops unchanged.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from spadekit import SpadekitError

DEFAULT_SCALES = (1.0, 0.75, 0.5, 0.35)
DEFAULT_CROPS_PER_PHOTO = 16


@dataclass(frozen=True)
class Crop:
    """One crop: photo `name` (index `photo` in its dataset), box (x0, y0, x1, y1) in its pixels."""

    photo: int
    name: str
    box: tuple[int, int, int, int]
    scale: float

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


def check_scales(scales) -> tuple[float, ...]:
    scales = tuple(float(s) for s in scales)
    if not scales or any(not 0 < s <= 1 for s in scales):
        raise SpadekitError(f"crop scales must be fractions in (0, 1], got {list(scales)}")
    return scales


def sample_crops(
    name: str,
    photo_size: tuple[int, int],
    count: int,
    *,
    scales=DEFAULT_SCALES,
    aspect: float = 1.0,
    min_side: int = 1,
    seed: int = 0,
    photo: int = 0,
) -> list[Crop]:
    """`count` crops of photo `name` of photo_size (width, height); aspect = crop width / height.

    Returns crops with scales assigned in turn, heights clipped to [min_side, the largest that fits].
    """
    width, height = photo_size
    scales = check_scales(scales)
    if count < 1:
        raise SpadekitError(f"crops per photo must be at least 1, got {count}")
    if aspect <= 0:
        raise SpadekitError(f"crop aspect ratio must be positive, got {aspect}")
    largest = min(height, int(width / aspect))
    if largest < 1 or round(largest * aspect) < 1:
        raise SpadekitError(f"photo {name} ({width}x{height}) is too small for a crop of aspect {aspect:.3g}")
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
    crops = []
    for k in range(count):
        scale = scales[k % len(scales)]
        crop_h = min(largest, max(int(min_side), round(scale * largest)))
        crop_w = min(width, max(1, round(crop_h * aspect)))
        x0 = int(rng.integers(0, width - crop_w + 1))
        y0 = int(rng.integers(0, height - crop_h + 1))
        crops.append(Crop(photo, name, (x0, y0, x0 + crop_w, y0 + crop_h), scale))
    return crops


def cut(photo: np.ndarray, channels: np.ndarray, crop: Crop, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The crop of a photo (uint8 [H,W,3]) and its label map ([H,W] channel indices), resized to
    size = (H, W): the photo with PIL's bicubic filter (antialiased when shrinking), the labels nearest.
    Returns (uint8 [h,w,3], int64 [h,w])."""
    height, width = size
    image = Image.fromarray(photo).crop(crop.box)
    if image.size != (width, height):
        image = image.resize((width, height), Image.BICUBIC)
    x0, y0, x1, y1 = crop.box
    label = channels[y0:y1, x0:x1]
    if label.shape != (height, width):
        # Nearest: the label of the pixel at each output pixel's centre.
        rows = np.minimum(((np.arange(height) + 0.5) * label.shape[0] / height).astype(np.int64), label.shape[0] - 1)
        cols = np.minimum(((np.arange(width) + 0.5) * label.shape[1] / width).astype(np.int64), label.shape[1] - 1)
        label = label[rows[:, None], cols[None, :]]
    return np.asarray(image, dtype=np.uint8), np.ascontiguousarray(label, dtype=np.int64)
