"""`spadekit train-segmenter --data ROOT --out DIR --steps N`: the segmentation network behind mIoU."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from spadekit import SpadekitError
from spadekit.fileio import atomic_write_text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-segmenter",
        help="train the small segmentation network `spadekit eval` uses for mIoU",
        description=(
            "Train a compact U-Net on the real (photo, label map) pairs of a dataset, save it as DIR/config.json + "
            "DIR/model.safetensors, and report its own mIoU / pixel accuracy on the val split (or train when "
            "there is none) in DIR/metrics.json. Give it to `spadekit eval --segmenter DIR`."
        ),
    )
    parser.add_argument("--data", required=True, help="dataset root folder")
    parser.add_argument("--dataset", default="folder", help="layout: folder (default), ade20k, ade20k-outdoor, coco-stuff, cityscapes")
    parser.add_argument("--labels", default=None, help="label set name or palette file (default: the dataset's)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=32, help="channels of the first level (doubling per level)")
    parser.add_argument("--depth", type=int, default=3, help="number of downsamplings")
    parser.add_argument("--backbone", default=None, choices=["vgg16"],
                        help="train only a head on frozen ImageNet VGG16 features (--width = its channels) instead of a U-Net from scratch")
    parser.add_argument("--size", type=int, default=None, help="training crop width (default: the dataset preset's); use the model's output width")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training pairs")
    parser.add_argument("--color-jitter", type=float, default=0.0,
                        help="strength of random exposure / gamma / colour-balance changes of the training photos (0 = off; 0.7 = exposure x0.5..x2)")
    parser.add_argument("--eval-data", default=None,
                        help="dataset root of the real photos that score the segmenter (default: --data's val split, else its train split)")
    parser.add_argument("--eval-limit", type=int, default=200, help="real photos used to score the trained segmenter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from spadekit.data.datasets import build_dataset, dataset_class
    from spadekit.data.transforms import TransformConfig
    from spadekit.eval.segmentation import confusion_matrix, segmentation_scores, train_segmenter

    if args.color_jitter < 0:
        raise SpadekitError(f"--color-jitter must be 0 or more, got {args.color_jitter}")
    if args.steps < 1:
        raise SpadekitError(f"--steps must be at least 1, got {args.steps}")
    cls = dataset_class(args.dataset)
    transform = cls.default_transform()
    if args.size is not None:
        if args.size < 8:
            raise SpadekitError(f"--size must be at least 8 pixels, got {args.size}")
        load = max(args.size, round(args.size * transform.load_size / transform.crop_size))
        transform = dataclasses.replace(transform, crop_size=args.size, load_size=load)
    train = build_dataset(args.dataset, args.data, "train", label_set=args.labels, transform=transform, random=True, seed=args.seed, limit=args.limit)
    labels = train.label_set
    ignore_index = labels.num_classes if labels.contain_dontcare else None
    model = train_segmenter(
        train,
        labels.num_classes,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        width=args.width,
        depth=args.depth,
        ignore_index=ignore_index,
        class_names=labels.names,
        seed=args.seed,
        device=args.device,
        input_size=transform.crop_size,
        color_jitter=args.color_jitter,
        backbone=args.backbone,
    )
    out = Path(args.out)
    model.save_pretrained(out)

    # Evaluate the segmenter itself on real photos (val when present), at the training width with
    # each photo's own aspect ratio (squashing wide photos into the training frame would distort them).
    eval_root = Path(args.eval_data or args.data)
    split = "val" if "val" in cls.splits(eval_root) else "train"
    scaled = TransformConfig(preprocess="scale_width", load_size=transform.crop_size, crop_size=transform.crop_size, flip=False, size_multiple=1)
    held_out = build_dataset(args.dataset, eval_root, split, label_set=args.labels, transform=scaled, random=False, limit=args.eval_limit)
    conf = 0
    with torch.no_grad():
        for item in tqdm(held_out, desc=f"score on {split}", unit="img"):
            predicted = model.predict(item["image"][None])
            conf = conf + confusion_matrix(item["label"][0], predicted[0].cpu(), labels.num_classes, ignore_index)
    scores = segmentation_scores(conf, labels.names)
    metrics = {"data": str(eval_root), "split": split, "num_images": len(held_out), "steps": args.steps, **scores}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"segmenter saved to {out}; on real {split} photos ({len(held_out)}): "
          f"mIoU {100 * scores['miou']:.1f}, pixel accuracy {100 * scores['pixel_accuracy']:.1f}")
    return 0
