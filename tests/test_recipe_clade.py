"""CLADE: per-class lookup of scale and bias; one-hot and label-index inputs agree; gradients reach
exactly the rows of the classes present."""
import pytest
import torch
import torch.nn.functional as F

from spadekit.layers.clade import CLADE
from spadekit.semantic import one_hot


def _randomised(layer):
    with torch.no_grad():
        layer.gamma.normal_()
        layer.beta.normal_()
    return layer


@pytest.mark.parametrize("size,map_size", [(8, 8), (16, 32), (8, 32), (12, 24)])
def test_output_shape_and_one_hot_equals_label_index(size, map_size):
    layer = _randomised(CLADE(channels=6, semantic_channels=5, norm="instance"))
    x = torch.randn(2, 6, size, size)
    label = torch.randint(0, 5, (2, 1, map_size, map_size))
    from_one_hot = layer(x, one_hot(label, 5))
    assert from_one_hot.shape == x.shape
    assert torch.allclose(layer(x, label), from_one_hot, atol=1e-6)
    assert torch.allclose(layer(x, label[:, 0]), from_one_hot, atol=1e-6)


def test_each_pixel_takes_its_class_row():
    layer = _randomised(CLADE(channels=3, semantic_channels=4, norm="batch"))
    x = torch.randn(2, 3, 4, 4)
    label = torch.randint(0, 4, (2, 1, 4, 4))
    out = layer(x, label)
    normalized = F.batch_norm(x, None, None, training=True)
    for b in range(2):
        for y in range(4):
            for w in range(4):
                c = int(label[b, 0, y, w])
                expected = normalized[b, :, y, w] * layer.gamma[c] + layer.beta[c]
                assert torch.allclose(out[b, :, y, w], expected, atol=1e-5)


def test_starts_as_plain_normalisation():
    layer = CLADE(channels=4, semantic_channels=3, norm="instance")
    x = torch.randn(1, 4, 8, 8)
    assert torch.allclose(layer(x, torch.randint(0, 3, (1, 1, 8, 8))), F.instance_norm(x), atol=1e-6)


def test_gradients_reach_the_rows_of_present_classes_only():
    layer = _randomised(CLADE(channels=4, semantic_channels=5, norm="batch"))
    label = torch.randint(0, 3, (2, 1, 8, 8))  # classes 3 and 4 absent
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    (layer(x, one_hot(label, 5)) * torch.randn(2, 4, 8, 8)).sum().backward()
    for table in (layer.gamma, layer.beta):
        assert (table.grad[:3].abs().sum(1) > 0).all() and torch.all(table.grad[3:] == 0)
    assert x.grad.abs().sum() > 0


def test_lookup_and_one_hot_gradients_agree():
    layer = _randomised(CLADE(channels=4, semantic_channels=5, norm="instance"))
    label = torch.randint(0, 5, (2, 1, 16, 16))
    x, weights = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    grads = []
    for semantic in (one_hot(label, 5), label):
        layer.zero_grad()
        (layer(x, semantic) * weights).sum().backward()
        grads.append((layer.gamma.grad.clone(), layer.beta.grad.clone()))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))


def test_soft_map_blends_rows_and_channel_mismatch_is_caught():
    layer = _randomised(CLADE(channels=2, semantic_channels=2, norm="instance"))
    x = torch.randn(1, 2, 2, 2)
    soft = torch.full((1, 2, 2, 2), 0.5)
    gamma, beta = layer.modulation(soft, (2, 2))
    assert torch.allclose(gamma[0, :, 0, 0], (layer.gamma[0] + layer.gamma[1]) / 2)
    assert torch.allclose(beta[0, :, 1, 1], (layer.beta[0] + layer.beta[1]) / 2)
    with pytest.raises(ValueError, match="2 class rows"):
        layer(x, torch.zeros(1, 3, 2, 2))
