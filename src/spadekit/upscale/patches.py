"""Where the upscaler's pictures come from: training patches of the labelled landscape training photos
(spadekit/assets/landscapes, never the held-out ones), and fixed crops of the held-out photos
(spadekit/assets/heldout) that measure it.

Training patches are cut at a random scale between MIN_PHOTO_SCALE and 1 of the photo (shrinking
first removes the photos' own JPEG blocking, which the network would otherwise learn to draw), at a
random place, flipped and turned.
"""
from __future__ import annotations

import math
from functools import cache

import numpy as np
from PIL import Image

from spadekit import SpadekitError
from spadekit.imageio import open_image

MIN_PHOTO_SCALE = 0.4


def training_photo_names() -> list[str]:
    """File names of the labelled landscape training photos, in annotation order."""
    from spadekit.landscapes.photos import load_annotations

    names = [entry["photo"].split("/")[-1] for entry in load_annotations()]
    if not names:
        raise SpadekitError("the landscape training photos are missing from this installation; reinstall spadekit from a full checkout")
    return names


@cache
def _training_photo(index: int) -> Image.Image:
    from spadekit.landscapes.photos import load_annotations
    from spadekit.landscapes.textures import landscapes_dir

    return open_image(landscapes_dir() / load_annotations()[index]["photo"], "training photo").convert("RGB")


def training_patch(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size uint8 RGB patch of a random training photo (module docstring)."""
    photo = _training_photo(int(rng.integers(len(training_photo_names()))))
    w, h = photo.size
    short = min(w, h)
    # photo scale = size / side: at most 1 (no enlarging), at least MIN_PHOTO_SCALE and the whole short side
    low = max(MIN_PHOTO_SCALE, size / short)
    scale = math.exp(rng.uniform(math.log(low), math.log(max(1.0, low))))
    side = min(short, round(size / scale))
    x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    patch = photo.resize((size, size), Image.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
    array = np.asarray(patch)
    if rng.random() < 0.5:
        array = array[:, ::-1]
    return np.ascontiguousarray(np.rot90(array, int(rng.integers(4))))


def heldout_crops(size: int = 256, per_photo: int = 3, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Fixed size x size uint8 RGB crops of the held-out photos: up to `per_photo` of each, at places
    drawn with `seed`, at the photo's own resolution; [(photo id, crop)]."""
    from spadekit.eval.heldout import heldout_dir, load_heldout_annotations

    rng = np.random.default_rng(seed)
    crops = []
    for entry in load_heldout_annotations():
        image = np.asarray(open_image(heldout_dir() / entry["photo"], "held-out photo").convert("RGB"))
        h, w = image.shape[:2]
        if min(h, w) < size:
            continue
        for _ in range(per_photo):
            y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            crops.append((entry["id"], np.ascontiguousarray(image[y0 : y0 + size, x0 : x0 + size])))
    return crops
