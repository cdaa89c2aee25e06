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
  Enlightenment backgrounds are `.edj` archives; the script stores their `img.png` (from
  edje_decc) as PACKAGES/enlightenment-data/<Name>.png. gimp-help-en's copyright file comes from
  gimp-help-common (PACKAGES/gimp-help-common/usr/share/doc/gimp-help-common/copyright).

Output (DIR, default the package's assets/heldout/): photos/<ID>.jpg (JPEG q95, the labelled
resolution), annotations.json (the polygons with each photo's source package, version, path and
crop) and CREDITS.md (package, version, path, author, licence per photo).
"""
from __future__ import annotations

import argparse
import fnmatch
import io
import json
import re
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

# How each package states authors and licences. "copyright" is relative to PACKAGES. A DEP-5
# (machine-readable) copyright file is searched for the Files block that matches the photo's path
# in the source tree ("source_path"); the others are plain text, read by hand and checked here for
# the words that carry the facts ("must_hold").
PACKAGE_FACTS = {
    "enlightenment-data": {
        "version": "0.25.4-2", "copyright": "enlightenment-data/copyright", "dep5": True,
        "source_path": lambda path: path,
    },
    "gimp-help-en": {
        # gimp-help-en's copyright file is gimp-help-common's (`apt-get download gimp-help-common`).
        "version": "2.10.34-2", "copyright": "gimp-help-common/usr/share/doc/gimp-help-common/copyright", "dep5": True,
        "source_path": lambda path: path,
    },
    "torcs-data": {
        "version": "1.3.7+dfsg-5", "copyright": "torcs-data/usr/share/doc/torcs-data/copyright", "dep5": True,
        "source_path": lambda path: path.replace("usr/share/games/torcs/", "data/", 1),
    },
    "lxqt-themes": {
        # wallpapers/License: CC-BY-SA-3.0; photos by stefonarch: beam, flowers, butterfly, fog,
        # not-windows, appleflowers, after-the-rain, drop. Valendas and cloud are credited to nobody.
        "version": "1.2.0-1", "copyright": "lxqt-themes/usr/share/lxqt/wallpapers/License",
        "must_hold": ["by-sa/3.0", "stefonarch", "beam", "not-windows"], "licence": "CC-BY-SA-3.0",
        "author": {"beam.png": "stefonarch", "this-is-not-windows.jpg": "stefonarch"},
        "default_author": "LXQt Project Team (the photographer is not named in wallpapers/License)",
    },
    "scribus-template": {
        # "Scribus templates by Riku Leino listed above [br2 among them] ... placed into public domain".
        "version": "1.2.4.1-6", "copyright": "scribus-template/usr/share/doc/scribus-template/copyright",
        "must_hold": ["Riku Leino", "(br2)", "placed into public domain"], "licence": "public domain",
        "default_author": "Riku Leino",
    },
}


def fail(message: str) -> None:
    sys.exit(f"build_heldout_assets: {message}")


def package_path(package: str, path: str) -> str:
    """The file's path inside the .deb (an Enlightenment background is an .edj archive holding img.png)."""
    if package == "enlightenment-data":
        return f"usr/share/enlightenment/data/backgrounds/{Path(path).stem}.edj"
    return path


def extracted_file(packages: Path, package: str, path: str) -> Path:
    """Where the extracted image lies under PACKAGES (edje_decc's img.png is stored as <Name>.png)."""
    if package == "enlightenment-data":
        return packages / package / f"{Path(path).stem}.png"
    return packages / package / path


def dep5_blocks(text: str) -> list[dict[str, str]]:
    """The paragraphs of a DEP-5 copyright file as {field: value} (continuation lines joined)."""
    blocks = []
    for paragraph in text.split("\n\n"):
        fields, name = {}, None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and name:
                fields[name] += "\n" + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                fields[name.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def holders(copyright_field: str) -> str:
    """'2000, Eric Espie <e@x>\n2002, Someone' -> 'Eric Espie, Someone' (years and e-mails dropped)."""
    names = []
    for line in copyright_field.splitlines():
        name = re.sub(r"<[^>]*>", "", line)
        name = re.sub(r"^[\d\s,.\-]*(by\s+)?", "", name).strip(" ,.")
        if name:
            names.append(name)
    if len(names) > 2:
        # A long list (translators and the like): the first holder stands for them.
        return names[0] if "contributors" in names[0] else f"{names[0]} and others"
    return ", ".join(names)


def author_and_licence(packages: Path, package: str, path: str) -> tuple[str, str]:
    facts = PACKAGE_FACTS[package]
    copyright_file = packages / facts["copyright"]
    if not copyright_file.is_file():
        fail(f"{copyright_file}: the copyright file of {package} is missing")
    text = copyright_file.read_text(errors="replace")
    if not facts.get("dep5"):
        missing = [words for words in facts["must_hold"] if words.lower() not in text.lower()]
        if missing:
            fail(f"{copyright_file}: does not say {missing}; check the author and licence of {path} again")
        return facts.get("author", {}).get(Path(path).name, facts["default_author"]), facts["licence"]
    # DEP-5: the last Files block matching the file's source path holds its copyright and licence.
    source = facts["source_path"](path)
    found = None
    for block in dep5_blocks(text):
        patterns = block.get("Files", "").split()
        if any(fnmatch.fnmatchcase(source, pattern) for pattern in patterns):
            found = block
    if found is None or "Copyright" not in found or "License" not in found:
        fail(f"{copyright_file}: no Files block with Copyright and License matches {source}")
    return holders(found["Copyright"]), found["License"].splitlines()[0].strip()


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
        inside = package_path(package, path)
        author, licence = author_and_licence(args.packages, package, inside)

        # Photo: exactly the labelled pixels, stored once as JPEG.
        image = labelled_image(extracted_file(args.packages, package, path), label.get("crop"), label["size"])
        photo_name = f"photos/{photo_id}.jpg"
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        atomic_write_bytes(args.out / photo_name, buffer.getvalue())

        fractions = check_polygons(photo_id, label)
        entries.append({
            "id": photo_id,
            "photo": photo_name,
            "size": label["size"],
            "source": {"package": package, "version": facts["version"], "path": inside, "crop": label.get("crop"),
                       "author": author, "licence": licence},
            "note": label.get("note", ""),
            "polygons": label["polygons"],
        })
        crop = "" if not label.get("crop") else f" (crop {', '.join(f'{v:.3f}' for v in label['crop'])})"
        inside_text = f"`{inside}` (img.png inside)" if inside.endswith(".edj") else f"`{inside}`"
        rows.append(f"| {photo_id} | {package} ({facts['version']}) | {inside_text}{crop} | {author} | {licence} |")
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
        "Licences are those of the source files, as the package's copyright file states them; the copies",
        "keep them (attribution below; the source of each copy is the named package file). The polygon",
        "labels in `annotations.json` are spadekit's own. No training data (pairs, textures, style photos)",
        "uses these sources.",
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
