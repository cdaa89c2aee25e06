"""The real held-out photos: labelled landscape photographs that no training data uses, neither
as (photo, label map) pairs nor as a texture source. `spadekit data heldout-photos --out DIR`
writes them as a folder dataset for `spadekit eval`:

  DIR/images/<id>.jpg   the photo (JPEG, at most 1024 px wide, the resolution it was labelled at)
  DIR/labels/<id>.png   8-bit single-channel PNG of raw landscape ids, one per photo pixel
  DIR/palette.yaml      the landscape label set
  DIR/CREDITS.md        source package, path, author and licence of every photo

The committed assets (`spadekit/assets/heldout/`: photos/, annotations.json with dense polygon
labels, CREDITS.md) are built by `tools/build_heldout_assets.py`; nothing is downloaded.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from spadekit import SpadekitError
from spadekit.fileio import atomic_write_bytes, atomic_write_text
from spadekit.imageio import png_bytes

UNLABELLED = 255  # not a landscape id: marks pixels no polygon covers


def heldout_dir() -> Path:
    """The committed held-out assets inside the package."""
    return Path(str(resources.files("spadekit") / "assets" / "heldout"))


def load_heldout_annotations(folder: Path | None = None) -> list[dict]:
    """[{"id", "photo", "size": [w, h], "source": {...}, "polygons": [...]}], sorted by id."""
    path = (folder or heldout_dir()) / "annotations.json"
    if not path.is_file():
        raise SpadekitError(f"{path}: the held-out annotations are missing from this installation; reinstall spadekit from a full checkout")
    try:
        entries = json.loads(path.read_text())["photos"]
    except (ValueError, KeyError, TypeError) as error:
        raise SpadekitError(f"{path}: not a valid annotation file ({error}); reinstall spadekit from a full checkout") from None
    return sorted(entries, key=lambda e: e["id"])


def heldout_label_map(entry: dict) -> np.ndarray:
    """Raw-id label map [h, w] uint8 of one held-out photo: its polygons painted in order, later on
    top, in pixels of the photo; every pixel must be covered."""
    from spadekit.labels import landscape_labels

    ids = {label.name: label.id for label in landscape_labels().labels}
    width, height = entry["size"]
    canvas = Image.new("L", (width, height), UNLABELLED)
    draw = ImageDraw.Draw(canvas)
    for k, polygon in enumerate(entry["polygons"]):
        if polygon["class"] not in ids:
            raise SpadekitError(f"held-out annotations: {entry['id']}: polygon {k} has unknown class {polygon['class']!r}")
        draw.polygon([tuple(point) for point in polygon["points"]], fill=ids[polygon["class"]])
    array = np.asarray(canvas, dtype=np.uint8)
    if (array == UNLABELLED).any():
        raise SpadekitError(f"held-out annotations: {entry['id']}: polygons leave {(array == UNLABELLED).sum()} pixels unlabelled")
    return array


def palette_yaml() -> str:
    """The landscape label set as a folder dataset's palette.yaml: [{name, id, color}]."""
    from spadekit.labels import landscape_labels, rgb_to_hex

    return "".join(f'- {{name: {label.name}, id: {label.id}, color: "{rgb_to_hex(label.color)}"}}\n' for label in landscape_labels().labels)


def write_heldout_photos(out: str | Path, progress: bool = True) -> list[str]:
    """Write the held-out set to `out` as a folder dataset (module docstring). Returns the photo ids."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpadekitError(f"--out {out} exists and is not a folder; choose another --out")
    source = heldout_dir()
    entries = load_heldout_annotations(source)
    ids = {e["id"] for e in entries}
    for sub in ("images", "labels"):
        # Other files there would join the evaluation as if they were held-out photos.
        strangers = sorted(p.name for p in (out / sub).glob("*") if not p.name.startswith(".") and p.stem not in ids)
        if strangers:
            raise SpadekitError(f"{out / sub} holds files that are not held-out photos ({', '.join(strangers[:3])}); "
                                "give an empty or new --out folder")
    for entry in tqdm(entries, desc="heldout-photos", unit="photo", disable=not progress):
        photo = source / entry["photo"]
        if not photo.is_file():
            raise SpadekitError(f"{photo}: a held-out photo is missing from this installation; reinstall spadekit from a full checkout")
        with Image.open(photo) as image:
            if list(image.size) != list(entry["size"]):
                raise SpadekitError(f"{photo}: {image.size[0]}x{image.size[1]} pixels, but its labels are drawn on "
                                    f"{entry['size'][0]}x{entry['size'][1]}; reinstall spadekit from a full checkout")
        labels = heldout_label_map(entry)
        atomic_write_bytes(out / "images" / f"{entry['id']}.jpg", photo.read_bytes())
        atomic_write_bytes(out / "labels" / f"{entry['id']}.png", png_bytes(Image.fromarray(labels, mode="L")))
    atomic_write_text(out / "palette.yaml", palette_yaml())
    atomic_write_bytes(out / "CREDITS.md", (source / "CREDITS.md").read_bytes())
    return [e["id"] for e in entries]


# ---------------------------------------------------------------------------- CLI
def add_heldout_photos_parser(data_subparsers) -> None:
    """Add `heldout-photos` to the `spadekit data` sub-command group."""
    parser = data_subparsers.add_parser(
        "heldout-photos",
        help="write the bundled real held-out photos (never used in training) as a folder dataset",
        description="Write the labelled real photos that no training data uses as DIR/images/*.jpg, DIR/labels/*.png "
                    "(raw landscape ids), DIR/palette.yaml and DIR/CREDITS.md, for `spadekit eval --data DIR`. "
                    "Nothing is downloaded.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    ids = write_heldout_photos(args.out)
    print(f"wrote {len(ids)} held-out photos to {args.out}")
    return 0
