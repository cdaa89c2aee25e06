"""Sample grid of docs/reproduction.md: one row per held-out label map, columns label | real | models.

    python tools/reproduction_grid.py --data data/landscapes_val --out docs/images/reproduction_samples.png \
        SPADE=runs/repro_spade_s0/final pix2pixHD++=runs/repro_pix2pixhd_s0/final concat=runs/repro_concat_s0/final

Label maps and photos are loaded exactly as `spadekit eval` loads them (fixed resize to the models'
output size, no flip); every model sees the same maps.
"""
from __future__ import annotations

import argparse
import sys

import torch
from PIL import Image, ImageDraw

from spadekit import SpadekitError
from spadekit.eval.report import eval_dataset
from spadekit.imageio import colorize, save_image, to_pil
from spadekit.inference import Pipeline
from spadekit.visualize import contact_sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=FOLDER", help="column title and model folder, in column order")
    parser.add_argument("--data", required=True, help="dataset root (folder layout)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--indices", default="0,1,2,3,4,5", help="comma-separated indices of the label maps (rows)")
    parser.add_argument("--tile", type=int, default=128, help="tile height in pixels")
    args = parser.parse_args(argv)
    try:
        columns = []
        for spec in args.models:
            name, sep, folder = spec.partition("=")
            if not sep or not name or not folder:
                raise SpadekitError(f"model {spec!r} is not of the form NAME=FOLDER")
            columns.append((name, Pipeline.from_pretrained(folder, fast=False)))
        sizes = {pipe.size for _, pipe in columns}
        if len(sizes) != 1:
            raise SpadekitError(f"the models have different output sizes {sorted(sizes)}; a grid needs one size")
        first = columns[0][1]
        dataset = eval_dataset("folder", args.data, None, first.size, first.labels)
        indices = [int(i) for i in args.indices.split(",")]
        bad = [i for i in indices if not 0 <= i < len(dataset)]
        if bad:
            raise SpadekitError(f"--indices {bad} out of range: {args.data} has {len(dataset)} pairs")
        items = [dataset[i] for i in indices]
        label = torch.stack([item["label"] for item in items])
        rows = [[colorize(first.labels.to_ids(item["label"][0].numpy()), first.labels), to_pil(item["image"][None])[0]] for item in items]
        for _, pipe in columns:
            with torch.no_grad():
                images = pipe.generate(pipe.model.semantic(label), None)
            for row, image in zip(rows, to_pil(images)):
                row.append(image)
    except SpadekitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    sheet = contact_sheet(rows, tile=args.tile)
    # Column titles in a strip above the grid (contact_sheet's gap is 4 px, tiles are square).
    titles = ["label", "real"] + [name for name, _ in columns]
    header = Image.new("RGB", (sheet.width, 16), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for c, title in enumerate(titles):
        draw.text((4 + c * (args.tile + 4) + 2, 2), title, fill=(0, 0, 0))
    out = Image.new("RGB", (sheet.width, sheet.height + header.height), (255, 255, 255))
    out.paste(header, (0, 0))
    out.paste(sheet, (0, header.height))
    path = save_image(args.out, out)
    print(f"grid of {len(rows)} label maps x {len(columns)} models written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
