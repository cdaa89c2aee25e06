"""`spadekit eval --model M [--compare M2 ...] --data ROOT --out report.json`: FID, KID, mIoU, pixel
accuracy, diversity; on real photos also reconstruction and sharpness (docs/evaluation.md)."""
from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from spadekit import SpadekitError

REAL_SEGMENTER = "pretrained/segmenter-real"
# Folder photos whose shorter side exceeds the model's frame by this factor are evaluated on crops.
CROP_FACTOR = 1.25


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure models on a dataset: FID, KID, mIoU, pixel accuracy, LPIPS diversity, reconstruction, sharpness",
        description=(
            "Generate images from the label maps of a dataset split and compare them with the real photos: FID/KID "
            "(TF Inception, clean-fid resizing, real features cached), mIoU and pixel accuracy of a segmenter run on "
            "the generated images, and mean pairwise LPIPS across seeds (multimodal models). Folders of photos larger "
            "than the model's frame (such as `spadekit data heldout-photos`) are cut into many crops per photo, and "
            "models with an image encoder are also scored on reconstruction (each crop as its own style image: LPIPS, "
            "PSNR) and sharpness (mean |Laplacian|). --compare measures more models on the same crops and seeds. "
            "See docs/evaluation.md."
        ),
    )
    parser.add_argument("--model", required=True, help="model folder, or 'default' for the bundled landscape model")
    parser.add_argument("--compare", nargs="+", default=[], metavar="MODEL", help="more models measured in the same run, side by side")
    parser.add_argument("--data", required=True, help="dataset root folder")
    parser.add_argument("--dataset", default="folder", help="layout: folder (default), ade20k, ade20k-outdoor, coco-stuff, cityscapes")
    parser.add_argument("--split", default=None, help="split to evaluate (default: val when present, else train)")
    parser.add_argument("--out", required=True, help="report file (.json); a sample sheet is written next to it")
    parser.add_argument("--segmenter", default=None,
                        help="segmenter: folder from `spadekit train-segmenter`, TorchScript .pt or .onnx (default: the bundled "
                             "real-photo segmenter for landscape models, else the model folder's segmenter/ when present)")
    parser.add_argument("--crops", type=int, default=None, metavar="N",
                        help="crops per photo (default 16 for folders of photos larger than the model's frame; 0 = one whole image per label map)")
    parser.add_argument("--crop-scales", default=None, metavar="S,S,...",
                        help="crop sizes as fractions of the largest crop that fits each photo (default 1,0.75,0.5,0.35)")
    parser.add_argument("--num-seeds", type=int, default=None,
                        help="images per label map or crop for the diversity score (>= 2 to measure it; default 4 on crops, 1 on whole images)")
    parser.add_argument("--diversity-maps", type=int, default=50, help="label maps (or crops) used for diversity (each costs num_seeds images)")
    parser.add_argument("--reconstruction", action=argparse.BooleanOptionalAction, default=True,
                        help="on crops: score models with an image encoder on each crop as its own style image (default on)")
    parser.add_argument("--samples", type=int, default=None, help="rows of the sample sheet (default 6 crops, or 4 label maps)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N label maps (photos, on crops)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resize", default="clean", choices=["clean", "pytorch-fid"], help="resizing to 299x299 for Inception (default clean-fid's)")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--reference-cache", default=None, metavar="DIR",
                        help="folder of cached real-image features (default: $SPADEKIT_CACHE/fid_refs)")
    parser.add_argument("--no-reference-cache", action="store_true", help="do not read or write cached real-image features")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def default_segmenter(model_dir: Path) -> Path | None:
    """The segmenter shipped inside a model folder (`segmenter/`), if any."""
    folder = model_dir / "segmenter"
    return folder if (folder / "config.json").is_file() else None


def real_photo_segmenter() -> Path | None:
    """The bundled segmenter trained on real landscape photos only, if this installation has it."""
    folder = Path(str(resources.files("spadekit").joinpath(REAL_SEGMENTER)))
    return folder if (folder / "config.json").is_file() else None


def segmenter_name(path: Path) -> str:
    """How a report names the segmenter: a bundled one by its place in the package (the same on every
    installation), any other by the path given."""
    package = Path(str(resources.files("spadekit"))).resolve()
    try:
        return f"spadekit/{path.resolve().relative_to(package).as_posix()}"
    except ValueError:
        return str(path)


