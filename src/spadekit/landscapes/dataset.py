"""`spadekit data make-landscapes`: paired (image, label map) landscapes for training the default model.

Two sources, mixed by `real_fraction`:
  composites: procedural layouts filled with texture crops of real photos (compose.py);
  real photos: the committed photos (up to 1600 px) with hand-drawn dense polygon labels, as square
      crops at scales from the photo's own detail to the whole scene, flipped and jittered (photos.py).
Works only from the committed assets; deterministic: sample i depends only on (seed, i).

Output layout:
  OUT/images/00000.jpg     RGB
  OUT/labels/00000.png     8-bit single-channel PNG of raw COCO-Stuff ids (landscape_labels())
  OUT/palette.yaml         [{name, id, color: "#rrggbb"}] of the landscape label set
  OUT/CREDITS.md           sources, authors and licences of the assets
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from spadekit import SpadekitError
from spadekit.data.labels import landscape_labels, rgb_to_hex
from spadekit.fileio import atomic_write_bytes, atomic_write_text
from spadekit.imageio import save_image
from spadekit.landscapes.compose import composite
from spadekit.landscapes.photos import load_annotations, real_sample
from spadekit.landscapes.textures import landscapes_dir

DEFAULT_REAL_FRACTION = 0.5  # half the samples are real photos: the photographic default model's data
JPEG_QUALITY = 95


def generate_sample(seed: int, index: int, size: int = 256,
                    real_fraction: float = DEFAULT_REAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Sample `index` of the dataset with `seed`: (RGB uint8 [size, size, 3], raw ids uint8 [size, size])."""
    rng = np.random.default_rng([int(seed), int(index)])
    if rng.random() < real_fraction and load_annotations():
        return real_sample(rng, size)
    return composite(rng, size)


def palette_entries() -> list[dict]:
    return [{"name": label.name, "id": label.id, "color": rgb_to_hex(label.color)} for label in landscape_labels().labels]


def write_palette(path: Path) -> None:
    lines = [f"- {{name: {e['name']}, id: {e['id']}, color: \"{e['color']}\"}}" for e in palette_entries()]
    atomic_write_text(path, "\n".join(lines) + "\n")


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
        warnings.warn("no annotated photos in the assets: writing composites only", stacklevel=2)
    from tqdm import tqdm

    width = max(5, len(str(start + n - 1)))
    image_options = ({"format": "JPEG", "quality": JPEG_QUALITY} if image_format == "jpg"
                     else {"format": "PNG", "optimize": False, "compress_level": 6})
    for i in tqdm(range(start, start + n), desc="make-landscapes", unit="img", disable=not progress):
        img, lab = generate_sample(seed, i, size, real_fraction)
        name = f"{i:0{width}d}"
        save_image(out / "images" / f"{name}.{image_format}", img, **image_options)
        save_image(out / "labels" / f"{name}.png", lab, format="PNG", optimize=False, compress_level=6)
    write_palette(out / "palette.yaml")
    atomic_write_bytes(out / "CREDITS.md", (landscapes_dir() / "CREDITS.md").read_bytes())
    return out


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
