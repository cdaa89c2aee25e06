"""The real-photo source of the landscape data: the committed downscaled photos with hand-drawn dense
polygon labels (assets/landscapes/annotations.json), sampled as random crops, scales and flips.

Everything that decides which photo and which part of it a sample shows lives here, so the photo set
and the crops can grow without touching the composites.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from spadekit import SpadekitError
from spadekit.data.labels import landscape_labels
from spadekit.imageio import open_image
from spadekit.landscapes.textures import landscapes_dir


@lru_cache(maxsize=1)
def load_annotations() -> list[dict]:
    """Annotated photos: [{"photo": file, "size": [w, h], "polygons": [{"class", "points"}]}], sorted."""
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


@lru_cache(maxsize=None)
def real_pair(index: int) -> tuple[Image.Image, np.ndarray]:
    """Annotated photo `index` (in load_annotations order) and its label map, at the committed size."""
    entry = load_annotations()[index]
    photo = open_image(landscapes_dir() / entry["photo"], "annotated photo").convert("RGB")
    label = render_annotation(entry, photo.size)
    return photo, label


def real_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random crop (random scale, aspect kept square), resized to size x size, maybe flipped."""
    entries = load_annotations()
    index = int(rng.integers(len(entries)))
    photo, label = real_pair(index)
    w, h = photo.size
    side = int(min(w, h) * rng.uniform(0.55, 1.0))
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    box = (x0, y0, x0 + side, y0 + side)
    img = photo.crop(box).resize((size, size), Image.BICUBIC)
    lab = Image.fromarray(label).crop(box).resize((size, size), Image.NEAREST)
    img_a, lab_a = np.asarray(img), np.asarray(lab)
    if rng.random() < 0.5:
        img_a, lab_a = img_a[:, ::-1], lab_a[:, ::-1]
    # mild photometric jitter
    f = img_a.astype(np.float32) * rng.uniform(0.9, 1.1) * (1 + rng.uniform(-0.04, 0.04, size=3)).astype(np.float32)
    img_a = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    if (lab_a == 255).any():
        raise SpadekitError(f"annotations.json: {entries[index]['photo']}: polygons leave pixels unlabelled")
    return np.ascontiguousarray(img_a), np.ascontiguousarray(lab_a)
