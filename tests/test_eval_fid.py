"""FID / KID metric code: checked against independent computations, and the Inception network itself."""
import numpy as np
import pytest
from PIL import Image

from spadekit import SpadekitError
from spadekit.eval.fid import (
    InceptionFeatures,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    kid_subset_size,
    reference_features,
    reference_key,
    resize_for_inception,
)


def _features(n=400, d=16, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


def test_fid_of_a_set_against_itself_is_zero():
    features = _features()
    assert abs(fid_from_features(features, features)) < 1e-6
    assert fid_from_features(features, _features(seed=1, shift=1.0)) > 1.0


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_eigenvalue_computation():
    # tr sqrt(S1 S2) = sum of sqrt of the eigenvalues of S1 S2 (real, >= 0: S1 S2 is similar to a PSD matrix).
    a, b = _features(seed=4), _features(seed=5, shift=0.3) * 1.5
    expected = _fid_by_eigenvalues(a, b)
    assert frechet_distance(*feature_statistics(a), *feature_statistics(b)) == pytest.approx(expected, rel=1e-8)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)


def _fid_by_eigenvalues(a, b):
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2)
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(eig.real, 0, None)))


def test_fid_with_fewer_samples_than_dimensions_is_exact():
    # Rank-deficient covariances take the singular-value route; it must agree with eigenvalues.
    a, b = _features(n=10, d=32, seed=6), _features(n=14, d=32, seed=7, shift=0.2)
    assert fid_from_features(a, b) == pytest.approx(_fid_by_eigenvalues(a, b), rel=1e-6)
    assert abs(fid_from_features(a, a)) < 1e-9
    # frechet_distance on the same statistics (eps-regularised sqrtm) is finite and close.
    value = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert np.isfinite(value) and value == pytest.approx(_fid_by_eigenvalues(a, b), rel=1e-3)


def test_statistics_errors_are_clear():
    with pytest.raises(SpadekitError, match="at least 2"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(SpadekitError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def _mmd_unbiased_loop(x, y):
    d, m = x.shape[1], len(x)
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_direct_unbiased_mmd():
    x, y = _features(n=30, d=6, seed=8), _features(n=30, d=6, seed=9, shift=0.5)
    # One subset of the whole set: a permutation, and MMD does not depend on order.
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=None)
    assert mean == pytest.approx(_mmd_unbiased_loop(x, y), rel=1e-9)
    assert std == 0.0


def test_kid_subsets_are_at_most_half_the_set_so_the_std_is_informative():
    assert kid_subset_size(1000, 5000, 3000) == 1000 and kid_subset_size(1000, 64, 300) == 32 and kid_subset_size(1000, 3, 3) == 3
    x, y = _features(n=30, d=6, seed=8), _features(n=30, d=6, seed=9, shift=0.5)
    _, std = kernel_inception_distance(x, y, num_subsets=10, subset_size=1000)
    assert std > 0


def test_kid_near_zero_for_same_distribution_positive_for_shifted():
    x = _features(n=600, seed=10)
    same, _ = kernel_inception_distance(x, _features(n=600, seed=11), num_subsets=20, subset_size=200)
    shifted, std = kernel_inception_distance(x, _features(n=600, seed=12, shift=1.0), num_subsets=20, subset_size=200)
    identical, _ = kernel_inception_distance(x, x, num_subsets=20, subset_size=200)
    assert shifted > 0 and shifted > 10 * std
    assert abs(same) < 0.05 * shifted and abs(identical) < 0.05 * shifted


def test_resize_modes():
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (48, 1)).astype(np.uint8)
    image = np.stack([gradient, gradient[::-1], np.full_like(gradient, 7)], axis=-1)
    for mode in ("clean", "pytorch-fid"):
        out = resize_for_inception([image, Image.fromarray(image)], mode)
        assert out.shape == (2, 3, 299, 299)
        assert float(out.min()) >= 0 and float(out.max()) <= 255
        assert np.allclose(out[:, 2].numpy(), 7, atol=1e-3)  # a constant channel stays constant
        assert np.array_equal(out[0].numpy(), out[1].numpy())
    with pytest.raises(SpadekitError, match="resize mode"):
        resize_for_inception([image], "nearest")
    with pytest.raises(SpadekitError, match="uint8"):
        resize_for_inception([image.astype(np.float32)])


def test_inception_torchscript_gives_2048_features():
    extractor = InceptionFeatures()
    rng = np.random.default_rng(0)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.float32)[None, :, None], (64, 1, 3)).astype(np.uint8)
    noise = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    features = extractor([smooth, noise])
    assert features.shape == (2, 2048)
    assert np.isfinite(features).all() and (features >= 0).all()  # pool of ReLU outputs
    assert np.abs(features[0] - features[1]).sum() > 1.0


class _CountingExtractor:
    """Stands in for Inception in the cache test: mean colour features, counts images seen."""

    resize, batch_size = "clean", 4

    def __init__(self):
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        return np.stack([np.concatenate([np.asarray(i, np.float64).mean((0, 1)), np.zeros(2045)]) for i in images])


def test_reference_features_are_cached_by_file_list(tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(path)
        paths.append(path)
    extractor = _CountingExtractor()
    first = reference_features(paths, extractor, cache_dir=tmp_path / "cache", progress=False)
    assert extractor.seen == 5 and first.shape == (5, 2048)
    again = reference_features(list(reversed(paths)), extractor, cache_dir=tmp_path / "cache", progress=False)
    assert extractor.seen == 5  # served from the cache, order-independent key
    np.testing.assert_array_equal(first, again)
    with np.load(next((tmp_path / "cache").glob("*.npz"))) as data:
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)
    # A changed file size or another resolution is another key.
    key = reference_key(paths, None, "clean")
    assert reference_key(paths, (4, 4), "clean") != key
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(paths[0])
    assert reference_key(paths, None, "clean") != key
    reference_features(paths, extractor, size=(8, 8), cache_dir=tmp_path / "cache", progress=False)
    assert extractor.seen == 10
