"""`spadekit data make-landscapes`: paired (image, label map) landscapes for training the default model.

Two sources, mixed by `real_fraction`:
  composites: procedural layouts filled with texture crops of real photos (landscape_scene.py);
  real photos: the committed downscaled photos with hand-drawn dense polygon labels
      (assets/landscapes/annotations.json), augmented by random crops, scales and flips.
Works only from the committed assets; deterministic: sample i depends only on (seed, i).

Output layout:
  OUT/images/00000.jpg     RGB
  OUT/labels/00000.png     8-bit single-channel PNG of raw COCO-Stuff ids (landscape_labels())
  OUT/palette.yaml         [{name, id, color: "#rrggbb"}] of the landscape label set
  OUT/CREDITS.md           sources, authors and licences of the assets
"""
from __future__ import annotations

import io
import json
import os

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from spadekit import SpadekitError
from spadekit.data.labels import landscape_labels, rgb_to_hex
from spadekit.data.landscape_scene import composite
from spadekit.data.landscape_textures import landscapes_dir

DEFAULT_REAL_FRACTION = 0.2
JPEG_QUALITY = 95


# ---------------------------------------------------------------------------- real photos
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
def _real_pair(index: int) -> tuple[Image.Image, np.ndarray]:
    entry = load_annotations()[index]
    photo = Image.open(landscapes_dir() / entry["photo"]).convert("RGB")
    label = render_annotation(entry, photo.size)
    return photo, label


def real_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random crop (random scale, aspect kept square), resized to size x size, maybe flipped."""
    entries = load_annotations()
    index = int(rng.integers(len(entries)))
    photo, label = _real_pair(index)
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


# ---------------------------------------------------------------------------- samples
def generate_sample(seed: int, index: int, size: int = 256,
                    real_fraction: float = DEFAULT_REAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Sample `index` of the dataset with `seed`: (RGB uint8 [size, size, 3], raw ids uint8 [size, size])."""
    rng = np.random.default_rng([int(seed), int(index)])
    if rng.random() < real_fraction and load_annotations():
        return real_sample(rng, size)
    return composite(rng, size)


def palette_entries() -> list[dict]:
    return [{"name": l.name, "id": l.id, "color": rgb_to_hex(l.color)} for l in landscape_labels().labels]


def write_palette(path: Path) -> None:
    lines = [f"- {{name: {e['name']}, id: {e['id']}, color: \"{e['color']}\"}}" for e in palette_entries()]
    _atomic_write(path, ("\n".join(lines) + "\n").encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _encode(img: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpg":
        Image.fromarray(img).save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(img).save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def make_landscapes(out: str | Path, n: int, size: int = 256, seed: int = 0,
                    real_fraction: float = DEFAULT_REAL_FRACTION, image_format: str = "jpg",
                    start: int = 0, progress: bool = True) -> Path:
    """Write samples start..start+n-1 to `out` (see the module doc for the layout)."""
    if n < 1:
        raise SpadekitError(f"--n must be at least 1, got {n}")
    if size < 32 or size > 2048:
        raise SpadekitError(f"--size must lie in 32..2048, got {size}")
    if not 0.0 <= real_fraction <= 1.0:
        raise SpadekitError(f"--real-fraction must lie in 0..1, got {real_fraction}")
    if image_format not in ("jpg", "png"):
        raise SpadekitError(f"image format must be jpg or png, got {image_format!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpadekitError(f"{out} exists and is not a directory; choose another --out")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    if real_fraction > 0 and not load_annotations():
        import warnings

        warnings.warn("no annotated photos in the assets: writing composites only")
    from tqdm import tqdm

    width = max(5, len(str(start + n - 1)))
    for i in tqdm(range(start, start + n), desc="make-landscapes", unit="img", disable=not progress):
        img, lab = generate_sample(seed, i, size, real_fraction)
        name = f"{i:0{width}d}"
        _atomic_write(out / "images" / f"{name}.{image_format}", _encode(img, image_format))
        _atomic_write(out / "labels" / f"{name}.png", _encode(lab, "png"))
    write_palette(out / "palette.yaml")
    credits = landscapes_dir() / "CREDITS.md"
    _atomic_write(out / "CREDITS.md", credits.read_bytes())
    return out


# ---------------------------------------------------------------------------- CLI
def add_make_landscapes_parser(data_subparsers) -> None:
    """Add `make-landscapes` to the `spadekit data` sub-command group."""
    p = data_subparsers.add_parser(
        "make-landscapes",
        help="generate paired (image, label map) landscapes from the bundled real-photo assets",
        description="Generate a landscape training set: procedural composites textured with real photos "
                    "plus augmented hand-labelled photos. Deterministic for a seed.",
    )
    p.add_argument("--n", type=int, required=True, help="number of samples to write")
    p.add_argument("--out", required=True, help="output folder (images/, labels/, palette.yaml, CREDITS.md)")
    p.add_argument("--size", type=int, default=256, help="side of the square samples in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    p.add_argument("--real-fraction", type=float, default=DEFAULT_REAL_FRACTION,
                   help=f"share of augmented real photos (default {DEFAULT_REAL_FRACTION})")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image file format (default jpg)")
    p.add_argument("--start", type=int, default=0, help="index of the first sample (to extend a set)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    out = make_landscapes(args.out, args.n, size=args.size, seed=args.seed, real_fraction=args.real_fraction,
                          image_format=args.format, start=args.start)
    print(f"wrote {args.n} samples to {out}")
    return 0
