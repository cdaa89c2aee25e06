"""Differentiable augmentation: image and label map move together, p = 0 is the identity, colour
operations match their definitions, gradients flow; ADA's controller follows D's overfitting."""
import pytest
import torch

from spadekit import SpadekitError
from spadekit.augment import POLICIES, AdaptiveProbability, augment, parse_policy
from spadekit.semantic import one_hot


def _square_pair(size=32, top=10, left=12, side=6, batch=1):
    """A grey image with one red square, and its label map: class 1 on the square, class 0 elsewhere."""
    image = torch.zeros(batch, 3, size, size)
    image[:, 0, top:top + side, left:left + side] = 1.0
    label = torch.zeros(batch, 1, size, size, dtype=torch.long)
    label[:, :, top:top + side, left:left + side] = 1
    return image, one_hot(label, 2)


def _square_box(mask):
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())


def test_translation_moves_image_and_label_map_identically():
    image, semantic = _square_pair(batch=8)
    out_image, out_semantic = augment(image, semantic, "translation", p=1.0, generator=torch.Generator().manual_seed(3))
    moved = 0
    for b in range(8):
        red = out_image[b, 0] == 1.0
        square = out_semantic[b, 1] == 1.0
        assert torch.equal(red, square)  # the same pixels in both
        top, left, bottom, right = _square_box(square)
        assert (bottom - top, right - left) == (5, 5)  # moved, not resized
        assert abs(top - 10) <= 4 and abs(left - 12) <= 4  # at most 1/8 of 32
        moved += (top, left) != (10, 12)
        # uncovered border: grey image, no class
        empty = out_semantic[b].sum(0) == 0
        assert torch.all(out_image[b][:, empty] == 0)
        assert empty.sum() == 32 * 32 - (out_semantic[b].sum(0) == 1).sum()
    assert moved >= 6


def test_translation_by_a_known_shift_against_slicing():
    # With max shift 4 and a generator whose first draws are known, compare with plain slicing.
    image = torch.randn(2, 3, 32, 32)
    semantic = one_hot(torch.randint(0, 5, (2, 1, 32, 32)), 5)
    generator = torch.Generator().manual_seed(11)
    out_image, out_semantic = augment(image, semantic, "translation", p=1.0, generator=generator)
    # recover the draws in the order augment makes them: apply coin, dy, dx
    replay = torch.Generator().manual_seed(11)
    torch.rand((2,), generator=replay)
    dy = torch.randint(-4, 5, (2,), generator=replay)
    dx = torch.randint(-4, 5, (2,), generator=replay)
    for b in range(2):
        expected = torch.zeros(3 + 5, 32, 32)
        source = torch.cat([image[b], semantic[b]])
        y0, x0 = int(dy[b]), int(dx[b])
        dst_y = slice(max(y0, 0), 32 + min(y0, 0))
        dst_x = slice(max(x0, 0), 32 + min(x0, 0))
        src_y = slice(max(-y0, 0), 32 + min(-y0, 0))
        src_x = slice(max(-x0, 0), 32 + min(-x0, 0))
        expected[:, dst_y, dst_x] = source[:, src_y, src_x]
        assert torch.equal(out_image[b], expected[:3]) and torch.equal(out_semantic[b], expected[3:])


def test_a_list_of_images_gets_the_same_transforms():
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    fake = torch.rand(4, 3, 16, 16) * 2 - 1
    semantic = one_hot(torch.randint(0, 3, (4, 1, 16, 16)), 3)
    policy = "translation,cutout,color"
    (out_real, out_fake), out_semantic = augment([real, fake], semantic, policy, p=1.0, generator=torch.Generator().manual_seed(9))
    alone_real, alone_semantic = augment(real, semantic, policy, p=1.0, generator=torch.Generator().manual_seed(9))
    alone_fake, _ = augment(fake, semantic, policy, p=1.0, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(out_real, alone_real) and torch.allclose(out_fake, alone_fake)
    assert torch.equal(out_semantic, alone_semantic)
    # colour runs first, so the pixels translation and cutout empty are exactly 0 in both, and of no class
    empty = out_semantic.sum(1) == 0
    assert empty.any()
    assert torch.all(out_real.permute(1, 0, 2, 3)[:, empty] == 0) and torch.all(out_fake.permute(1, 0, 2, 3)[:, empty] == 0)


def test_cutout_cuts_the_same_square_from_image_and_map():
    image = torch.rand(6, 3, 32, 32) + 0.5  # never 0 before the cut
    semantic = one_hot(torch.randint(0, 3, (6, 1, 32, 32)), 3)
    out_image, out_semantic = augment(image, semantic, "cutout", p=1.0, generator=torch.Generator().manual_seed(0))
    for b in range(6):
        cut_image = (out_image[b] == 0).all(0)
        cut_map = out_semantic[b].sum(0) == 0
        assert torch.equal(cut_image, cut_map)
        assert 0 < cut_map.sum() <= 16 * 16
        kept = ~cut_map
        assert torch.equal(out_image[b][:, kept], image[b][:, kept])
        assert torch.equal(out_semantic[b][:, kept], semantic[b][:, kept])


def test_p_zero_is_the_identity_and_p_one_changes_every_pair():
    image, semantic = torch.rand(4, 3, 16, 16) * 2 - 1, one_hot(torch.randint(0, 4, (4, 1, 16, 16)), 4)
    same_image, same_semantic = augment(image, semantic, "translation,cutout,color", p=0.0)
    assert same_image is image and same_semantic is semantic
    changed, _ = augment(image, semantic, "color", p=1.0, generator=torch.Generator().manual_seed(1))
    assert all(not torch.allclose(changed[b], image[b]) for b in range(4))


def test_probability_is_drawn_per_pair():
    image, semantic = torch.rand(200, 3, 8, 8) * 2 - 1, one_hot(torch.zeros(200, 1, 8, 8, dtype=torch.long), 1)
    out, _ = augment(image, semantic, "brightness", p=0.3, generator=torch.Generator().manual_seed(5))
    fraction = (out != image).flatten(1).any(1).float().mean()
    assert 0.2 < fraction < 0.4


def test_colour_operations_follow_their_definitions():
    image = torch.rand(3, 3, 8, 8) * 2 - 1
    semantic = one_hot(torch.randint(0, 2, (3, 1, 8, 8)), 2)
    for name, check in [
        ("brightness", lambda x, y: (y - x).flatten(1).std(1).max() < 1e-6),  # one offset per image
        ("saturation", lambda x, y: torch.allclose(y.mean(1), x.mean(1), atol=1e-6)),  # grey kept
        ("contrast", lambda x, y: torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)),  # mean kept
    ]:
        out, out_semantic = augment(image, semantic, name, p=1.0, generator=torch.Generator().manual_seed(2))
        assert check(image, out), name
        assert not torch.allclose(out, image), name
        assert out_semantic is semantic  # colour never touches the map


