"""Evaluation on real photos: many crops of a few labelled photos, and one or several models
measured on the same crops with the same seeds.

For every photo of the split, `crops_per_photo` crops (spadekit.eval.crops) are cut and resized
to the model's frame; each crop's label map is what the models generate from. Per model:

- FID and KID of the generated images (latent seed 0 of each crop) against the real crops;
- mIoU and pixel accuracy of a segmenter's labels of the generated images against the crop's
  label map; the same segmenter on the real crops gives the ceiling (`real.segmentation`);
- diversity: mean pairwise LPIPS between `num_seeds` images of each of `diversity_crops` crops
  (spread evenly over the crops, so every photo and scale takes part);
- reconstruction (models with an image encoder): the crop's label map with the real crop as the
  style image, latent = the encoder's mean for it; LPIPS and PSNR against the real crop;
- sharpness: mean |Laplacian| of the generated images, and its ratio to the real crops'.

Seeds: crop i, seed k uses latent seed `seed + i * num_seeds + k`, for every model. Images are
quantised to uint8, as they would be saved, before any metric sees them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spadekit import SpadekitError
from spadekit.eval.crops import DEFAULT_CROPS_PER_PHOTO, DEFAULT_SCALES, Crop, check_scales, cut, sample_crops
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
from spadekit.eval.pixels import mean_abs_laplacian, psnr
from spadekit.eval.report import INCEPTION_NAME
from spadekit.eval.segmentation import Segmenter, TrainedSegmenter, confusion_matrix, segmentation_scores
from spadekit.imageio import from_uint8, to_uint8

DEFAULT_NUM_SEEDS = 4
DEFAULT_DIVERSITY_CROPS = 50


@dataclass
class CropSet:
    """The evaluation samples: crops, their pixels uint8 [N,H,W,3] and label channels int64 [N,H,W]."""

    crops: list[Crop]
    images: np.ndarray
    channels: np.ndarray
    photos: list[str]
    per_photo: int
    scales: tuple[float, ...]
    seed: int


def photo_crops(dataset, size: tuple[int, int], per_photo: int = DEFAULT_CROPS_PER_PHOTO, scales=DEFAULT_SCALES,
                seed: int = 0, progress: bool = True) -> CropSet:
    """Cut `per_photo` crops of every photo of `dataset` (a SegmentationDataset), resized to size = (H, W)."""
    from tqdm import tqdm

    scales = check_scales(scales)
    height, width = size
    crops, images, channels, photos = [], [], [], []
    for index in tqdm(range(len(dataset)), desc="crop photos", unit="photo", disable=not progress):
        photo, labels, _ = dataset.load_arrays(index)
        name = Path(dataset.samples[index].image).stem
        photos.append(name)
        for crop in sample_crops(name, (photo.shape[1], photo.shape[0]), per_photo, scales=scales, aspect=width / height,
                                 min_side=height, seed=seed, photo=index):
            image, label = cut(photo, labels, crop, size)
            crops.append(crop)
            images.append(image)
            channels.append(label)
    return CropSet(crops, np.stack(images), np.stack(channels), photos, per_photo, scales, seed)


def spread(count: int, total: int) -> list[int]:
    """`count` indices spread evenly over range(total) (all of them when count >= total)."""
    if count >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


def _channels(batch: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(batch)[:, None].to(device)


def _generate(pipe, channels: np.ndarray, seeds: list[int]) -> np.ndarray:
    """uint8 [B,H,W,3]: image b from channels[b] with latent seed seeds[b] (ignored without a latent)."""
    z = torch.cat([pipe.latents(1, s) for s in seeds]) if pipe.multimodal else None
    return to_uint8(pipe.generate_from_channels(_channels(channels, pipe.device), z, count=len(channels)))


def _lpips_pairs(lpips, a: np.ndarray, b: np.ndarray, device, batch_size: int, desc: str = "lpips",
                 progress: bool = False) -> np.ndarray:
    from tqdm import tqdm

    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(a), batch_size), desc=desc, unit="batch", disable=not progress):
            x = from_uint8(a[start : start + batch_size]).to(device)
            y = from_uint8(b[start : start + batch_size]).to(device)
            out.append(lpips(x, y).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _segment(segmenter: Segmenter, images: np.ndarray, channels: np.ndarray, num_classes: int, ignore_index,
             batch_size: int, name: str) -> np.ndarray:
    conf = np.zeros((num_classes, num_classes), np.int64)
    for start in range(0, len(images), batch_size):
        predicted = segmenter.predict(from_uint8(images[start : start + batch_size])).cpu()
        if predicted.numel() and (predicted.min() < 0 or predicted.max() >= num_classes):
            raise SpadekitError(f"segmenter {name} predicts class {int(predicted.max())}; the label set has classes 0..{num_classes - 1}")
        conf += confusion_matrix(channels[start : start + batch_size], predicted, num_classes, ignore_index)
    return conf


def _check_models(pipes: dict, dataset) -> None:
    first_name, first = next(iter(pipes.items()))
    for name, pipe in pipes.items():
        labels = pipe.labels
        if dataset.label_set.names != labels.names or dataset.label_set.ids != labels.ids:
            raise SpadekitError(
                f"the label set of the data at {dataset.root} ({dataset.label_set.name!r}, {dataset.label_set.num_classes} classes) "
                f"differs from model {name}'s ({labels.name!r}, {labels.num_classes} classes); "
                "evaluate on data labelled like the model's training data"
            )
        if tuple(pipe.size) != tuple(first.size):
            raise SpadekitError(
                f"model {name} generates {pipe.size[1]}x{pipe.size[0]}, model {first_name} {first.size[1]}x{first.size[0]}; "
                "compare models of one output size (the crops are resized to it)"
            )


def evaluate_photos(
    pipes: dict,
    dataset,
    *,
    segmenter: Segmenter | None = None,
    segmenter_name: str | None = None,
    crops_per_photo: int = DEFAULT_CROPS_PER_PHOTO,
    scales=DEFAULT_SCALES,
    num_seeds: int = DEFAULT_NUM_SEEDS,
    diversity_crops: int = DEFAULT_DIVERSITY_CROPS,
    reconstruction: bool = True,
    seed: int = 0,
    inception: InceptionFeatures | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    batch_size: int = 8,
    reference_cache: str | Path | None | bool = None,
    samples: int = 6,
    progress: bool = True,
) -> tuple[dict, Image.Image | None]:
    """Evaluate models {name: Pipeline} (one label set and output size) on crops of `dataset`'s photos.

    segmenter: anything with predict(images) (spadekit.eval.segmentation); None skips mIoU.
    num_seeds: images per crop for diversity (>= 2 to measure it; multimodal models only).
    reconstruction: measure models with an image encoder on their own crops as style images.
    reference_cache: folder of cached real-crop features (None = the default cache, False = off).
    samples: crops shown in the sample grid (label | real | each model), 0 = none.
    Returns (report dict, PIL grid or None).
    """
    from tqdm import tqdm

    from spadekit.eval.diversity import LPIPS, mean_pairwise_lpips

    started = time.time()
    if not pipes:
        raise SpadekitError("no model to evaluate")
    if len(dataset) < 1:
        raise SpadekitError(f"the {dataset.name} split {dataset.split!r} at {dataset.root} holds no photos")
    if num_seeds < 1:
        raise SpadekitError(f"--num-seeds must be at least 1, got {num_seeds}")
    _check_models(pipes, dataset)
    first = next(iter(pipes.values()))
    labels = first.labels
    num_classes = labels.num_classes
    ignore_index = num_classes if labels.contain_dontcare else None
    if isinstance(segmenter, TrainedSegmenter) and segmenter.config.num_classes != num_classes:
        raise SpadekitError(f"segmenter {segmenter_name} predicts {segmenter.config.num_classes} classes, the models' label set has {num_classes}")
    height, width = first.size
    inception = inception or InceptionFeatures()
    device = first.device

    # Initialize: the crops, and what is measured once on the real crops.
    crops = photo_crops(dataset, (height, width), crops_per_photo, scales, seed, progress)
    count = len(crops.crops)
    if count < 2:
        raise SpadekitError(f"FID needs at least 2 crops, got {count}; use more photos or --crops")
    key, real_features = None, None
    if reference_cache is not False:
        extra = f"photo-crops/{dataset.name}/{dataset.split}/{crops_per_photo}/{list(crops.scales)}/{seed}"
        key = reference_key([s.image for s in dataset.samples], (width, height), inception.resize, extra)
        real_features = load_cached_features(key, reference_cache or None)
    cached = real_features is not None
    if not cached:
        real_features = inception(list(crops.images), progress=progress).astype(np.float32)
        if key is not None:
            save_cached_features(key, real_features, reference_cache or None)
    real_sharpness = float(mean_abs_laplacian(crops.images).mean())
    real = {"sharpness": real_sharpness, "segmentation": None}
    if segmenter is not None:
        conf = _segment(segmenter, crops.images, crops.channels, num_classes, ignore_index, batch_size, segmenter_name)
        real["segmentation"] = segmentation_scores(conf, labels.names)
    diversity_indices = spread(diversity_crops, count) if num_seeds >= 2 else []
    needs_lpips = bool(diversity_indices) or reconstruction
    lpips = LPIPS().to(device) if needs_lpips and any(p.multimodal or p.has_encoder for p in pipes.values()) else None

    results, shown = [], {}
    sample_indices = [photo * crops_per_photo for photo in spread(samples, len(crops.photos))] if samples > 0 else []
    for name, pipe in pipes.items():
        model_started = time.time()
        # Generate: seed 0 of every crop.
        fakes = []
        for start in tqdm(range(0, count, batch_size), desc=f"generate {name}", unit="batch", disable=not progress):
            stop = min(start + batch_size, count)
            fakes.append(_generate(pipe, crops.channels[start:stop], [seed + i * num_seeds for i in range(start, stop)]))
        fakes = np.concatenate(fakes)
        fake_features = inception(list(fakes), progress=progress)
        kid_mean, kid_std = kernel_inception_distance(real_features, fake_features, kid_subsets, kid_subset_size, seed)
        sharpness = float(mean_abs_laplacian(fakes).mean())
        result = {
            "model": name,
            "fid": fid_from_features(real_features, fake_features),
            "kid": {"mean": kid_mean, "std": kid_std, "subsets": kid_subsets,
                    "subset_size": used_kid_subset_size(kid_subset_size, len(real_features), len(fake_features))},
            "segmentation": None,
            "diversity": None,
            "reconstruction": None,
            "sharpness": {"generated": sharpness, "real": real_sharpness, "ratio": sharpness / real_sharpness if real_sharpness else None},
        }

        # Segment the generated images against the crops' label maps.
        if segmenter is not None:
            conf = _segment(segmenter, fakes, crops.channels, num_classes, ignore_index, batch_size, segmenter_name)
            scores = segmentation_scores(conf, labels.names)
            result["segmentation"] = {"miou": scores["miou"], "pixel_accuracy": scores["pixel_accuracy"], "iou_per_class": scores["iou_per_class"]}

        # Diversity: num_seeds images of the spread crops (seed 0 is the image above).
        if diversity_indices and pipe.multimodal:
            values = []
            for i in tqdm(diversity_indices, desc=f"diversity {name}", unit="crop", disable=not progress):
                z = pipe.latents(num_seeds - 1, seed + i * num_seeds + 1)
                others = to_uint8(pipe.generate_from_channels(_channels(crops.channels[i : i + 1], pipe.device), z, count=num_seeds - 1))
                values.append(mean_pairwise_lpips(lpips, from_uint8(np.concatenate([fakes[i : i + 1], others])).to(device)))
            result["diversity"] = {"lpips": float(np.mean(values)), "num_crops": len(values), "num_seeds": num_seeds}
        elif num_seeds >= 2:
            result["diversity"] = {"lpips": None, "note": "the model is not multimodal (no VAE latent): every seed gives the same image"}

        # Reconstruction: the real crop as the style image, the encoder's mean as the latent.
        rebuilt = None
        if reconstruction and pipe.has_encoder:
            rebuilt = []
            for start in tqdm(range(0, count, batch_size), desc=f"reconstruct {name}", unit="batch", disable=not progress):
                stop = min(start + batch_size, count)
                z = torch.cat([pipe.style_code(crops.images[i])[0] for i in range(start, stop)])
                rebuilt.append(to_uint8(pipe.generate_from_channels(_channels(crops.channels[start:stop], pipe.device), z, count=stop - start)))
            rebuilt = np.concatenate(rebuilt)
            distances = _lpips_pairs(lpips, rebuilt, crops.images, device, batch_size, f"reconstruction LPIPS {name}", progress)
            peak = psnr(rebuilt, crops.images)
            rebuilt_sharpness = float(mean_abs_laplacian(rebuilt).mean())
            result["reconstruction"] = {
                "lpips": float(distances.mean()),
                "psnr": float(peak[np.isfinite(peak)].mean()) if np.isfinite(peak).any() else float("inf"),
                "num_crops": count,
                "latent": "encoder mean of the real crop",
                "sharpness": rebuilt_sharpness,
                "sharpness_ratio": rebuilt_sharpness / real_sharpness if real_sharpness else None,
            }
        elif reconstruction:
            result["reconstruction"] = {"lpips": None, "note": "the model has no image encoder, so it cannot take the photo as style image"}
        result["seconds"] = round(time.time() - model_started, 2)
        results.append(result)
        shown[name] = (fakes[sample_indices], None if rebuilt is None else rebuilt[sample_indices])

    heights = [c.height for c in crops.crops]
    report = {
        "protocol": "photo-crops",
        "dataset": dataset.name,
        "data": str(dataset.root),
        "split": dataset.split,
        "num_photos": len(crops.photos),
        "photos": crops.photos,
        "image_size": [height, width],
        "crops": {
            "count": count,
            "per_photo": crops_per_photo,
            "scales": list(crops.scales),
            "scale_meaning": "fraction of the largest crop with the model's aspect ratio that fits the photo; at least the model's height",
            "height_px": {"min": int(min(heights)), "median": float(np.median(heights)), "max": int(max(heights))},
            "seed": seed,
        },
        "real": {**real, "segmenter": segmenter_name},
        "models": results,
        "settings": {"inception": INCEPTION_NAME, "resize": inception.resize, "seed": seed, "num_seeds": num_seeds,
                     "reference_features_cached": cached},
        "seconds": round(time.time() - started, 2),
    }
    return report, _grid(crops, sample_indices, shown, labels)


def _grid(crops: CropSet, indices: list[int], shown: dict, labels) -> Image.Image | None:
    """Rows: label colours | real crop | each model's seed-0 image | each model's reconstruction."""
    if not indices:
        return None
    from spadekit.visualize import contact_sheet

    names = list(shown)
    has_rebuilt = [n for n in names if shown[n][1] is not None]
    rows, titles = [], []
    for row, i in enumerate(indices):
        tiles = [Image.fromarray(labels.colorize(labels.to_ids(crops.channels[i]))), Image.fromarray(crops.images[i])]
        tiles += [Image.fromarray(shown[n][0][row]) for n in names]
        tiles += [Image.fromarray(shown[n][1][row]) for n in has_rebuilt]
        rows.append(tiles)
        crop = crops.crops[i]
        title = f"{crop.name}, {crop.width}x{crop.height} px"
        if row == 0:  # the column legend, once
            short = {n: "/".join(Path(n).parts[-2:]) for n in names}  # runs/a/final and runs/b/final stay apart
            title += ":  label | real | " + " | ".join(short.values()) + "".join(f" | {short[n]} with the photo as style" for n in has_rebuilt)
        titles.append(title)
    return contact_sheet(rows, tile=min(192, crops.images.shape[1]), titles=titles)
