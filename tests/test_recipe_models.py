"""The recipe variants as models: every registered generator and discriminator builds from a tiny
config, gets gradients to every parameter and survives save/reload; CLADE reads label maps through
lookups with the dense path's numbers; 3D noise is an extra input the generator varies with."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import tiny_model_config
from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.losses import hinge_loss, oasis_real_loss
from spadekit.models import SPADEModel, optimize_for_inference
from spadekit.models.oasis import OASISDiscriminator
from spadekit.models.registry import DISCRIMINATORS, GENERATORS, discriminator_builder


def _config(**changes) -> ModelConfig:
    base = tiny_model_config(use_vae=changes.pop("use_vae", False))
    return dataclasses.replace(base, **changes)


def _inputs(model: SPADEModel, batch: int = 2):
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (batch, 1, h, w))
    return label, model.semantic(label), torch.rand(batch, 3, h, w) * 2 - 1


def _d_loss(model: SPADEModel, semantic, image):
    d = model.discriminator
    if isinstance(d, OASISDiscriminator):
        return oasis_real_loss(d(image), semantic[:, : d.num_classes])
    return hinge_loss(d(semantic, image), True)


@pytest.mark.parametrize("d_arch", sorted(DISCRIMINATORS))
def test_every_discriminator_trains_and_round_trips(d_arch, tmp_path):
    config = _config(d_arch=d_arch, d_num_layers=3, **({"d_vgg_layers": "relu1_2,relu2_2"} if d_arch == "projected" else {}))
    model = SPADEModel(config)
    _, semantic, image = _inputs(model)
    _d_loss(model, semantic, image).backward()
    for name, parameter in model.discriminator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    model.save_pretrained(tmp_path)
    loaded = SPADEModel.from_pretrained(tmp_path)
    assert type(loaded.discriminator) is type(model.discriminator) and loaded.config == config
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.allclose(_d_loss(model, semantic, image), _d_loss(loaded, semantic, image), atol=1e-6)


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_every_generator_builds_by_name_and_gets_gradients(arch):
    config = _config(arch=arch, num_downsample=2, num_res_blocks=1)
    model = SPADEModel(config, with_discriminator=False)
    assert isinstance(model.generator, GENERATORS[arch])
    _, semantic, _ = _inputs(model)
    model.generator(semantic).square().mean().backward()
    for name, parameter in model.generator.named_parameters():
        assert parameter.grad is not None, name


@pytest.mark.parametrize("use_vae", [False, True])
def test_clade_generator_reads_label_maps_with_the_dense_numbers_and_gradients(use_vae, tmp_path):
    torch.manual_seed(0)
    model = SPADEModel(_config(arch="clade", use_vae=use_vae, norm="instance"), with_discriminator=False)
    for module in model.generator.modules():  # tables away from their identity start
        if hasattr(module, "gamma") and isinstance(module.gamma, torch.nn.Parameter):
            with torch.no_grad():
                module.gamma.normal_(1.0, 0.3), module.beta.normal_(0.0, 0.3)
    label, semantic, _ = _inputs(model)
    z = torch.randn(2, model.config.z_dim) if use_vae else None
    model.eval()  # spectral norm's power iteration would move the weights between the two passes
    outputs, grads = [], []
    for source in (semantic, model.label_maps(label)):
        model.generator.zero_grad()
        out = model.generator(source, z)
        out.square().mean().backward()
        outputs.append(out.detach())
        grads.append({k: p.grad.clone() for k, p in model.generator.named_parameters()})
    assert outputs[0].shape == (2, 3, 64, 64)
    assert torch.allclose(outputs[0], outputs[1], atol=1e-3)  # float rounding of the input conv lookup, amplified
    for key in grads[0]:
        assert torch.allclose(grads[0][key], grads[1][key], atol=1e-5, rtol=1e-4), key
    # the table rows of classes present receive gradient: the label map drives the output
    assert all(g.abs().sum() > 0 for k, g in grads[0].items() if k.endswith(".gamma"))
    # inference copy: the same image (after a forward without gradients: a copy cannot hold the
    # spectral-norm weights of a forward with gradients)
    with torch.no_grad():
        model.generator(semantic, z)
    fast = optimize_for_inference(model)
    with torch.no_grad():
        assert torch.allclose(fast.generator(model.label_maps(label), z), model.generator(semantic, z), atol=1e-3)


def test_clade_generator_is_the_spade_generator_with_tables_for_spade_layers():
    from spadekit.layers.clade import CLADE
    from spadekit.layers.spade import SPADE

    spade = SPADEModel(_config(arch="spade"), with_discriminator=False).generator
    clade = SPADEModel(_config(arch="clade"), with_discriminator=False).generator
    count = lambda modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    spade_layers = [m for m in spade.modules() if isinstance(m, SPADE)]
    clade_layers = [m for m in clade.modules() if isinstance(m, CLADE)]
    assert len(spade_layers) == len(clade_layers) and not any(isinstance(m, SPADE) for m in clade.modules())
    # every SPADE layer's convs are replaced by two [classes, channels] tables; nothing else differs
    semantic_channels = clade.config.semantic_channels
    tables = sum(2 * semantic_channels * m.gamma.out_channels for m in spade_layers)
    assert count([clade]) == count([spade]) - count(spade_layers) + tables


def test_3d_noise_is_extra_generator_input_that_changes_the_image():
    torch.manual_seed(0)
    model = SPADEModel(_config(noise_3d=6), with_discriminator=False).eval()
    config = model.config
    assert config.generator_input_channels == config.semantic_channels + 6 and config.latent_dim == 6
    assert model.generator.blocks["head"].norm_0.shared[0].in_channels == config.semantic_channels + 6
    assert model.generator.input.in_channels == config.semantic_channels + 6
    assert model.discriminator is None and model.encoder is None
    label, semantic, _ = _inputs(model)
    z1, z2 = torch.randn(2, 6), torch.randn(2, 6)
    with torch.no_grad():
        a, b = model.generator(semantic, z1), model.generator(semantic, z2)
        assert (a - b).abs().mean() > 1e-4  # the noise matters
        assert torch.allclose(model.generator(model.label_maps(label), z1), a, atol=1e-5)  # label maps: the same
        assert torch.allclose(optimize_for_inference(model).generator(semantic, z1), a, atol=1e-5)
    # the discriminator still reads the semantic map alone
    with_d = SPADEModel(_config(noise_3d=6))
    assert with_d.discriminator.scales[0].groups[0][0].in_channels == config.semantic_channels + 3


def test_variant_options_are_checked():
    with pytest.raises(ValueError, match="alternative to the VAE"):
        _config(noise_3d=4, use_vae=True)
    with pytest.raises(ValueError, match="arch spade only"):
        _config(noise_3d=4, arch="clade")
    with pytest.raises(SpadekitError, match="d_arch 'patch'"):
        discriminator_builder("patch")
    with pytest.raises(SpadekitError, match="d_vgg_layers.*relu7"):
        SPADEModel(_config(d_arch="projected", d_vgg_layers="relu7"))


def test_config_json_keeps_only_the_chosen_discriminators_fields():
    plain = _config().to_dict()
    assert "d_vgg_layers" not in plain and plain["d_arch"] == "multiscale"
    projected = _config(d_arch="projected", d_vgg_layers="relu3_3")
    assert projected.to_dict()["d_vgg_layers"] == "relu3_3"
    assert ModelConfig.from_dict(projected.to_dict()) == projected
