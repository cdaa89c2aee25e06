"""Generation at sizes other than the training size (`Pipeline.run(size=(width, height))`, `generate --size`).

Tiny models check every registered generator at non-square sizes (fast and plain paths agree), seeds,
rounding and errors; the bundled model (slow) checks a 1024x256 panorama of a starter painting: the
real-photo segmenter finds the classes where they were painted (mIoU at least 90% of that at 256x256,
the wide image read in 256x256 squares as the square one is), and the quarters of a panorama whose
map repeats one painting four times are not copies of each other.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from batch_norm import calibrate_batch_norm
from helpers import tiny_labels
from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.inference import MAX_PIXELS, Pipeline, parse_size
from spadekit.models import SPADEModel
from spadekit.models.registry import GENERATORS

# every registered generator, and the ways a SPADE generator gets its latent grid (z, map, 3D noise)
VARIANTS = [dict(arch=arch, use_vae=arch != "pix2pixhd") for arch in sorted(GENERATORS)] + [
    dict(arch="spade", use_vae=False),
    dict(arch="spade", use_vae=False, noise_3d=6),
]


def _pipeline(fast: bool = True, **overrides) -> Pipeline:
    torch.manual_seed(0)
    config = ModelConfig(labels=tiny_labels(5).to_dict(), use_instance=True, crop_size=64, ngf=4, spade_hidden=8, z_dim=16,
                         norm="batch", encoder_ndf=4, encoder_size=64, encoder_layers=4, **overrides)
    model = SPADEModel(config, with_discriminator=False)
    calibrate_batch_norm(model)  # activations on scale, not saturated by tanh (so the two paths can be compared)
    return Pipeline(model, fast=fast)


def _bands(height: int, width: int, classes: int = 5) -> np.ndarray:
    """Vertical bands of every class, with a diagonal edge, as raw ids."""
    y, x = np.mgrid[:height, :width]
    return ((x * classes // width + (y > x * height / width)) % classes).astype(np.int64)


@pytest.mark.parametrize("variant", VARIANTS, ids=[",".join(f"{k}={v}" for k, v in d.items()) for d in VARIANTS])
def test_every_generator_makes_non_square_sizes(variant):
    fast, plain = _pipeline(True, **variant), _pipeline(False, **variant)
    m = fast.size_multiple
    assert fast.size == (64, 64) and 64 % m == 0
    ids = _bands(64, 64)
    for width, height in ((192, 64), (64, 128), (4 * m, 2 * m)):
        result = fast.run(ids, seed=1, size=(width, height))
        assert result.images[0].size == (width, height)
        assert not any("rounded" in note for note in result.notes)
        # the lookups of the fast path and the plain one-hot computation agree at this size too
        a = np.asarray(result.images[0], dtype=np.int16)
        b = np.asarray(plain.run(ids, seed=1, size=(width, height)).images[0], dtype=np.int16)
        assert np.abs(a - b).max() <= 2


def test_training_size_is_unchanged():
    pipe = _pipeline(use_vae=True)
    ids = _bands(64, 64)
    default = np.asarray(pipe.run(ids, seed=2).images[0])
    own = pipe.run(ids, seed=2, size=(64, 64))
    assert np.array_equal(np.asarray(own.images[0]), default) and own.notes == []
    # at the trained grid the VAE input is the linear layer's output itself
    generator = pipe.model.generator
    z = pipe.latents(1, 2)
    with torch.inference_mode():
        expected = generator.input(z).view(1, -1, *generator.latent_size)
        assert torch.equal(generator.latent_grid(z, generator.latent_size), expected)
        grown = generator.latent_grid(z, (2, 8))
    # a side grown 4x (2 -> 8 cells) is the trained grid stretched 2x (sqrt 4), then mirrored: one z,
    # continuous at the mirror, and its second half is not a copy of its first
    assert grown.shape[-2:] == (2, 8)
    stretched = F.interpolate(expected, size=(2, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(grown[..., :4], stretched)
    torch.testing.assert_close(grown[..., 4:], stretched.flip(-1))
    assert not torch.allclose(grown[..., :4], grown[..., 4:])


def test_grown_side_stretches_by_the_square_root_and_mirrors():
    from spadekit.models.generator import grown_side

    assert grown_side(8, 8) == (8, list(range(8)))  # the trained side as trained
    assert grown_side(4, 8) == (4, [0, 1, 2, 3])  # a smaller side: resized to its length
    stretched, index = grown_side(32, 8)  # 4x: stretched 2x, then mirrored
    assert stretched == 16 and index == list(range(16)) + list(range(15, -1, -1))
    stretched, index = grown_side(64, 8)  # 8x: stretched round(8 sqrt 8) = 23 cells, mirrored back and forth
    assert stretched == 23 and len(index) == 64 and index[:23] == list(range(23))
    # every step of the index moves by at most one cell: no seam anywhere along the side
    assert all(abs(a - b) <= 1 for a, b in zip(index, index[1:]))
    assert index[23:46] == list(range(22, -1, -1)) and index[46:] == list(range(18))


def test_same_seed_same_image_at_any_size():
    pipe = _pipeline(use_vae=True)
    ids = _bands(64, 64)
    first = pipe.run(ids, seed=5, num_images=2, size=(256, 64)).images
    again = pipe.run(ids, seed=5, num_images=2, size=(256, 64)).images
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again))
    # image k of seed s is image 0 of seed s + k, whatever the batch (within the rounding of batched kernels)
    alone = np.asarray(pipe.run(ids, seed=6, size=(256, 64)).images[0], dtype=np.int16)
    assert np.abs(np.asarray(first[1], dtype=np.int16) - alone).max() <= 1
    assert not np.array_equal(np.asarray(first[0]), np.asarray(first[1]))


def test_the_label_map_is_resized_to_the_size_nearest():
    pipe = _pipeline(use_vae=False)
    ids = _bands(64, 64)
    wide = np.asarray(Image.fromarray(ids.astype(np.uint8)).resize((192, 128), Image.NEAREST)).astype(np.int64)
    resized = pipe.run(ids, size=(192, 128))
    assert any("resized from 64x64 to 192x128" in note for note in resized.notes)
    assert np.array_equal(np.asarray(resized.images[0]), np.asarray(pipe.run(wide, size=(192, 128)).images[0]))
    with pytest.raises(SpadekitError, match="64x64 but the output is 192x128"):
        pipe.run(ids, size=(192, 128), strict=True)


def test_sizes_round_to_the_nearest_the_model_makes_with_a_note():
    pipe = _pipeline(use_vae=True)
    assert pipe.size_multiple == 32
    result = pipe.run(_bands(64, 64), size=(100, 70))  # 100 -> 96 (not 128), 70 -> 64 (not 96)
    assert result.images[0].size == (96, 64)
    assert any("100x70 rounded to 96x64" in note and "multiples of 32" in note for note in result.notes)
    assert pipe.run(_bands(64, 64), size=10).images[0].size == (32, 32)  # never below one multiple
    assert pipe.fit_size((48, 80)) == (96, 64)  # (H, W); ties round up


def test_noise_3d_latents_have_the_noise_size():
    pipe = _pipeline(use_vae=False, noise_3d=6)
    assert pipe.multimodal and not pipe.has_encoder
    assert pipe.latents(3, 0).shape == (3, 6)
    images = pipe.run(_bands(64, 64), seed=0, num_images=2, size=(128, 64)).images
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))
    assert not _pipeline(use_vae=False).multimodal and _pipeline(use_vae=False).latents(1, 0) is None


@pytest.mark.parametrize("text", ["wide", "1024x", "x256", "0x256", "1024x-5", "10x20x30", "1.5x2"])
def test_bad_size_strings_are_refused_clearly(text):
    with pytest.raises(SpadekitError, match="size") as error:
        parse_size(text)
    assert repr(text) in str(error.value)


def test_size_strings():
    assert parse_size("1024x256") == (1024, 256)
    assert parse_size(" 512X512 ") == (512, 512)
    assert parse_size("384") == (384, 384)


def test_bad_sizes_are_refused_by_the_pipeline_and_the_command(tmp_path, capsys):
    from spadekit.cli import main

    pipe = _pipeline(use_vae=True)
    with pytest.raises(SpadekitError, match="at least 1 pixel"):
        pipe.run(_bands(64, 64), size=(0, 64))
    side = int(MAX_PIXELS ** 0.5) + 64
    with pytest.raises(SpadekitError, match=f"{side}x{side} is more than"):
        pipe.run(_bands(64, 64), size=(side, side))
    Image.fromarray(_bands(64, 64).astype(np.uint8)).save(tmp_path / "map.png")
    assert main(["generate", "default", str(tmp_path / "map.png"), "--out", str(tmp_path / "out"), "--size", "panorama"]) == 2
    assert "error: size 'panorama': write it as WIDTHxHEIGHT" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- the bundled model (fp32) ---------------------------------------------------------------------


def _segment_in_squares(segmenter, image: torch.Tensor) -> torch.Tensor:
    """Labels [1,H,W] of an image read in H x H squares, as the segmenter reads a square output."""
    h, w = image.shape[-2:]
    labels = torch.zeros(1, h, w, dtype=torch.long)
    for x in range(0, w, h):
        labels[..., x:x + h] = segmenter.predict(image[..., x:x + h])
    return labels


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)[None] / 127.5 - 1


@pytest.fixture(scope="module")
def bundled():
    return Pipeline.from_pretrained("default", dtype="float32")


@pytest.mark.slow
def test_panorama_from_the_command_keeps_the_classes_where_painted(bundled, tmp_path):
    from spadekit.cli import main
    from spadekit.commands.eval import default_segmenter
    from spadekit.eval.segmentation import confusion_matrix, load_segmenter, mean_iou
    from spadekit.inference import resolve_model_path
    from spadekit.landscapes.paintings import paintings_dir

    painting = paintings_dir() / "lake.png"
    out = tmp_path / "out"
    assert main(["generate", "default", str(painting), "--out", str(out), "--size", "1024x256", "--dtype", "float32"]) == 0
    wide_image = Image.open(out / "lake_seed0.png")
    assert wide_image.size == (1024, 256)

    segmenter = load_segmenter(default_segmenter(resolve_model_path("default")))
    n = bundled.labels.num_channels
    square = bundled.prepare_channels(painting)
    square_image = _to_tensor(bundled.run(painting, seed=0).images[0])
    square_miou = mean_iou(confusion_matrix(square[:, 0], segmenter.predict(square_image), n))
    wide = F.interpolate(square.float(), size=(256, 1024), mode="nearest").long()
    wide_miou = mean_iou(confusion_matrix(wide[:, 0], _segment_in_squares(segmenter, _to_tensor(wide_image)), n))
    assert square_miou > 0.3  # the segmenter reads the square output at all
    assert wide_miou >= 0.9 * square_miou


def _detail_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a - b| of two HxWx3 images after removing each one's mean colour (content, not tint)."""
    return float(np.abs((a - a.mean((0, 1))) - (b - b.mean((0, 1)))).mean())


@pytest.mark.slow
def test_panorama_quarters_are_not_copies(bundled):
    from spadekit.landscapes.paintings import load_painting

    ids = load_painting("mountains")
    tiled = np.tile(ids, (1, 4))  # the same class layout in every quarter
    quarters = np.asarray(bundled.run(tiled, seed=0, size=(1024, 256)).images[0], dtype=np.float32).reshape(256, 4, 256, 3)
    two_seeds = [np.asarray(image, dtype=np.float32) for image in bundled.run(ids, seed=0, num_images=2).images]
    different_images = _detail_difference(*two_seeds)
    for i in range(4):
        for j in range(i + 1, 4):
            # copies would give 0; the quarters keep one style (one z), so they differ less than two seeds
            # do: 0.31-0.46 of it here for the bundled model; windows of the training size with one z, near
            # copies, 0.16 on average (benchmarks/suite.py --suite any-size-methods, docs/inference.md)
            assert _detail_difference(quarters[:, i], quarters[:, j]) >= 0.25 * different_images, (i, j)
