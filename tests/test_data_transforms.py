"""Paired transforms keep photo, label and instance map aligned and are reproducible."""
import numpy as np
import pytest

from spadekit import SpadekitError
from spadekit.data.transforms import PREPROCESS_MODES, PairedTransform, TransformConfig, sample_params


def _scene(height=48, width=64):
    """A white square on black in the photo, class 1 in the label, instance 7 - off-centre so flips show."""
    image = np.zeros((height, width, 3), np.uint8)
    label = np.zeros((height, width), np.int64)
    instance = np.zeros((height, width), np.int64)
    image[6:26, 10:30] = 255
    label[6:26, 10:30] = 1
    instance[6:26, 10:30] = 7
    return image, label, instance


def _assert_aligned(image, label, instance):
    bright = image.mean(axis=2) > 127
    inside = label == 1
    assert inside.any(), "the square was cropped away"
    # Bicubic resizing blurs a one-pixel rim; everywhere else photo and label agree.
    disagree = bright != inside
    assert disagree.mean() < 0.06, f"photo and label disagree on {disagree.mean():.1%} of pixels"
    assert ((instance == 7) == inside).all()
    assert set(np.unique(label)) <= {0, 1}  # nearest: no blended ids
    assert set(np.unique(instance)) <= {0, 7}


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_every_mode_keeps_photo_and_maps_aligned(mode):
    config = TransformConfig(preprocess=mode, load_size=48, crop_size=32, aspect_ratio=1.0, size_multiple=16)
    transform = PairedTransform(config)
    flips, checked = set(), 0
    for seed in range(12):
        image, label, instance = _scene()
        out_image, out_label, out_instance = transform(image, label, instance, rng=np.random.default_rng(seed))
        assert out_image.shape[:2] == out_label.shape == out_instance.shape
        assert out_image.shape[0] % 16 == 0 and out_image.shape[1] % 16 == 0
        if (out_label == 1).any():
            _assert_aligned(out_image, out_label, out_instance)
            checked += 1
        params = sample_params(config, (64, 48), np.random.default_rng(seed))
        flips.add(params.flip)
    assert flips == {True, False}
    assert checked >= 6


def test_flip_moves_the_square_to_the_other_side():
    config = TransformConfig(preprocess="none", size_multiple=1)
    transform = PairedTransform(config)
    for seed in range(20):
        image, label, instance = _scene()
        params = sample_params(config, (64, 48), np.random.default_rng(seed))
        out_image, out_label, _ = transform(image, label, instance, rng=np.random.default_rng(seed))
        expected = label[:, ::-1] if params.flip else label
        assert (out_label == expected).all()
        assert ((out_image[..., 0] > 127) == (expected == 1)).all()


def test_sizes_of_the_modes():
    image, label, instance = _scene(48, 64)

    def size(**kw):
        return PairedTransform(TransformConfig(size_multiple=1, **kw))(image, label, rng=np.random.default_rng(0))[1].shape

    assert size(preprocess="resize_and_crop", load_size=40, crop_size=32) == (32, 32)
    assert size(preprocess="fixed", crop_size=32, aspect_ratio=2.0) == (16, 32)
    assert size(preprocess="scale_width", load_size=32) == (24, 32)
    assert size(preprocess="scale_width_and_crop", load_size=32, crop_size=16, aspect_ratio=2.0) == (8, 16)
    assert size(preprocess="scale_shortside", load_size=24) == (24, 32)
    assert size(preprocess="crop", crop_size=16) == (16, 16)
    assert size(preprocess="none") == (48, 64)


def test_same_generator_same_result_and_eval_is_centred():
    config = TransformConfig(preprocess="resize_and_crop", load_size=56, crop_size=32)
    transform = PairedTransform(config)
    image, label, instance = _scene()
    a = transform(image, label, instance, rng=np.random.default_rng(3))
    b = transform(image, label, instance, rng=np.random.default_rng(3))
    assert all((x == y).all() for x, y in zip(a, b))
    crops = {sample_params(config, (64, 48), np.random.default_rng(s)).crop for s in range(10)}
    assert len(crops) > 1
    centred = sample_params(config, (64, 48), np.random.default_rng(0), random=False)
    assert centred.crop == (12, 12, 32, 32) and not centred.flip


def test_large_instance_ids_survive_resizing():
    label = np.zeros((20, 20), np.int64)
    instance = np.full((20, 20), 26001, np.int64)
    instance[:, 10:] = 33002
    config = TransformConfig(preprocess="fixed", crop_size=40, size_multiple=1)
    _, _, out = PairedTransform(config)(np.zeros((20, 20, 3), np.uint8), label, instance, rng=np.random.default_rng(0))
    assert set(np.unique(out)) == {26001, 33002}


def test_bad_config_is_a_clear_error():
    with pytest.raises(SpadekitError, match="preprocess"):
        TransformConfig(preprocess="zoom")
    with pytest.raises(SpadekitError, match="crop_size"):
        TransformConfig(crop_size=0)


def test_color_grading_changes_the_photo_only_in_training_and_is_seeded():
    rng = np.random.default_rng(0)
    image = rng.integers(30, 220, (64, 64, 3), dtype=np.uint8)
    label = rng.integers(0, 5, (64, 64))
    graded = PairedTransform(TransformConfig(preprocess="none", flip=False, size_multiple=1, color_grading=1.0))
    plain = PairedTransform(TransformConfig(preprocess="none", flip=False, size_multiple=1))
    a, la, _ = graded(image, label, rng=np.random.default_rng(1))
    b, _, _ = graded(image, label, rng=np.random.default_rng(1))
    c, _, _ = graded(image, label, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)  # deterministic for a seed
    np.testing.assert_array_equal(la, label)  # the label map is untouched
    assert np.abs(a.astype(int) - image).mean() > 3 and np.abs(a.astype(int) - c).mean() > 3
    # a global grade: per-channel means move, but the image stays the same picture (strongly correlated)
    assert np.corrcoef(a.reshape(-1).astype(float), image.reshape(-1).astype(float))[0, 1] > 0.8
    off, _, _ = graded(image, label, rng=np.random.default_rng(1), random=False)  # evaluation: no grade
    np.testing.assert_array_equal(off, image)
    np.testing.assert_array_equal(plain(image, label, rng=np.random.default_rng(1))[0], image)  # off by default


def test_color_grading_strength_is_validated():
    with pytest.raises(SpadekitError, match="color_grading"):
        TransformConfig(color_grading=-1)
