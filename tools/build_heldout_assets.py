"""Build the real held-out photos (`src/spadekit/assets/heldout/`) from hand-drawn labels and
the Debian package files they were drawn on. Run by hand when the held-out labels change; the
package never runs it.

    python tools/build_heldout_assets.py --labels LABELS --packages PACKAGES [--out DIR] [--ids ID ...]

Inputs
- LABELS/<ID>.json, one per held-out photo: {"photo": ID, "source": "PACKAGE:PATH", "crop":
  [x0, y0, x1, y1] (fractions of the source image) or null, "size": [w, h], "polygons":
  [{"class", "points": [[x, y], ...]}], "note"}. Points are pixels of the labelled image: the
  source file, cropped, then shrunk (Lanczos) to at most 1024 px wide. Polygons are painted in
  order, later on top, and must cover every pixel.
- PACKAGES/<PACKAGE>/PATH: the package files as `extract_more_photos.sh` (the landscape-sources
  notes) extracts them, each package's copyright file beside them (PACKAGE_FACTS below says where).
  Enlightenment backgrounds are `.edj` files; the script stores their `img.png` (from edje_decc)
  as PACKAGES/enlightenment-data/<Name>.png.

Output (DIR, default the package's assets/heldout/): photos/<ID>.jpg (JPEG q95, the labelled
resolution), annotations.json (the polygons with each photo's source package, version, path and
crop) and CREDITS.md (package, version, path, author, licence per photo).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from spadekit.data.labels import landscape_labels  # noqa: E402
from spadekit.fileio import atomic_write_bytes, atomic_write_text  # noqa: E402

# The held-out photos: no training pair, texture or style photo may come from these sources.
HELDOUT_IDS = (
    "EN_peaks", "EN_snowtrees", "GH_orchard", "GH_powerlines", "LQ_beam", "LQ_valendas", "LQ_windows",
    "SC_nature", "SC_sunset", "TO_dirt3", "TO_wheel2",
)
MAX_WIDTH = 1024
JPEG_QUALITY = 95

# package -> version, its copyright file (under PACKAGES/<package>/), the text that file must hold
# for the licence, the licence, and the author of its photos (from that file).
PACKAGE_FACTS = {
    "lxqt-themes": {
        "version": "1.2.0-1", "copyright": "usr/share/lxqt/wallpapers/License", "must_hold": "by-sa/3.0",
        "licence": "CC-BY-SA-3.0",
        # The License file credits stefonarch with beam, flowers, butterfly, fog, not-windows,
        # appleflowers, after-the-rain and drop; Valendas and cloud are credited to nobody by name.
        "author": {"Valendas.png": "LXQt Project Team (photographer not named)", "cloud.png": "LXQt Project Team (photographer not named)"},
        "default_author": "stefonarch",
    },
    "enlightenment-data": {
        "version": "0.25.4-2", "copyright": "copyright", "must_hold": "BSD-2-clause", "licence": "BSD-2-clause",
        "default_author": "Carsten Haitzler and the Enlightenment contributors (no per-photo credit)",
    },
    "gimp-help-en": {
        "version": "2.10.34-2", "copyright": "usr/share/doc/gimp-help-en/copyright", "must_hold": "GFDL",
        "licence": "GFDL-1.2+", "default_author": "The GIMP Documentation Team",
    },
    "scribus-template": {
        "version": "1.2.4.1-6", "copyright": "usr/share/doc/scribus-template/copyright", "must_hold": "public domain",
        "licence": "public domain", "default_author": "Riku Leino",
    },
    "torcs-data": {
        "version": "1.3.7+dfsg-5", "copyright": "usr/share/doc/torcs-data/copyright", "must_hold": "GPL-2",
        "licence": "GPL-2+", "default_author": "the TORCS data authors (Bernhard Wymann, Eric Espie, Christophe Guionneau and others)",
    },
}


def fail(message: str) -> None:
    sys.exit(f"build_heldout_assets: {message}")


def package_path(package: str, path: str) -> str:
    """The file's path inside the .deb (Enlightenment's image sits inside an .edj archive)."""
    if package == "enlightenment-data":
        return f"usr/share/enlightenment/data/backgrounds/{Path(path).stem}.edj (img.png inside)"
    return path


def labelled_image(source: Path, crop, expected_size) -> Image.Image:
    """The image the labels were drawn on: the source, cropped, shrunk to MAX_WIDTH (Lanczos)."""
    image = Image.open(source).convert("RGB")
    if crop:
        x0, y0, x1, y1 = crop
        w, h = image.size
        image = image.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.LANCZOS)
    if list(image.size) != list(expected_size):
        fail(f"{source}: the labelled image would be {image.size}, the labels say {expected_size}")
    return image


def check_polygons(photo_id: str, entry: dict) -> dict[str, float]:
    """Every class known, every pixel covered; returns the class fractions."""
    names = landscape_labels().names
    w, h = entry["size"]
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    for k, polygon in enumerate(entry["polygons"]):
        if polygon["class"] not in names:
            fail(f"{photo_id}: polygon {k} has unknown class {polygon['class']!r}")
        draw.polygon([tuple(p) for p in polygon["points"]], fill=names.index(polygon["class"]))
    histogram = canvas.histogram()
    if histogram[255]:
        fail(f"{photo_id}: {histogram[255]} pixels are not covered by any polygon")
    return {names[i]: round(n / (w * h), 3) for i, n in enumerate(histogram[: len(names)]) if n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", required=True, type=Path, help="folder of <ID>.json label files")
    parser.add_argument("--packages", required=True, type=Path, help="folder of extracted package files, one subfolder per package")
    parser.add_argument("--out", type=Path, default=REPO / "src/spadekit/assets/heldout")
    parser.add_argument("--ids", nargs="+", default=list(HELDOUT_IDS), help="held-out photo ids (default: the fixed list)")
    args = parser.parse_args()

    entries, rows = [], []
    for photo_id in sorted(args.ids):
        label_file = args.labels / f"{photo_id}.json"
        if not label_file.is_file():
            fail(f"{label_file}: no labels for held-out photo {photo_id}")
        label = json.loads(label_file.read_text())
        package, _, path = label["source"].partition(":")
        if package not in PACKAGE_FACTS or not path:
            fail(f"{label_file}: source {label['source']!r} is not PACKAGE:PATH of a known package ({', '.join(PACKAGE_FACTS)})")
        facts = PACKAGE_FACTS[package]
        copyright_file = args.packages / package / facts["copyright"]
        if not copyright_file.is_file() or facts["must_hold"].lower() not in copyright_file.read_text(errors="replace").lower():
            fail(f"{copyright_file}: missing, or does not state the licence ({facts['must_hold']!r})")

        # Photo: exactly the labelled pixels, stored once as JPEG.
        image = labelled_image(args.packages / package / path, label.get("crop"), label["size"])
        photo_name = f"photos/{photo_id}.jpg"
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        atomic_write_bytes(args.out / photo_name, buffer.getvalue())

        fractions = check_polygons(photo_id, label)
        inside = package_path(package, path)
        entries.append({
            "id": photo_id,
            "photo": photo_name,
            "size": label["size"],
            "source": {"package": package, "version": facts["version"], "path": inside, "crop": label.get("crop")},
            "note": label.get("note", ""),
            "polygons": label["polygons"],
        })
        author = facts.get("author", {}).get(Path(path).name, facts["default_author"])
        crop = "" if not label.get("crop") else f" (crop {', '.join(f'{v:.3f}' for v in label['crop'])})"
        rows.append(f"| {photo_id} | {package} ({facts['version']}) | `{inside}`{crop} | {author} | {facts['licence']} |")
        print(photo_id, label["size"], fractions)

    about = ("Real held-out photos for `spadekit eval`: dense hand-drawn polygon labels in pixel coordinates of "
             "photos/<id>.jpg, painted in order (later on top; the first covers the frame). No training data "
             "uses these sources. Built by tools/build_heldout_assets.py.")
    atomic_write_text(args.out / "annotations.json", json.dumps({"about": about, "photos": entries}, indent=1) + "\n")
    credits = [
        "# Credits: held-out photos",
        "",
        "Every photo under `spadekit/assets/heldout/photos/` is a copy, at most 1024 px wide, of a",
        "photograph shipped by the Debian package named below (built by `tools/build_heldout_assets.py`).",
        "Licences are those of the source files; the copies keep them (CC-BY-SA: attribution below;",
        "GPL / GFDL: the source is the named package file). The polygon labels in `annotations.json`",
        "are spadekit's own. No training data (pairs, textures, style photos) uses these sources.",
        "",
        "| photo | package (version) | path in package | author | licence |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    atomic_write_text(args.out / "CREDITS.md", "\n".join(credits))
    print(f"wrote {len(entries)} held-out photos to {args.out}")


if __name__ == "__main__":
    main()
