"""`spadekit eval --model M --data ROOT --out report.json`: FID, KID, mIoU, pixel accuracy, diversity."""
from __future__ import annotations

import json
import os
from pathlib import Path

from spadekit import SpadekitError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure a model on a dataset: FID, KID, mIoU, pixel accuracy, LPIPS diversity",
        description=(
            "Generate one image per label map of a dataset split and compare: FID/KID against the real photos "
            "(TF Inception, clean-fid resizing, real features cached), mIoU and pixel accuracy of a segmenter "
            "run on the generated images, and mean pairwise LPIPS across seeds (multimodal models). "
            "See docs/evaluation.md."
        ),
    )
    parser.add_argument("--model", required=True, help="model folder, or 'default' for the bundled landscape model")
    parser.add_argument("--data", required=True, help="dataset root folder")
    parser.add_argument("--dataset", default="folder", help="layout: folder (default), ade20k, ade20k-outdoor, coco-stuff, cityscapes")
    parser.add_argument("--split", default=None, help="split to evaluate (default: val when present, else train)")
    parser.add_argument("--out", required=True, help="report file (.json); a sample sheet is written next to it")
    parser.add_argument("--segmenter", default=None, help="segmenter: folder from `spadekit train-segmenter`, TorchScript .pt or .onnx (default: the model folder's segmenter/ when present)")
    parser.add_argument("--num-seeds", type=int, default=1, help="images per label map for the diversity score (>= 2 to measure it)")
    parser.add_argument("--diversity-maps", type=int, default=50, help="label maps used for diversity (each costs num_seeds images)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N label maps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resize", default="clean", choices=["clean", "pytorch-fid"], help="resizing to 299x299 for Inception (default clean-fid's)")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--reference-cache", default=None, metavar="DIR", help="folder of cached real-image features (default: $SPADEKIT_CACHE/fid_refs)")
    parser.add_argument("--no-reference-cache", action="store_true", help="do not read or write cached real-image features")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def default_segmenter(model_dir: Path) -> Path | None:
    """The segmenter shipped inside a model folder (`segmenter/`), if any."""
    folder = model_dir / "segmenter"
    return folder if (folder / "config.json").is_file() else None


def run(args) -> int:
    from spadekit.eval.report import eval_dataset, evaluate
    from spadekit.eval.segmentation import load_segmenter
    from spadekit.inference import Pipeline, resolve_model_path

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise SpadekitError(f"--out {out}: the report is a JSON file; give a name ending in .json")
    if args.limit is not None and args.limit < 2:
        raise SpadekitError(f"--limit must be at least 2 (FID needs two images), got {args.limit}")
    model_dir = resolve_model_path(args.model)
    pipe = Pipeline.from_pretrained(model_dir, device=args.device, dtype="float32", batch_size=args.batch_size)
    segmenter_path = Path(args.segmenter) if args.segmenter else default_segmenter(model_dir)
    segmenter = load_segmenter(segmenter_path, args.device) if segmenter_path else None
    dataset = eval_dataset(args.dataset, args.data, args.split, pipe.size, pipe.labels, args.limit)
    report, sheet = evaluate(
        pipe,
        dataset,
        segmenter=segmenter,
        segmenter_name=str(segmenter_path) if segmenter_path else None,
        num_seeds=args.num_seeds,
        diversity_maps=args.diversity_maps,
        seed=args.seed,
        inception=_inception(args),
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
        batch_size=args.batch_size,
        reference_cache=False if args.no_reference_cache else args.reference_cache,
    )
    report["model"] = args.model
    out.parent.mkdir(parents=True, exist_ok=True)
    if sheet is not None:
        sheet_path = out.with_name(out.stem + "_samples.png")
        _write_atomic(sheet_path, lambda p: sheet.save(p, format="PNG"))
        report["samples"] = str(sheet_path)
    _write_atomic(out, lambda p: Path(p).write_text(json.dumps(report, indent=2) + "\n"))
    print(summary(report))
    print(f"report: {out}")
    return 0


def _inception(args):
    from spadekit.eval.fid import InceptionFeatures

    return InceptionFeatures(resize=args.resize, device=args.device, batch_size=args.batch_size)


def summary(report: dict) -> str:
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


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
