"""Behaviour checks of a landscape model on paintings it never saw (the bar of the default model).

Each check measures one thing a person expects when painting a landscape, on the bundled starter
paintings (hand-authored, not part of the training data) and the bundled style photos (crops of four
of the photographs the landscape data is built from, so not unseen):

- texture: images are not flat (mean local standard deviation inside label regions);
- seeds: different seeds give different images (mean absolute difference);
- colours: sky comes out bluer than grass, and grass green;
- snow: replacing grass by snow changes the grass region and makes it bright and white;
- style: a style photo steers the colours. Two measurements: (a) graded style photos: each bundled
  style photo made warmer, cooler, darker and brighter (the same photo, only its colour changed)
  must move the output's mean colour the same way (warmth = red minus blue; brightness = mean), and
  by a fair share of the photo's own change (the gain: output change / photo change); (b) pairs of
  style photos: each output's mean colour closer to its own photo's than to the other's (a weaker
  test when photos share a mean colour, as three of the four bundled ones nearly do).

    python tools/landscape_checks.py [MODEL]      # prints the measurements as JSON

Values are on a 0..1 colour scale.
"""
from __future__ import annotations

import json
import sys
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit.imageio import open_image
from spadekit.inference import Pipeline, label_id, replace_label

STYLES = ("meadow", "snow", "storm", "sunset")
# graded versions of each style photo: name -> (per-channel RGB factors, the measure it changes)
GRADES = {"warmer": ((1.15, 1.0, 0.85), "warmth"), "cooler": ((0.85, 1.0, 1.15), "warmth"),
          "darker": ((0.7, 0.7, 0.7), "brightness"), "brighter": ((1.3, 1.3, 1.3), "brightness")}


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def local_std(image: np.ndarray, size: int = 7) -> np.ndarray:
    """Per-pixel standard deviation of the grey level over a size x size window."""
    grey = torch.from_numpy(image.mean(axis=2))[None, None]
    mean = F.avg_pool2d(grey, size, 1, size // 2, count_include_pad=False)
    sq = F.avg_pool2d(grey ** 2, size, 1, size // 2, count_include_pad=False)
    return (sq - mean ** 2).clamp_min(0).sqrt()[0, 0].numpy()


def interior(mask: np.ndarray, margin: int = 4) -> np.ndarray:
    """The mask shrunk by `margin` pixels, so region statistics do not see the borders between classes."""
    t = torch.from_numpy(~mask).float()[None, None]
    grown = F.max_pool2d(t, 2 * margin + 1, 1, margin)[0, 0].numpy() > 0
    return ~grown


def paintings() -> dict[str, np.ndarray]:
    """The bundled starter paintings: name -> label map of raw COCO-Stuff ids."""
    from spadekit.landscapes.paintings import load_painting, painting_specs

    return {spec["name"]: load_painting(spec["name"]) for spec in painting_specs()}


def graded(photo: Image.Image, factors) -> Image.Image:
    """The photo with each RGB channel multiplied by a factor (clipped to 0..255)."""
    array = np.clip(_array(photo) * np.asarray(factors), 0.0, 1.0)
    return Image.fromarray((array * 255.0 + 0.5).astype(np.uint8))


def _mean_colour(image: Image.Image) -> np.ndarray:
    return _array(image).reshape(-1, 3).mean(axis=0)


def _colour_measure(rgb: np.ndarray, kind: str) -> float:
    return float(rgb[0] - rgb[2]) if kind == "warmth" else float(rgb.mean())


def style_photos() -> dict[str, Image.Image]:
    """The bundled style photos: name -> image."""
    from spadekit.landscapes.textures import assets_dir

    folder = assets_dir() / "styles"
    return {s: open_image(folder / f"{s}.jpg", "style photo").convert("RGB") for s in STYLES}


def real_texture_reference(size: int = 256) -> dict[int, float]:
    """Class id -> mean local standard deviation inside that class in the hand-labelled real photos
    (bundled with the landscape generator), each resized to size x size: how much texture a real
    photo has where a class is."""
    from spadekit.landscapes.photos import load_annotations, real_pair

    values: dict[int, list[float]] = {}
    for index in range(len(load_annotations())):
        photo, label = real_pair(index)
        image = _array(photo.resize((size, size), Image.BICUBIC))
        label = np.asarray(Image.fromarray(label).resize((size, size), Image.NEAREST))
        texture = local_std(image)
        for c in np.unique(label):
            mask = interior(label == c)
            if mask.sum() >= 200:
                values.setdefault(int(c), []).append(float(texture[mask].mean()))
    return {c: float(np.mean(v)) for c, v in values.items()}


def measure(pipe: Pipeline, names: tuple[str, ...] | None = None, seeds: int = 3, styles: bool = True) -> dict:
    """The measurements of the bar on the starter paintings (all, or `names`); see the module docstring.

    Per painting: texture (mean local std in label regions, and its ratio to real photos of the
    same classes), seed_difference, sky_rgb / grass_rgb, the snow swap (brightness of the grass
    region before/after, its change, the change elsewhere, its saturation) and style steering
    (pairs of style photos whose outputs lie closer to their own photo's mean colour than to the
    other's; spread = mean L1 distance between the outputs' mean colours; graded style photos whose
    colour change the output follows, per measure (warmth, brightness: 2 grades x 4 photos each), and
    the median gain per measure).
    """
    labels = pipe.model.labels
    grass, sky, snow = (label_id(labels, n) for n in ("grass", "sky", "snow"))
    reference = real_texture_reference(pipe.size[1])
    photos = style_photos() if styles and pipe.has_encoder else {}
    means = {s: _mean_colour(photo) for s, photo in photos.items()}
    # painting-independent: each style photo's graded versions, what they measure and how much they changed it
    graded_photos = []
    for s, photo in photos.items():
        for factors, kind in GRADES.values():
            changed = graded(photo, factors)
            graded_photos.append((s, changed, kind, _colour_measure(_mean_colour(changed), kind) - _colour_measure(means[s], kind)))
    out: dict = {}
    for name, ids in paintings().items():
        if names is not None and name not in names:
            continue
        images = [_array(im) for im in pipe(ids, seed=0, num_images=seeds)]
        record: dict = {}
        regions = {int(c): interior(ids == c) for c in np.unique(ids)}
        regions = {c: m for c, m in regions.items() if m.sum() >= 200}  # class -> its interior, when big enough
        stds = [local_std(im) for im in images]
        textures = {c: float(np.mean([std[m].mean() for std in stds])) for c, m in regions.items()}
        record["texture"] = float(np.mean(list(textures.values())))
        record["texture_vs_real"] = float(np.mean([t / reference[c] for c, t in textures.items() if c in reference]))
        record["seed_difference"] = float(np.mean([np.abs(a - b).mean() for a, b in combinations(images, 2)]))
        if sky in regions:
            sky_mask = regions[sky]
            record["sky_rgb"] = np.mean([im[sky_mask].mean(axis=0) for im in images], axis=0).round(4).tolist()
        if grass in regions:
            grass_mask = regions[grass]
            record["grass_rgb"] = np.mean([im[grass_mask].mean(axis=0) for im in images], axis=0).round(4).tolist()
            snowy = [_array(im) for im in pipe(replace_label(ids, labels, grass, snow), seed=0, num_images=seeds)]
            rest = interior(ids != grass, 8)
            record["snow_brightness_before"] = float(np.mean([im[grass_mask].mean() for im in images]))
            record["snow_brightness_after"] = float(np.mean([im[grass_mask].mean() for im in snowy]))
            record["snow_region_change"] = float(np.mean([np.abs(a - b)[grass_mask].mean() for a, b in zip(images, snowy)]))
            record["snow_rest_change"] = float(np.mean([np.abs(a - b)[rest].mean() for a, b in zip(images, snowy)]))
            record["snow_saturation"] = float(np.mean([np.ptp(im[grass_mask], axis=1).mean() for im in snowy]))
        if photos:
            outs = {s: _mean_colour(pipe(ids, seed=0, style_image=photo)[0]) for s, photo in photos.items()}
            pairs = list(combinations(photos, 2))
            right = sum(
                np.abs(outs[a] - means[a]).sum() + np.abs(outs[b] - means[b]).sum()
                < np.abs(outs[a] - means[b]).sum() + np.abs(outs[b] - means[a]).sum()
                for a, b in pairs
            )
            record["style_pairs_right"] = int(right)
            record["style_pairs"] = len(pairs)
            record["style_spread"] = float(np.mean([np.abs(outs[a] - outs[b]).sum() for a, b in pairs]))
            followed, gains = {"warmth": 0, "brightness": 0}, {"warmth": [], "brightness": []}
            for s, changed, kind, photo_change in graded_photos:
                out_change = _colour_measure(_mean_colour(pipe(ids, seed=0, style_image=changed)[0]), kind) - _colour_measure(outs[s], kind)
                followed[kind] += int(np.sign(out_change) == np.sign(photo_change))
                gains[kind].append(out_change / photo_change)
            record["style_grades_followed"] = followed  # of 2 grades x the style photos, per measure
            record["style_grade_gain"] = {kind: float(np.median(g)) for kind, g in gains.items()}
        out[name] = record
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pipe = Pipeline.from_pretrained(argv[0] if argv else "default")
    print(json.dumps(measure(pipe), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
