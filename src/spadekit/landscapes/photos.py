"""The real-photo source of the landscape data: the committed photos (up to 1600 px on the long side)
with hand-drawn dense polygon labels (assets/landscapes/annotations.json), sampled as square crops at
many scales, flipped and mildly colour-jittered.

A crop's side is drawn log-uniformly between the finest scale (the output size in photo pixels, at
most FINEST_UPSCALE times enlarged: the photo's own detail) and the photo's short side (the whole
scene's layout), so every octave of scale between the two is drawn equally often.

Everything that decides which photo and which part of it a sample shows lives here, so the photo set
and the crops can grow without touching the composites.
"""
from __future__ import annotations

import json
import math
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw

from spadekit import SpadekitError
from spadekit.data.labels import landscape_labels
from spadekit.imageio import open_image
from spadekit.landscapes.textures import landscapes_dir

FINEST_UPSCALE = 1.25  # the finest crop is enlarged at most this much to the output size


@lru_cache(maxsize=1)
def load_annotations() -> list[dict]:
    """Annotated photos: [{"photo": file, "size": [w, h], "polygons": [{"class", "points"}], ...}], sorted."""
    path = landscapes_dir() / "annotations.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return sorted(data["photos"], key=lambda p: p["photo"])


def render_annotation(entry: dict, size: tuple[int, int] | None = None) -> np.ndarray:
    """Dense label map (raw ids) of one annotated photo: polygons painted in order, later on top.
    Points are in pixels of the committed photo (entry["size"]); `size` rescales."""
    ids = {label.name: label.id for label in landscape_labels().labels}
    w, h = entry["size"]
    tw, th = size or (w, h)
    img = Image.new("L", (tw, th), 255)
    draw = ImageDraw.Draw(img)
    for poly in entry["polygons"]:
        if poly["class"] not in ids:
            raise SpadekitError(f"annotations.json: {entry['photo']}: unknown class {poly['class']!r}")
        pts = [(x * tw / w, y * th / h) for x, y in poly["points"]]
        draw.polygon(pts, fill=ids[poly["class"]])
    return np.asarray(img, dtype=np.uint8)


@cache
def _decoded(index: int) -> tuple[Image.Image, Image.Image]:
    """Photo `index` and its label map as PIL images, decoded once per process (~8 MB per 1600 px photo)."""
    entry = load_annotations()[index]
    photo = open_image(landscapes_dir() / entry["photo"], "annotated photo").convert("RGB")
    if list(photo.size) != list(entry["size"]):
        raise SpadekitError(f"annotations.json: {entry['photo']} is {photo.size[0]}x{photo.size[1]} but its "
                            f"size says {entry['size'][0]}x{entry['size'][1]}; rebuild with tools/build_landscape_assets.py")
    label = render_annotation(entry)
    if (label == 255).any():
        raise SpadekitError(f"annotations.json: {entry['photo']}: polygons leave {int((label == 255).sum())} "
                            "pixels unlabelled; rebuild with tools/build_landscape_assets.py")
    return photo, Image.fromarray(label)


def real_pair(index: int) -> tuple[Image.Image, np.ndarray]:
    """Annotated photo `index` (in load_annotations order) and its label map, at the committed size."""
    photo, label = _decoded(index)
    return photo, np.asarray(label)


def crop_side(rng: np.random.Generator, short_side: int, size: int) -> int:
    """Side in photo pixels of a square crop for a size x size sample, log-uniform between the finest
    scale (size / FINEST_UPSCALE, or the short side if that is smaller) and the photo's short side."""
    finest = min(short_side, math.ceil(size / FINEST_UPSCALE))
    return min(short_side, round(math.exp(rng.uniform(math.log(finest), math.log(short_side)))))


def real_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A square crop of a random photo at a random scale (crop_side) and place, resized to size x size
    (bicubic; the label map nearest), maybe flipped, mildly colour-jittered."""
    entries = load_annotations()
    photo, label = _decoded(int(rng.integers(len(entries))))
    w, h = photo.size
    side = crop_side(rng, min(w, h), size)
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    box = (x0, y0, x0 + side, y0 + side)
    img_a = np.asarray(photo.resize((size, size), Image.BICUBIC, box=box))
    lab_a = np.asarray(label.resize((size, size), Image.NEAREST, box=box))
    if rng.random() < 0.5:
        img_a, lab_a = img_a[:, ::-1], lab_a[:, ::-1]
    # mild photometric jitter
    f = img_a.astype(np.float32) * rng.uniform(0.9, 1.1) * (1 + rng.uniform(-0.04, 0.04, size=3)).astype(np.float32)
    img_a = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img_a), np.ascontiguousarray(lab_a)
