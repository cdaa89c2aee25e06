"""ModelConfig.min_width: the widths it gives, and narrower weights widened to it without changing the images."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import tiny_model_config
from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.models import SPADEModel
from spadekit.models.generator import generator_block_plan
from spadekit.models.widen import widen_generator_state
from spadekit.train.loop import init_weights, load_init_weights


def _config(arch: str = "spade", min_width: int = 0) -> ModelConfig:
    # ngf 4: up_0..up_3 run 64->32->16->8->4; min_width 16 widens up_2's output and all of up_3
    return dataclasses.replace(tiny_model_config(ngf=4), arch=arch, min_width=min_width)


def _inputs(model: SPADEModel, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (batch, 1, h, w), generator=g)
    return model.semantic(label, label), torch.randn(batch, model.config.z_dim, generator=g)


def _trained_looking(model: SPADEModel) -> SPADEModel:
    """Weights large enough for a varied image, batch-norm statistics and spectral-norm vectors moved off their init."""
    torch.manual_seed(1)
    init_weights(model.generator, 1.0)
    with torch.no_grad():
        for name, p in model.generator.named_parameters():
            if "gamma" in name or "beta" in name:
                p.normal_(0.0, 0.5)
        model.generator.train()
        for seed in range(3):
            model.generator(*_inputs(model, seed=seed))
    return model.eval()


@pytest.mark.parametrize("min_width", [0, 16, 64])
def test_min_width_sets_the_fewest_channels_and_keeps_the_plans_shortcuts(min_width, tmp_path):
    model = SPADEModel(_config(min_width=min_width))
    plan = {name: (fin * 2, fout * 2) for name, fin, fout, _ in generator_block_plan("normal")}
    for name, block in model.generator.blocks.items():
        nominal_in, nominal_out = plan[name]
        assert block.conv_0.in_channels == max(nominal_in, min_width)
        assert block.conv_1.out_channels == max(nominal_out, min_width)
        assert block.conv_0.out_channels == min(block.conv_0.in_channels, block.conv_1.out_channels)
        assert block.learned_shortcut == (nominal_in != nominal_out)
    assert model.generator.to_rgb.in_channels == max(4, min_width)
    semantic, z = _inputs(model)
    model.eval()
    with torch.no_grad():
        images = model.generator(semantic, z)
    assert images.shape == (2, 3, 64, 64)
    model.save_pretrained(tmp_path / "m")
    again = SPADEModel.from_pretrained(tmp_path / "m").eval()
    assert again.config.min_width == min_width
    with torch.no_grad():
        assert torch.equal(again.generator(semantic, z), images)


def test_min_width_outside_its_range_is_refused_by_name():
    for bad in (-1, 65):
        with pytest.raises(ValueError, match="min_width"):
            _config(min_width=bad)
    with pytest.raises(ValueError, match="min_width"):
        dataclasses.replace(_config(), arch="pix2pixhd", use_vae=False, min_width=16)


@pytest.mark.parametrize("arch", ["spade", "clade"])
def test_widened_weights_make_the_same_images(arch):
    narrow = _trained_looking(SPADEModel(_config(arch)))
    wide = SPADEModel(_config(arch, min_width=16))
    init_weights(wide.generator, 1.0)
    wide.generator.load_state_dict(widen_generator_state(narrow.generator.state_dict(), wide.generator))
    wide.eval()
    semantic, z = _inputs(narrow, seed=5)
    with torch.no_grad():
        before, after = narrow.generator(semantic, z), wide.generator(semantic, z)
    assert before.std() > 0.1  # a varied image, so equality means something
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    # the weights really are wider, and the new channels are live: weights off the old function change it
    assert wide.generator.blocks["up_3"].conv_1.weight_orig.shape[0] == 16
    with torch.no_grad():
        wide.generator.blocks["up_3"].conv_1.weight_orig[8:].normal_()
        assert (wide.generator(semantic, z) - before).abs().max() > 1e-3


def test_a_widened_generator_trains_every_new_weight():
    narrow = _trained_looking(SPADEModel(_config()))
    wide = SPADEModel(_config(min_width=16))
    init_weights(wide.generator, 1.0)
    state = widen_generator_state(narrow.generator.state_dict(), wide.generator)
    wide.generator.load_state_dict(state)
    generator = wide.generator.train()
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.05)
    target = torch.rand(2, 3, 64, 64) * 2 - 1
    for step in range(3):
        optimizer.zero_grad()
        semantic, z = _inputs(wide, seed=step)
        loss = (generator(semantic, z) - target).abs().mean()
        loss.backward()
        optimizer.step()
    # after a few steps every new slice has moved off its starting value (each got gradients)
    new = generator.state_dict()
    moved = [key for key, value in state.items() if value.shape != narrow.generator.state_dict()[key].shape
             and key.endswith(("weight", "weight_orig"))]
    assert moved
    for key in moved:
        old = narrow.generator.state_dict()[key]
        grown = new[key].clone()
        grown[tuple(slice(0, n) for n in old.shape)] = 0  # look at the new part only
        start = state[key].clone()
        start[tuple(slice(0, n) for n in old.shape)] = 0
        assert not torch.equal(grown, start), key


def test_init_from_widens_a_narrower_model_folder(tmp_path):
    narrow = _trained_looking(SPADEModel(_config()))
    narrow.save_pretrained(tmp_path / "narrow")
    wide = SPADEModel(_config(min_width=16))
    init_weights(wide.generator, 0.02)
    assert "generator" in load_init_weights(wide, tmp_path / "narrow")
    semantic, z = _inputs(narrow, seed=7)
    wide.eval()
    with torch.no_grad():
        torch.testing.assert_close(wide.generator(semantic, z), narrow.generator(semantic, z), atol=1e-5, rtol=0)
    # a folder whose generator differs in more than min_width still fails by name
    other = SPADEModel(dataclasses.replace(_config(), ngf=8))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(SpadekitError, match="init_from"):
        load_init_weights(SPADEModel(_config(min_width=16)), tmp_path / "other")
    with pytest.raises(SpadekitError, match="clade"):
        widen_generator_state(narrow.generator.state_dict(), SPADEModel(dataclasses.replace(_config(min_width=16), arch="concat")).generator)
