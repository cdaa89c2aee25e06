"""The real-photo evaluation's building blocks: the crop sampler and the pixel measures (PSNR,
sharpness), checked against values worked out by hand, and LPIPS on equal images."""
import math

import numpy as np
import pytest
import torch

from spadekit import SpadekitError
from spadekit.eval.crops import Crop, cut, sample_crops
from spadekit.eval.pixels import mean_abs_laplacian, psnr

SCALES = (1.0, 0.75, 0.5, 0.35)


def test_crops_are_deterministic_and_depend_on_the_seed_and_photo():
    a = sample_crops("photo_a", (1024, 768), 16, scales=SCALES, min_side=64, seed=3)
    assert a == sample_crops("photo_a", (1024, 768), 16, scales=SCALES, min_side=64, seed=3)
    assert [c.box for c in a] != [c.box for c in sample_crops("photo_a", (1024, 768), 16, scales=SCALES, min_side=64, seed=4)]
    assert [c.box for c in a] != [c.box for c in sample_crops("photo_b", (1024, 768), 16, scales=SCALES, min_side=64, seed=3)]


def test_crops_cover_every_scale_inside_the_photo():
    width, height = 1024, 768
    crops = sample_crops("p", (width, height), 16, scales=SCALES, min_side=64, seed=0)
    assert [c.scale for c in crops] == list(SCALES) * 4
    for crop in crops:
        x0, y0, x1, y1 = crop.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert crop.height == round(crop.scale * height) and crop.width == crop.height  # square, the largest is 768
    assert len({c.box for c in crops}) == len(crops)  # positions differ
    # positions spread: the largest crops (full height) slide along the width
    assert len({c.box[0] for c in crops if c.scale == 1.0}) > 1


def test_crop_sides_are_clipped_to_the_frame_and_the_photo():
    # A 512x256 photo at a 256-px model: every crop is at least 256 high, hence all of the height.
    crops = sample_crops("wide", (512, 256), 8, scales=SCALES, min_side=256, seed=0)
    assert {(c.width, c.height) for c in crops} == {(256, 256)}
    # A non-square model: crops keep its aspect ratio (width / height = 2) and fit the photo.
    crops = sample_crops("tall", (300, 400), 4, scales=(1.0, 0.5), aspect=2.0, min_side=10, seed=0)
    assert {(c.width, c.height) for c in crops} == {(300, 150), (150, 75)}
    with pytest.raises(SpadekitError, match="fractions"):
        sample_crops("p", (100, 100), 4, scales=(0.0,))
    with pytest.raises(SpadekitError, match="at least 1"):
        sample_crops("p", (100, 100), 0)


def test_cut_keeps_labels_aligned_with_pixels():
    # Label = column // 8 and the photo's red channel = 2 * label: after any cut and resize, they still agree.
    height, width = 96, 128
    columns = np.tile(np.arange(width), (height, 1))
    labels = (columns // 8).astype(np.int64)
    photo = np.zeros((height, width, 3), np.uint8)
    photo[..., 0] = 2 * labels
    crop = Crop(0, "p", (16, 8, 80, 72), 1.0)
    image, label = cut(photo, labels, crop, (64, 64))
    assert np.array_equal(label, labels[8:72, 16:80]) and np.array_equal(image[..., 0], photo[8:72, 16:80, 0])
    image, label = cut(photo, labels, crop, (16, 16))  # 4x smaller: label of each 4x4 block's centre pixel
    assert np.array_equal(label, labels[8:72, 16:80][2::4, 2::4])
    assert np.abs(image[..., 0].astype(int) - 2 * label).max() <= 2  # the bicubic photo stays on its labels' value


def test_psnr_of_known_images():
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[0] += 5  # every value off by 5: MSE 25
    b[1, 3, 4, 1] = 100 + 51  # one value off by 51 in 192
    expected = [20 * math.log10(255 / 5), 10 * math.log10(255**2 * 192 / 51**2)]
    assert psnr(b, a) == pytest.approx(expected)
    assert math.isinf(psnr(a[0], a[0])[0])
    with pytest.raises(SpadekitError, match="one shape"):
        psnr(a, a[:, :4])


def test_sharpness_of_known_images():
    flat = np.full((16, 16, 3), 77, np.uint8)
    ramp = np.repeat(np.repeat(np.arange(16, dtype=np.uint8)[None, :, None] * 10, 16, 0), 3, 2)
    checker = ((np.indices((16, 16)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)
    values = mean_abs_laplacian(np.stack([flat, ramp, checker]))
    # a constant and a linear ramp have no curvature; a 0/1 checkerboard has |Laplacian| 4 everywhere
    assert values == pytest.approx([0.0, 0.0, 4.0], abs=1e-6)
    # against a direct computation on a random image
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    g = image.astype(np.float64).mean(axis=2) / 255
    direct = np.abs(g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]).mean()
    assert mean_abs_laplacian(image)[0] == pytest.approx(direct, rel=1e-5)


def test_lpips_of_an_image_with_itself_is_zero():
    from spadekit.eval.diversity import LPIPS

    lpips = LPIPS()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    same = lpips(x, x)
    assert torch.allclose(same, torch.zeros(2), atol=1e-6)
    different = lpips(x, y)
    assert (different > 0.05).all() and torch.allclose(different, lpips(y, x), atol=1e-5)
