"""Baselines build, train-step and save like SPADE; the paper's Fig. 3 claim as a test."""
from __future__ import annotations

import pytest
import torch

from helpers import tiny_labels, tiny_model_config
from spadekit import losses
from spadekit.config import ModelConfig
from spadekit.models import GENERATORS, SPADEModel


@pytest.mark.parametrize("arch", ["pix2pixhd", "concat"])
def test_baseline_shapes_gradients_roundtrip(arch, tmp_path):
    config = tiny_model_config(use_vae=False, norm="instance", use_instance=False)
    config.arch = arch
    config.num_res_blocks = 2
    config.num_downsample = 3
    model = SPADEModel(config)
    label = torch.randint(0, 5, (2, 1, 64, 64))
    semantic = model.semantic(label)
    fake = model.generator(semantic)
    assert fake.shape == (2, 3, 64, 64)
    loss = losses.hinge_loss(model.discriminator(semantic, fake), True, for_discriminator=False)
    loss.backward()
    for name, p in model.generator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{arch}: no gradient reaches {name}"
    model.eval().save_pretrained(tmp_path / arch)
    again = SPADEModel.from_pretrained(tmp_path / arch).eval()
    with torch.no_grad():
        assert torch.equal(model.generator(semantic), again.generator(semantic))


def _uniform_maps(n_classes: int, size: int = 64) -> list[torch.Tensor]:
    maps = []
    for k in range(n_classes):
        semantic = torch.zeros(1, n_classes, size, size)
        semantic[:, k] = 1
        maps.append(semantic)
    return maps


def test_fig3_instance_norm_washes_out_uniform_maps_spade_does_not():
    """A conv of a uniform one-hot map followed by instance norm is zero whatever the class, so the
    pix2pixHD-style generator gives one image for every class; SPADE's output differs by class."""
    torch.manual_seed(0)
    cfg = ModelConfig(labels=tiny_labels(4).to_dict(), ngf=8, crop_size=64, norm="instance", spade_hidden=16, num_downsample=2, num_res_blocks=2)
    baseline = GENERATORS["pix2pixhd"](ModelConfig(**{**cfg.__dict__, "arch": "pix2pixhd"})).eval()
    spade = GENERATORS["spade"](cfg).eval()
    maps = _uniform_maps(4)
    with torch.no_grad():
        # reflect-pad, 7x7 conv, instance norm, ReLU: where the semantic map enters the baseline
        entry = [baseline.net[:4](m) for m in maps]
        spade_out = [spade(m) for m in maps]
    # the class is gone right at the entry: every class gives (numerically) zero activations, so the
    # rest of the network cannot tell classes apart (beyond float rounding noise)
    for e in entry:
        assert e.abs().max() < 1e-3
    weight_scale = baseline.net[1].weight.abs().mean()
    assert weight_scale > 1e-3  # not trivially zero because of zero weights
    for i in range(4):
        for j in range(i + 1, 4):
            assert (spade_out[i] - spade_out[j]).abs().mean() > 1e-3, f"SPADE output for class {i} equals class {j}"