def choose_segmenter(model_dir: Path, labels) -> Path | None:
    """The default segmenter: the real-photo one for models of the landscape label set, else the model folder's."""
    from spadekit.labels import landscape_labels

    bundled = real_photo_segmenter()
    landscape = landscape_labels()
    if bundled is not None and labels.names == landscape.names and labels.ids == landscape.ids:
        return bundled
    return default_segmenter(model_dir)


def use_crops(dataset, size: tuple[int, int]) -> bool:
    """Folder photos larger than the model's frame (median shorter side > CROP_FACTOR x its height)."""
    import numpy as np
    from PIL import Image

    if dataset.name != "folder" or not dataset.samples:
        return False
    shorter = []
    for sample in dataset.samples[:32]:
        with Image.open(sample.image) as image:
            shorter.append(min(image.size))
    return float(np.median(shorter)) > CROP_FACTOR * min(size)


def _scales(text: str | None):
    from spadekit.eval.crops import DEFAULT_SCALES, check_scales

    if text is None:
        return DEFAULT_SCALES
    try:
        return check_scales(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SpadekitError(f"--crop-scales {text!r}: give fractions separated by commas, e.g. 1,0.75,0.5,0.35") from None


def run(args) -> int:
    from spadekit.eval.report import eval_dataset, evaluate
    from spadekit.eval.segmentation import load_segmenter
    from spadekit.fileio import atomic_write_text
    from spadekit.imageio import save_image
    from spadekit.inference import Pipeline, resolve_model_path

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise SpadekitError(f"--out {out}: the report is a JSON file; give a name ending in .json")
    if args.limit is not None and args.limit < 1:
        raise SpadekitError(f"--limit must be at least 1, got {args.limit}")
    if args.crops is not None and args.crops < 0:
        raise SpadekitError(f"--crops must be 0 (whole images) or more, got {args.crops}")
    names = [args.model, *args.compare]
    if len(set(names)) < len(names):
        raise SpadekitError(f"a model is named twice in --model / --compare ({', '.join(names)})")
    scales = _scales(args.crop_scales)
    model_dirs = {name: resolve_model_path(name) for name in names}
    pipes = {name: Pipeline.from_pretrained(path, device=args.device, dtype="float32", batch_size=args.batch_size)
             for name, path in model_dirs.items()}
    first = pipes[args.model]
    segmenter_path = Path(args.segmenter) if args.segmenter else choose_segmenter(model_dirs[args.model], first.labels)
    segmenter = load_segmenter(segmenter_path, args.device) if segmenter_path else None
    dataset = eval_dataset(args.dataset, args.data, args.split, first.size, first.labels, args.limit)
    crops = args.crops if args.crops is not None else (16 if use_crops(dataset, first.size) else 0)
    common = dict(segmenter=segmenter, segmenter_name=segmenter_name(segmenter_path) if segmenter_path else None, seed=args.seed,
                  inception=_inception(args), kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, batch_size=args.batch_size,
                  reference_cache=False if args.no_reference_cache else args.reference_cache)

    if crops > 0:
        from spadekit.eval.photos import DEFAULT_NUM_SEEDS, evaluate_photos

        report, sheet = evaluate_photos(
            pipes, dataset, crops_per_photo=crops, scales=scales,
            num_seeds=DEFAULT_NUM_SEEDS if args.num_seeds is None else args.num_seeds,
            diversity_crops=args.diversity_maps, reconstruction=args.reconstruction,
            samples=6 if args.samples is None else args.samples, **common,
        )
        text = photos_summary(report)
    else:
        if args.limit is not None and args.limit < 2:
            raise SpadekitError(f"--limit must be at least 2 (FID needs two images), got {args.limit}")
        reports, sheets = [], []
        for name, pipe in pipes.items():
            one, sheet = evaluate(
                pipe, dataset, num_seeds=1 if args.num_seeds is None else args.num_seeds, diversity_maps=args.diversity_maps,
                samples=4 if args.samples is None else args.samples, **common,
            )
            one["model"] = name
            reports.append(one)
            sheets.append(sheet)
        report = reports[0] if len(reports) == 1 else {"protocol": "whole-images", "models": reports}
        sheet = sheets[0] if len(sheets) == 1 else _stack([s for s in sheets if s is not None])
        text = "\n\n".join(f"{r['model']}\n{summary(r)}" if len(reports) > 1 else summary(r) for r in reports)

    out.parent.mkdir(parents=True, exist_ok=True)
    if sheet is not None:
        sheet_path = out.with_name(out.stem + "_samples.png")
        save_image(sheet_path, sheet, format="PNG")
        report["samples"] = str(sheet_path)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(text)
    print(f"report: {out}")
    return 0


def _stack(sheets):
    from PIL import Image

    if not sheets:
        return None
    canvas = Image.new("RGB", (max(s.width for s in sheets), sum(s.height for s in sheets)), (255, 255, 255))
    y = 0
    for sheet in sheets:
        canvas.paste(sheet, (0, y))
        y += sheet.height
    return canvas


def _inception(args):
    from spadekit.eval.fid import InceptionFeatures

    return InceptionFeatures(resize=args.resize, device=args.device, batch_size=args.batch_size)


def summary(report: dict) -> str:
    """The console lines of a whole-image report of one model."""
    lines = [f"{report['num_images']} images ({report['dataset']} {report['split']}, {report['image_size'][1]}x{report['image_size'][0]})",
             f"FID {report['fid']:.2f}   KID {report['kid']['mean'] * 1000:.2f} x 1e-3 (std {report['kid']['std'] * 1000:.2f})"]
    seg = report.get("segmentation")
    if seg:
        lines.append(f"mIoU {100 * seg['miou']:.1f}   pixel accuracy {100 * seg['pixel_accuracy']:.1f}   "
                     f"(real photos: {100 * seg['real_miou']:.1f} / {100 * seg['real_pixel_accuracy']:.1f})")
    div = report.get("diversity")
    if div and div.get("lpips") is not None:
        lines.append(f"diversity (mean pairwise LPIPS, {div['num_seeds']} seeds x {div['num_maps']} maps) {div['lpips']:.3f}")
    elif div:
        lines.append(f"diversity: {div['note']}")
    return "\n".join(lines)


def photos_summary(report: dict) -> str:
    """The console table of a photo-crop report: one column per model."""
    crops = report["crops"]
    h, w = report["image_size"]
    scales = "/".join(f"{100 * s:g}%" for s in crops["scales"])
    heights = crops["height_px"]
    lines = [
        f"{crops['count']} crops of {report['num_photos']} real photos ({crops['per_photo']} per photo at {scales} of the largest crop, "
        f"{heights['min']}-{heights['max']} px high, resized to {w}x{h}; seed {crops['seed']})",
    ]

    def value(result, path, scale=1.0, fmt="{:.3f}"):
        node = result
        for part in path:
            node = None if node is None else node.get(part)
        return "-" if node is None else fmt.format(node * scale)

    models = report["models"]
    rows = [
        ("FID", lambda r: value(r, ["fid"], fmt="{:.2f}")),
        ("KID x 1e-3", lambda r: value(r, ["kid", "mean"], 1000, "{:.2f}") + " ± " + value(r, ["kid", "std"], 1000, "{:.2f}")),
        ("mIoU", lambda r: value(r, ["segmentation", "miou"], 100, "{:.1f}")),
        ("pixel accuracy", lambda r: value(r, ["segmentation", "pixel_accuracy"], 100, "{:.1f}")),
        ("diversity LPIPS", lambda r: value(r, ["diversity", "lpips"])),
        ("reconstruction LPIPS", lambda r: value(r, ["reconstruction", "lpips"])),
        ("reconstruction PSNR dB", lambda r: value(r, ["reconstruction", "psnr"], fmt="{:.2f}")),
        ("sharpness / real", lambda r: value(r, ["sharpness", "ratio"])),
    ]
    width = max(22, *(len(m["model"]) + 2 for m in models))
    lines.append(" " * 24 + "".join(f"{m['model']:>{width}}" for m in models))
    for label, cell in rows:
        lines.append(f"{label:<24}" + "".join(f"{cell(m):>{width}}" for m in models))
    real = report["real"]
    ceiling = ""
    if real.get("segmentation"):
        scores = real["segmentation"]
        ceiling = f"; segmenter on the real crops: mIoU {100 * scores['miou']:.1f}, pixel accuracy {100 * scores['pixel_accuracy']:.1f}"
    lines.append(f"real crops: mean |Laplacian| {real['sharpness']:.4f}{ceiling}")
    return "\n".join(lines)
