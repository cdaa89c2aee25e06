"""The measurements behind the default model's bar (tools/landscape_checks.py) on rule-based fake
pipelines: one that behaves as a person expects passes every check, a flat one fails them."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from spadekit.data.labels import landscape_labels
from tool_modules import load_tool

checks = load_tool("landscape_checks")
interior, local_std, measure = checks.interior, checks.local_std, checks.measure

COLOURS = {"sky": (90, 150, 230), "grass": (60, 150, 40), "snow": (240, 240, 245)}


class RulePipeline:
    """Colours each class by a rule; `texture` adds seeded noise, `follow_style` tints with the style photo."""

    def __init__(self, texture: bool, follow_style: bool):
        self.model = SimpleNamespace(labels=landscape_labels())
        self.size, self.has_encoder = (256, 256), True
        self.texture, self.follow_style = texture, follow_style
        self.ids = {label.name: label.id for label in self.model.labels.labels}

    def __call__(self, ids, seed=0, num_images=1, style_image=None):
        images = []
        for k in range(num_images):
            rgb = np.full(ids.shape + (3,), 120.0)
            for name, colour in COLOURS.items():
                rgb[ids == self.ids[name]] = colour
            if self.texture:
                rgb += np.random.default_rng(seed + k).normal(0, 25, rgb.shape)
            if style_image is not None and self.follow_style:
                rgb = 0.5 * rgb + 0.5 * np.asarray(style_image.convert("RGB"), np.float64).mean(axis=(0, 1))
            images.append(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)))
        return images


def test_helpers():
    flat = np.full((32, 32, 3), 0.5)
    assert np.allclose(local_std(flat), 0, atol=1e-6)
    stripes = flat.copy()
    stripes[:, ::2] = 1.0
    assert local_std(stripes)[8:-8, 8:-8].min() > 0.2
    mask = np.zeros((32, 32), bool)
    mask[4:20, 4:20] = True
    assert interior(mask, 2).sum() == 12 * 12


def test_a_pipeline_that_behaves_passes_and_a_flat_one_fails():
    good = measure(RulePipeline(texture=True, follow_style=True), names=("meadow",), seeds=2)["meadow"]
    assert good["texture_vs_real"] > 0.4 and good["seed_difference"] > 0.02
    sky, grass = good["sky_rgb"], good["grass_rgb"]
    assert sky[2] - sky[0] > grass[2] - grass[0] + 0.1 and grass[1] > max(grass[0], grass[2])
    assert good["snow_brightness_after"] > 0.6 and good["snow_saturation"] < 0.15
    assert good["snow_rest_change"] < 0.5 * good["snow_region_change"]
    assert good["style_pairs_right"] >= 5 and good["style_spread"] > 0.05
    assert good["style_grades_followed"] == {"warmth": 8, "brightness": 8}  # every graded photo, at half strength
    assert all(abs(gain - 0.5) < 0.05 for gain in good["style_grade_gain"].values()), good["style_grade_gain"]

    flat = measure(RulePipeline(texture=False, follow_style=False), names=("meadow",), seeds=2)["meadow"]
    assert flat["texture_vs_real"] < 0.05 and flat["seed_difference"] == 0
    assert flat["style_spread"] == 0 and flat["style_pairs_right"] == 0
    assert flat["style_grades_followed"] == {"warmth": 0, "brightness": 0}
    assert flat["style_grade_gain"] == {"warmth": 0.0, "brightness": 0.0}