def test_gradients_flow_to_the_image_through_every_operation():
    image = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    semantic = one_hot(torch.randint(0, 3, (2, 1, 16, 16)), 3)
    out, _ = augment(image, semantic, ",".join(POLICIES), p=1.0, generator=torch.Generator().manual_seed(0))
    (out * torch.randn_like(out)).sum().backward()
    assert image.grad is not None and torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


def test_translation_gradient_reaches_exactly_the_pixels_that_stay_in_view():
    image = torch.rand(3, 3, 16, 16).requires_grad_(True)
    semantic = one_hot(torch.zeros(3, 1, 16, 16, dtype=torch.long), 1)  # every pixel labelled
    out, out_semantic = augment(image, semantic, "translation", p=1.0, generator=torch.Generator().manual_seed(4))
    out.sum().backward()
    for b in range(3):
        in_view = int(out_semantic[b].sum())  # the pixels that still come from the image
        assert int((image.grad[b] == 1).sum()) == 3 * in_view
        assert int((image.grad[b] == 0).sum()) == 3 * (16 * 16 - in_view)


def test_unknown_policy_and_bad_probability_are_clear_errors():
    image, semantic = torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8)
    with pytest.raises(SpadekitError, match="'rotate'.*translation"):
        augment(image, semantic, "translation,rotate", p=0.5)
    with pytest.raises(SpadekitError, match="outside"):
        augment(image, semantic, "color", p=1.5)
    assert parse_policy("translation, cutout ,color") == ["translation", "cutout", "color"]


def _overfit_logits(batch=4):
    return torch.full((batch, 1, 4, 4), 3.0)  # D sure of every real: r_t = 1


def test_ada_raises_p_when_d_overfits_and_lowers_it_otherwise():
    ada = AdaptiveProbability(target=0.6, interval=4, ramp_images=100)
    for _ in range(3):
        assert ada.update(_overfit_logits()) == 0.0  # nothing until the 4th batch
    assert ada.update(_overfit_logits()) == pytest.approx(16 / 100)  # 4 batches x 4 images
    assert ada.last_rt == pytest.approx(1.0)
    for _ in range(8):
        ada.update(_overfit_logits())
    assert ada.p == pytest.approx(48 / 100)
    # D unsure (half of its real logits negative): r_t = 0 < 0.6, p comes down
    unsure = torch.cat([torch.full((2, 1, 4, 4), 1.0), torch.full((2, 1, 4, 4), -1.0)])
    for _ in range(4):
        ada.update(unsure)
    assert ada.p == pytest.approx(32 / 100) and ada.last_rt == pytest.approx(0.0)
    for _ in range(40):
        ada.update(unsure)
    assert ada.p == 0.0  # clipped


def test_ada_reads_multiscale_outputs_and_resumes_from_its_state():
    # [scale][features]: only the last entry of each scale (the prediction) counts
    outputs = [[torch.full((2, 8, 4, 4), -5.0), torch.full((2, 1, 4, 4), 2.0)], [torch.full((2, 1, 2, 2), 2.0)]]
    ada = AdaptiveProbability(interval=2, ramp_images=10)
    ada.update(outputs)
    saved = ada.state_dict()
    resumed = AdaptiveProbability(interval=2, ramp_images=10)
    resumed.load_state_dict(saved)
    assert ada.update(outputs) == resumed.update(outputs) == pytest.approx(4 / 10)
    with pytest.raises(SpadekitError, match="target"):
        AdaptiveProbability(target=1.2)
