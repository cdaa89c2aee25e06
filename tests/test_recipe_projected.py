"""The frozen-VGG16 discriminator: [layer][features] shapes, gradients reach every head parameter
and none reach VGG, the losses of the multi-scale discriminator work unchanged."""
import pytest
import torch

from spadekit import SpadekitError
from spadekit.losses import feature_matching_loss, hinge_loss
from spadekit.models.projected import ProjectedDiscriminator
from spadekit.models.vgg import VGGFeatures
from spadekit.semantic import one_hot


@pytest.fixture(scope="module")
def pretrained():
    return ProjectedDiscriminator(semantic_channels=4, head_channels=8)


def _pair(size=16, batch=2, channels=4):
    return one_hot(torch.randint(0, channels, (batch, 1, size, size)), channels), torch.rand(batch, 3, size, size) * 2 - 1


@pytest.mark.parametrize("size", [16, 24, 40])
def test_one_entry_per_layer_with_head_features_and_patch_logits(size):
    d = ProjectedDiscriminator(semantic_channels=4, head_channels=8, pretrained=False)
    outputs = d(*_pair(size))
    assert len(outputs) == 3
    for k, scale in enumerate(outputs):  # relu2_2, relu3_3, relu4_3: 1/2, 1/4, 1/8 of the side
        side = size // 2 ** (k + 1)
        assert [tuple(f.shape) for f in scale] == [(2, 8, side, side), (2, 8, side, side), (2, 1, side, side)]


def test_layers_can_be_chosen_and_unknown_ones_are_errors():
    d = ProjectedDiscriminator(semantic_channels=3, layers=["relu3_3", "relu1_2"], head_channels=4, channel_mixing=False, pretrained=False)
    assert d.layer_names == ["relu1_2", "relu3_3"]
    assert [o[-1].shape[-1] for o in d(*_pair(32, channels=3))] == [32, 8]
    with pytest.raises(SpadekitError, match="relu9_9"):
        ProjectedDiscriminator(semantic_channels=3, layers=["relu9_9"], pretrained=False)


def test_vgg_stage_equals_the_pretrained_feature_extractor(pretrained):
    # the frozen trunk is the shipped ImageNet VGG16, normalisation included
    vgg = VGGFeatures("vgg16")
    semantic, image = _pair()
    features = {}
    hooks = [head.register_forward_pre_hook(lambda m, args, k=k: features.__setitem__(k, args[0])) for k, head in enumerate(pretrained.heads)]
    pretrained(semantic, image)
    for h in hooks:
        h.remove()
    reference = vgg(image)
    for k, index in enumerate([1, 2, 3]):  # relu2_2, relu3_3, relu4_3
        assert torch.allclose(features[k], reference[index], atol=1e-5)


def test_gradients_reach_every_head_parameter_and_no_vgg_weight(pretrained):
    before = [w.clone() for w in pretrained.vgg.weights]
    assert len(before) == 2 * 10  # conv weights and biases up to relu4_3
    pretrained.requires_grad_(True)  # what the trainer does after the G step: must not unfreeze VGG
    pretrained.zero_grad()
    semantic, image = _pair()
    outputs = pretrained(semantic, image)
    loss = hinge_loss(outputs, True) + feature_matching_loss(outputs, pretrained(*_pair()))
    loss.backward()
    trainable = dict(pretrained.named_parameters())
    assert trainable and not any(name.startswith("vgg") for name in trainable)
    assert not any(name.startswith("vgg") for name, _ in pretrained.named_buffers())
    for name, parameter in trainable.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert all(not w.requires_grad and w.grad is None for w in pretrained.vgg.weights)
    # an optimiser over the discriminator's parameters leaves VGG as it was; weight initialisation,
    # which walks the Conv2d modules, finds none in it
    torch.optim.Adam(pretrained.parameters(), lr=0.1).step()
    assert all(torch.equal(w, b) for w, b in zip(pretrained.vgg.weights, before))
    assert not any(isinstance(m, torch.nn.Conv2d) for m in pretrained.vgg.modules())


def test_moving_the_discriminator_moves_the_frozen_weights():
    d = ProjectedDiscriminator(semantic_channels=2, layers=["relu1_2"], head_channels=4, pretrained=False)
    d.to(torch.float64)
    assert all(w.dtype == torch.float64 for w in d.vgg.weights)
    semantic, image = _pair(channels=2)
    assert d(semantic.double(), image.double())[0][-1].dtype == torch.float64


def test_gradients_reach_the_image_through_frozen_vgg(pretrained):
    semantic, image = _pair()
    image.requires_grad_(True)
    hinge_loss(pretrained(semantic, image), True, for_discriminator=False).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_label_map_changes_the_logits(pretrained):
    semantic, image = _pair()
    other = one_hot(torch.randint(0, 4, (2, 1, 32, 32)), 4)
    pretrained.eval()  # no spectral-norm power iteration between the two calls
    with torch.no_grad():
        for head in pretrained.heads:
            head.embed.weight_orig.normal_()
        a, b = pretrained(semantic, image), pretrained(other, image)
    pretrained.train()
    assert all(not torch.allclose(x[-1], y[-1]) for x, y in zip(a, b))
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b))  # the head's features read the image only


def test_checkpoint_holds_the_heads_and_mixing_but_not_vgg(pretrained):
    state = pretrained.state_dict()
    assert not any(k.startswith("vgg") for k in state)
    assert all(f"heads.{k}.mixing" in state for k in range(3))
    fresh = ProjectedDiscriminator(semantic_channels=4, head_channels=8)
    fresh.load_state_dict(state)
    semantic, image = _pair()
    pretrained.eval(), fresh.eval()
    with torch.no_grad():
        assert all(torch.allclose(x[-1], y[-1]) for x, y in zip(pretrained(semantic, image), fresh(semantic, image)))
    pretrained.train()
