"""Measure an upscaler on the held-out photo crops against bicubic (spadekit.upscale.evaluate), and
optionally draw the docs' comparison of a generated image enlarged 256 -> 1024.

    python tools/eval_upscaler.py                                   # the bundled upscaler-x4, all crops
    python tools/eval_upscaler.py --model runs/upscaler/export --per-photo 1 --crops 4 --json report.json
    python tools/eval_upscaler.py --comparison docs/images/upscale_comparison.jpg

Prints one table row per input variant (clean 4x bicubic shrink, degraded: blur + noise + JPEG) and
whether the bar holds: LPIPS at least 20% below bicubic's and PSNR not below bicubic's.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw

from spadekit import SpadekitError
from spadekit.fileio import atomic_write_text
from spadekit.imageio import save_image
from spadekit.upscale import BUNDLED_UPSCALER, load_upscaler, upscale_array
from spadekit.upscale.evaluate import bicubic_upscale, evaluate_upscaler
from spadekit.upscale.patches import heldout_crops

LPIPS_REDUCTION_BAR = 0.20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=BUNDLED_UPSCALER, help="upscaler folder, or the bundled upscaler-x4")
    parser.add_argument("--crops", type=int, default=None, help="use only the first N crops (default: all)")
    parser.add_argument("--crop-size", type=int, default=256, help="side of the held-out crops (the target)")
    parser.add_argument("--per-photo", type=int, default=2, help="crops of each held-out photo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--comparison", default=None, help="write a bicubic | upscaler picture of a generated image here")
    parser.add_argument("--painting", default="lake", help="bundled painting the comparison's image is generated from")
    return parser.parse_args(argv)


def comparison_picture(model, painting: str, crop: int = 384) -> Image.Image:
    """The default model's image of a bundled painting, 256 -> 1024 by bicubic (left) and the upscaler
    (right); the same `crop` x `crop` window of each, from the 1024x1024 results, with labels."""
    from spadekit.inference import Pipeline
    from spadekit.landscapes.paintings import paintings_dir

    pipe = Pipeline.from_pretrained("default")
    image = np.asarray(pipe(str(paintings_dir() / f"{painting}.png"), seed=0)[0].convert("RGB"))
    results = {"bicubic": bicubic_upscale(image, 4), "upscaler-x4": upscale_array(model, image, 4)}
    top, left = (1024 - crop) // 2, (1024 - crop) // 2
    canvas = Image.new("RGB", (2 * crop + 8, crop + 24), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (name, result) in enumerate(results.items()):
        canvas.paste(Image.fromarray(result[top : top + crop, left : left + crop]), (k * (crop + 8), 24))
        draw.text((k * (crop + 8) + 4, 6), f"{name} (256 -> 1024, centre {crop}x{crop})", fill="black")
    return canvas


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from spadekit.eval.diversity import LPIPS

    model = load_upscaler(args.model)
    if args.comparison:
        path = save_image(args.comparison, comparison_picture(model, args.painting), quality=90)
        print(f"wrote {path}")
    crops = [crop for _, crop in heldout_crops(args.crop_size, per_photo=args.per_photo)]
    crops = crops[: args.crops] if args.crops else crops
    report = evaluate_upscaler(model, crops, LPIPS())
    report.update(num_crops=len(crops), crop_size=args.crop_size, per_photo=args.per_photo, model=str(args.model))
    print(f"{'input':10s} {'LPIPS bicubic':>14s} {'LPIPS model':>12s} {'reduction':>10s} {'PSNR bicubic':>13s} {'PSNR model':>11s}  bar")
    passed = True
    for variant in ("clean", "degraded"):
        row = report[variant]
        ok = row["lpips_reduction"] >= LPIPS_REDUCTION_BAR and row["psnr_gain"] >= 0
        passed &= ok
        print(f"{variant:10s} {row['bicubic']['lpips']:14.4f} {row['model']['lpips']:12.4f} {row['lpips_reduction']:10.1%} "
              f"{row['bicubic']['psnr']:13.2f} {row['model']['psnr']:11.2f}  {'pass' if ok else 'FAIL'}")
    print(f"{len(crops)} held-out crops of {args.crop_size}x{args.crop_size}; bar: LPIPS >= {LPIPS_REDUCTION_BAR:.0%} lower, "
          f"PSNR not lower: {'pass' if passed else 'FAIL'}")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpadekitError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
