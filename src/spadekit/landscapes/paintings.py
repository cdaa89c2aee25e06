"""Starter paintings: hand-authored landscape label maps for the demo and the app.

They are drawn from the shape descriptions in assets/paintings/paintings.json (not from the composite
renderer's random layouts: they are held-out "paintings you have never seen"). The rendered PNGs
(8-bit, raw COCO-Stuff ids) are committed next to the JSON; `render_painting` redraws them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from spadekit import SpadekitError
from spadekit.data.labels import landscape_labels
from spadekit.imageio import open_image, save_image
from spadekit.landscapes.textures import assets_dir


def paintings_dir() -> Path:
    return assets_dir() / "paintings"


def painting_specs() -> list[dict]:
    return json.loads((paintings_dir() / "paintings.json").read_text())["paintings"]


def render_painting(spec: dict, size: int = 256) -> np.ndarray:
    """One painting spec -> label map uint8 [size, size] of raw ids (no anti-aliasing)."""
    ids = {label.name: label.id for label in landscape_labels().labels}
    s = size / 256.0
    img = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(img)
    for shape in spec["shapes"]:
        if shape["class"] not in ids:
            raise SpadekitError(f"paintings.json: {spec['name']}: unknown class {shape['class']!r}")
        value = ids[shape["class"]]
        if "polygon" in shape:
            draw.polygon([(x * s, y * s) for x, y in shape["polygon"]], fill=value)
        elif "below" in shape:
            line = [(x * s, y * s) for x, y in shape["below"]]
            draw.polygon(line + [(size, size), (0, size)], fill=value)
        elif "ellipse" in shape:
            x0, y0, x1, y1 = (v * s for v in shape["ellipse"])
            draw.ellipse([x0, y0, x1, y1], fill=value)
        else:
            raise SpadekitError(f"paintings.json: {spec['name']}: a shape needs 'polygon', 'below' or 'ellipse'")
    out = np.asarray(img, dtype=np.uint8)
    if (out == 255).any():
        raise SpadekitError(f"paintings.json: {spec['name']}: shapes leave pixels unpainted")
    return out


def load_painting(name: str) -> np.ndarray:
    """A committed starter painting by name (e.g. 'beach') -> label map of raw ids."""
    path = paintings_dir() / f"{name}.png"
    if not path.exists():
        known = ", ".join(spec["name"] for spec in painting_specs())
        raise SpadekitError(f"no starter painting {name!r} ({path}); known: {known}")
    return np.asarray(open_image(path, "starter painting"), dtype=np.uint8)


def write_paintings() -> list[Path]:
    """Render every spec to assets/paintings/<name>.png (used when authoring; the PNGs are committed)."""
    out = []
    for spec in painting_specs():
        path = paintings_dir() / f"{spec['name']}.png"
        save_image(path, Image.fromarray(render_painting(spec), "L"), optimize=True)
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write_paintings():
        print(p)
