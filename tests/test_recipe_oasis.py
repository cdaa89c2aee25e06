"""OASIS: the segmentation discriminator's shapes and gradients, its losses against hand
computations, LabelMix on a known mask, 3D noise."""
import math

import pytest
import torch

from spadekit.losses import class_balance_weights, labelmix_loss, oasis_fake_loss, oasis_real_loss
from spadekit.models.oasis import (
    OASISDiscriminator,
    labelmix,
    labelmix_mask,
    oasis_widths,
    realness_logits,
    with_3d_noise,
)
from spadekit.semantic import one_hot


@pytest.mark.parametrize("size,blocks", [(16, 2), (32, 3), (64, 4), (48, 3)])
def test_discriminator_gives_n_plus_one_logits_at_full_size(size, blocks):
    d = OASISDiscriminator(num_classes=5, ndf=8, num_blocks=blocks)
    logits = d(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 6, size, size)


def test_discriminator_rectangular_input_and_size_check():
    d = OASISDiscriminator(num_classes=3, ndf=4, num_blocks=3)
    assert d(torch.randn(1, 3, 16, 32)).shape == (1, 4, 16, 32)
    with pytest.raises(ValueError, match="divisible by 8"):
        d(torch.randn(1, 3, 20, 20))


def test_widths_follow_the_paper():
    assert oasis_widths(128, 6) == [128, 128, 256, 256, 512, 512]


def test_gradients_reach_every_discriminator_parameter():
    d = OASISDiscriminator(num_classes=4, ndf=4, num_blocks=3)
    semantic = one_hot(torch.randint(0, 4, (2, 1, 16, 16)), 4)
    loss = oasis_real_loss(d(torch.randn(2, 3, 16, 16)), semantic) + oasis_fake_loss(d(torch.randn(2, 3, 16, 16)), semantic)
    loss.backward()
    for name, parameter in d.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_class_balance_weights_on_a_2x2_map_by_hand():
    # classes [[0, 0], [0, 1]]: n0 = 3, n1 = 1, K = 2 classes present, L = 4 labelled pixels.
    semantic = one_hot(torch.tensor([[[[0, 0], [0, 1]]]]), 3)  # class 2 absent
    weights = class_balance_weights(semantic)
    a0, a1 = 4 / (2 * 3), 4 / (2 * 1)
    assert torch.allclose(weights, torch.tensor([[[a0, a0], [a0, a1]]]))
    assert weights.mean() == pytest.approx(1.0)


def test_class_balanced_cross_entropy_on_a_2x2_map_by_hand():
    semantic = one_hot(torch.tensor([[[[0, 0], [0, 1]]]]), 2)
    logits = torch.tensor([[[[2.0, 0.0], [1.0, -1.0]],   # class 0
                            [[0.0, 1.0], [0.0, 0.5]],    # class 1
                            [[0.0, 0.0], [-1.0, 0.0]]]])  # fake
    def log_softmax_at(y, x, c):
        values = [float(logits[0, k, y, x]) for k in range(3)]
        return values[c] - math.log(sum(math.exp(v) for v in values))
    a0, a1 = 4 / 6, 2.0
    expected_real = -(a0 * (log_softmax_at(0, 0, 0) + log_softmax_at(0, 1, 0) + log_softmax_at(1, 0, 0))
                      + a1 * log_softmax_at(1, 1, 1)) / 4
    expected_fake = -sum(log_softmax_at(y, x, 2) for y in range(2) for x in range(2)) / 4
    assert oasis_real_loss(logits, semantic).item() == pytest.approx(expected_real, rel=1e-6)
    assert oasis_fake_loss(logits, semantic).item() == pytest.approx(expected_fake, rel=1e-6)


