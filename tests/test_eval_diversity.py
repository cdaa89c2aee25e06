"""LPIPS with the cached VGG16 + linear weights, and mean pairwise LPIPS."""
import pytest
import torch

from spadekit import SpadekitError
from spadekit.eval.diversity import LPIPS, mean_pairwise_lpips


@pytest.fixture(scope="module")
def lpips():
    return LPIPS()


def _image(seed=0, size=64):
    # A smooth random image (low-frequency content), so noise is a real change.
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def test_lpips_of_identical_images_is_zero(lpips):
    x = _image()
    assert lpips(x, x).item() == 0.0


def test_lpips_grows_with_noise(lpips):
    x = _image()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    with torch.no_grad():
        values = [lpips(x, (x + s * noise).clamp(-1, 1)).item() for s in (0.02, 0.1, 0.4)]
    assert 0 < values[0] < values[1] < values[2]
    assert values[2] < 2.0  # LPIPS values live around [0, 1]


def test_lpips_is_symmetric_and_batched_and_differentiable(lpips):
    x, y = torch.cat([_image(0), _image(1)]), torch.cat([_image(2), _image(3)])
    d = lpips(x, y)
    assert d.shape == (2,)
    torch.testing.assert_close(d, lpips(y, x))
    x = x.clone().requires_grad_(True)
    lpips(x, y).sum().backward()
    assert x.grad.abs().sum() > 0


def test_mean_pairwise_lpips(lpips):
    a, b, c = _image(0), _image(1), _image(2)
    images = torch.cat([a, b, c])
    with torch.no_grad():
        expected = (lpips(a, b) + lpips(a, c) + lpips(b, c)).item() / 3
    assert mean_pairwise_lpips(lpips, images) == pytest.approx(expected, rel=1e-5)
    assert mean_pairwise_lpips(lpips, torch.cat([a, a])) == 0.0
    with pytest.raises(SpadekitError, match="at least 2"):
        mean_pairwise_lpips(lpips, a)