def test_unlabelled_pixels_count_in_no_loss():
    semantic = one_hot(torch.randint(0, 3, (2, 1, 8, 8)), 3)
    logits = torch.randn(2, 4, 8, 8)
    cut = semantic.clone()
    cut[:, :, :4] = 0  # top half of every map: no class (e.g. a cutout)
    changed = logits.clone()
    changed[:, :, :4] = torch.randn(2, 4, 4, 8) * 10
    assert oasis_real_loss(changed, cut) == pytest.approx(oasis_real_loss(logits, cut).item())
    assert oasis_fake_loss(changed, cut) == pytest.approx(oasis_fake_loss(logits, cut).item())
    # on the bottom half alone the loss is that of the bottom half's own map
    assert oasis_real_loss(logits, cut).item() == pytest.approx(oasis_real_loss(logits[:, :, 4:], semantic[:, :, 4:]).item(), rel=1e-6)


def test_loss_shapes_are_checked():
    with pytest.raises(ValueError, match="one channel more"):
        oasis_real_loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_labelmix_on_a_known_mask():
    real, fake = torch.full((1, 3, 2, 2), 1.0), torch.full((1, 3, 2, 2), -1.0)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    mixed = labelmix(real, fake, mask)
    assert torch.equal(mixed[0, :, 0, 0], real[0, :, 0, 0]) and torch.equal(mixed[0, :, 0, 1], fake[0, :, 0, 1])
    d_real = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]).expand(1, 2, 2, 2)
    d_fake = torch.tensor([[[[-1.0, -2.0], [-3.0, -4.0]]]]).expand(1, 2, 2, 2)
    d_mixed = torch.zeros(1, 2, 2, 2)
    # target [[1, -2], [-3, 4]] in both channels; mean of squares = (1 + 4 + 9 + 16) / 4
    assert labelmix_loss(d_mixed, d_real, d_fake, mask, weight=10.0).item() == pytest.approx(10 * 30 / 4)
    assert labelmix_loss(torch.tensor([[[[1.0, -2.0], [-3.0, 4.0]]]]).expand(1, 2, 2, 2), d_real, d_fake, mask).item() == 0


def test_labelmix_mask_is_a_union_of_whole_classes():
    label = torch.randint(0, 6, (4, 1, 16, 16))
    semantic = one_hot(label, 6)
    mask = labelmix_mask(semantic, torch.Generator().manual_seed(0))
    assert mask.shape == (4, 1, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    for b in range(4):
        for c in range(6):
            values = mask[b, 0][label[b, 0] == c]
            assert values.numel() == 0 or values.min() == values.max()  # a class is all in or all out
    assert 0 < mask.mean() < 1


def test_realness_logit_is_real_mass_against_fake():
    logits = torch.tensor([[[[0.0]], [[0.0]], [[math.log(2.0)]]]])  # p = (1/4, 1/4, 1/2)
    assert realness_logits(logits).item() == pytest.approx(0.0, abs=1e-6)


def test_3d_noise_is_the_same_vector_at_every_pixel():
    semantic = one_hot(torch.randint(0, 3, (2, 1, 4, 5)), 3)
    z = torch.randn(2, 7)
    x = with_3d_noise(semantic, z)
    assert x.shape == (2, 10, 4, 5)
    assert torch.equal(x[:, :3], semantic)
    assert torch.equal(x[:, 3:], z[:, :, None, None].expand(2, 7, 4, 5))
    with pytest.raises(ValueError, match="z_dim"):
        with_3d_noise(semantic, torch.randn(3, 7))


def test_generator_loss_pushes_fakes_towards_their_classes():
    # One gradient step on the image through D with the G loss lowers that loss (gradients flow to G's output).
    d = OASISDiscriminator(num_classes=3, ndf=4, num_blocks=2)
    semantic = one_hot(torch.randint(0, 3, (1, 1, 8, 8)), 3)
    fake = torch.randn(1, 3, 8, 8, requires_grad=True)
    loss = oasis_real_loss(d(fake), semantic)
    loss.backward()
    with torch.no_grad():
        stepped = fake - 0.1 * fake.grad / fake.grad.norm()
    assert oasis_real_loss(d(stepped), semantic) < loss
