"""The one forward: label-map lookups and the inference optimisations compute what the dense forward computes."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spadekit.interop.nvlabs import import_nvlabs
from spadekit.layers.blocks import SPADEResBlock
from spadekit.layers.lookup import LabelConvTable, LabelMaps, label_conv
from spadekit.layers.spade import SPADE
from spadekit.layers.spectral_norm import has_spectral_norm
from spadekit.models import GENERATORS, SPADEModel, inference_copy, optimize_for_inference
from spadekit.semantic import instance_edges, semantic_map

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_model_config  # noqa: E402
from test_nvlabs_parity import CASES  # noqa: E402


def _label_maps(n: int, size: tuple[int, int], batch: int = 2, edge: bool = True) -> tuple[LabelMaps, torch.Tensor]:
    """Random label maps with blocky regions (so resizing keeps several classes) and their dense semantic map."""
    h, w = size
    coarse = torch.randint(0, n, (batch, 1, h // 4, w // 4))
    label = F.interpolate(coarse.float(), size=size, mode="nearest").long()
    label[:, :, : h // 8, : w // 8] = torch.randint(0, n, (batch, 1, h // 8, w // 8))  # some fine detail too
    maps = LabelMaps(label, instance_edges(label) if edge else None, n)
    return maps, semantic_map(label, n, label if edge else None)


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("edge", [False, True])
def test_label_conv_and_its_frozen_table_equal_the_conv_over_the_one_hot_map(edge):
    torch.manual_seed(0)
    maps, semantic = _label_maps(6, (16, 12), edge=edge)
    conv = torch.nn.Conv2d(semantic.shape[1], 5, 3, padding=1)
    for size in ((16, 12), (8, 6), (4, 3)):
        dense = conv(F.interpolate(semantic, size=size, mode="nearest"))
        torch.testing.assert_close(label_conv(maps, size, conv.weight, conv.bias), dense, atol=1e-5, rtol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(LabelConvTable([conv], 6, edge)(maps, size), dense, atol=1e-5, rtol=1e-5)
    # the gradient through the lookup (the CSR scatter) is the conv's
    weight = torch.randn(2, 5, 8, 6)
    (label_conv(maps, (8, 6), conv.weight, conv.bias) * weight).sum().backward()
    lookup_grads = _grads(conv)
    conv.zero_grad()
    (conv(F.interpolate(semantic, size=(8, 6), mode="nearest")) * weight).sum().backward()
    for name, grad in _grads(conv).items():
        torch.testing.assert_close(lookup_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_label_maps_stand_for_their_semantic_map():
    maps, semantic = _label_maps(7, (16, 16))
    assert maps.shape == semantic.shape and maps.channels == 8
    assert torch.equal(maps.dense(), semantic)
    assert torch.equal(maps.dense((8, 8)), F.interpolate(semantic, size=(8, 8), mode="nearest"))
    again = LabelMaps.from_semantic(semantic, has_edge=True)
    assert torch.equal(again.label, maps.label) and torch.equal(again.edge, maps.edge)
    conv = torch.nn.Conv2d(9, 4, 3, padding=1)  # one channel too many: a clear error, not garbage
    with pytest.raises(ValueError, match="9 semantic channels"):
        label_conv(maps, (16, 16), conv.weight, conv.bias)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_spade_layer_and_block_on_label_maps_give_the_dense_outputs_and_gradients(norm):
    torch.manual_seed(0)
    maps, semantic = _label_maps(5, (16, 16))
    for make in (lambda: SPADE(6, 6, hidden=8, norm=norm), lambda: SPADEResBlock(6, 4, 6, spade_hidden=8, norm=norm)):
        dense_net = make().train()
        lookup_net = copy.deepcopy(dense_net)
        x = torch.randn(2, 6, 8, 8)
        out = dense_net(x, semantic)
        looked_up = lookup_net(x, maps)
        torch.testing.assert_close(looked_up, out, atol=1e-5, rtol=1e-5)
        weight = torch.randn_like(out)
        (out * weight).sum().backward()
        (looked_up * weight).sum().backward()
        dense_grads, lookup_grads = _grads(dense_net), _grads(lookup_net)
        assert set(dense_grads) == {n for n, _ in dense_net.named_parameters()}  # every parameter has a gradient
        for name, grad in dense_grads.items():
            torch.testing.assert_close(lookup_grads[name], grad, atol=1e-4, rtol=1e-4, msg=name)
        for (name, a), (_, b) in zip(dense_net.named_buffers(), lookup_net.named_buffers()):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)  # BatchNorm statistics


VARIANTS = [
    dict(use_vae=False, upsampling="more", crop_size=128, norm="instance"),
    dict(use_vae=True, use_instance=False, norm="batch", dontcare=True),
    dict(use_vae=False, use_instance=True, norm="syncbatch", aspect_ratio=2.0),
]


def _trained_like(model: SPADEModel) -> SPADEModel:
    """A few train-mode forwards so BatchNorm statistics and spectral-norm vectors are not at their start values."""
    h, w = model.output_size
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model.generator(_label_maps(model.labels.num_channels, (h, w), edge=model.use_instance)[1], torch.randn(2, 16))
    return model.eval()


# every registered generator with every variant it can be built with (pix2pixhd has no latent input)
GENERATOR_CASES = [(arch, v) for arch in sorted(GENERATORS) for v in VARIANTS if not (arch == "pix2pixhd" and v["use_vae"])]


@pytest.mark.parametrize("arch, variant", GENERATOR_CASES, ids=[f"{a}-{i}" for a, v in GENERATOR_CASES for i in [VARIANTS.index(v)]])
def test_every_generator_optimised_for_inference_computes_the_plain_dense_forward(arch, variant):
    """All registered generators take label maps; the optimised copy (lookups where the generator has them,
    fused modulation, folded spectral norm) gives the plain dense forward within float32 rounding, and
    stays close in bfloat16. pix2pixhd and concat say in their docstring where they read the dense map."""
    torch.manual_seed(0)
    config = tiny_model_config(**variant)
    config.arch, config.num_downsample, config.num_res_blocks = arch, 2, 2
    model = _trained_like(SPADEModel(config))
    h, w = model.output_size
    label = _label_maps(model.labels.num_channels, (h, w), edge=False)[0].label
    z = torch.randn(2, 16) if config.use_vae else None
    with torch.no_grad():
        reference = model.generator(model.semantic(label), z)
        from_maps = model.generator(model.label_maps(label), z)
    fast = optimize_for_inference(model)
    bf16 = optimize_for_inference(model, torch.bfloat16)
    with torch.inference_mode():
        out = fast.generator(fast.label_maps(label), z)
        dense_in = fast.generator(fast.semantic(label), z)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as the Pipeline runs it
            low = bf16.generator(bf16.label_maps(label), z).float()
    torch.testing.assert_close(from_maps, reference, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(out, reference, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(dense_in, reference, atol=2e-5, rtol=1e-4)
    psnr = 10 * torch.log10(4 / (low - reference).pow(2).mean())
    assert psnr > 30, float(psnr)


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_label_maps_and_dense_maps_train_the_same(arch):
    """Train mode: outputs and the gradient to every parameter agree between the two inputs."""
    torch.manual_seed(0)
    config = tiny_model_config(use_vae=False, norm="batch", use_instance=True)
    config.arch, config.num_downsample, config.num_res_blocks = arch, 2, 2
    model = SPADEModel(config).train()
    label = _label_maps(model.labels.num_channels, model.output_size, edge=False)[0].label
    dense, lookup = model.generator, copy.deepcopy(model.generator)
    out = dense(model.semantic(label))
    looked_up = lookup(model.label_maps(label))
    torch.testing.assert_close(looked_up, out, atol=1e-5, rtol=1e-4)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    (looked_up * weight).sum().backward()
    lookup_grads = _grads(lookup)
    scale = max(g.abs().max() for g in lookup_grads.values())
    for name, grad in _grads(dense).items():
        torch.testing.assert_close(lookup_grads[name], grad, atol=1e-4 * scale, rtol=1e-3, msg=name)


def test_optimize_for_inference_returns_a_new_module_and_leaves_its_argument_as_it_was():
    torch.manual_seed(0)
    model = _trained_like(SPADEModel(tiny_model_config(use_vae=True, norm="batch"))).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layouts = {k: v.stride() for k, v in model.state_dict().items()}
    for optimised in (optimize_for_inference(model, torch.bfloat16), inference_copy(model)):
        assert optimised is not model and optimised.generator is not model.generator
        assert optimised.discriminator is None and model.discriminator is not None
        assert not has_spectral_norm(optimised) and not optimised.training
        assert all(not p.requires_grad for p in optimised.parameters())
    assert model.training and has_spectral_norm(model.generator) and has_spectral_norm(model.discriminator)
    after = model.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        assert torch.equal(after[key], value) and after[key].dtype == value.dtype and after[key].stride() == layouts[key], key
    fast = optimize_for_inference(model, torch.bfloat16)
    block = fast.generator.blocks["up_0"]
    assert block.norm_0.gamma_beta is not None and block.lookup_tables is not None
    assert block.conv_0.weight.dtype == torch.bfloat16 and block.norm_0.norm.running_var.dtype == torch.float32
    assert fast.generator.to_rgb.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.encoder.fc_mu.weight.dtype == torch.float32  # the encoder runs under autocast


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_optimised_model_matches_reference_fixtures(case):
    options = json.loads((case / "options.json").read_text())["options"]
    inputs = dict(np.load(case / "inputs.npz"))
    expected = dict(np.load(case / "expected.npz"))
    model = optimize_for_inference(import_nvlabs(case))
    label = torch.from_numpy(inputs["label"])  # raw values are channel indices here (dontcare = label_nc)
    instance = None if options.get("no_instance") else torch.from_numpy(inputs["instance"])
    z = torch.from_numpy(inputs["z"]) if "z" in inputs else None
    with torch.inference_mode():
        out = model.generator(model.label_maps(label, instance), z)
    np.testing.assert_allclose(out.numpy(), expected["G_eval_out"], atol=1e-4, rtol=1e-4)


def test_fused_spade_layer_refuses_training():
    layer = SPADE(4, 3, hidden=8, norm="batch").eval()
    layer.fuse_gamma_beta()
    layer.train()
    with pytest.raises(RuntimeError, match="inference only"):
        layer(torch.randn(1, 4, 4, 4), torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fast_spectral_norm_gives_torchs_weight_gradient_and_power_iteration(memory_format):
    from spadekit.layers.spectral_norm import FastSpectralNorm, use_fast_spectral_norm

    torch.manual_seed(0)
    plain = torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 5, 3, padding=1)).to(memory_format=memory_format)
    fast = copy.deepcopy(plain)
    assert use_fast_spectral_norm(fast) == 1
    assert any(isinstance(h, FastSpectralNorm) for h in fast._forward_pre_hooks.values())
    x = torch.randn(2, 6, 7, 7).contiguous(memory_format=memory_format)
    grad = torch.randn(2, 5, 7, 7)
    for _ in range(3):  # three training steps: power iteration, forward, backward
        for net in (plain, fast):
            net.zero_grad()
            net(x).backward(grad)
        torch.testing.assert_close(fast.weight_u, plain.weight_u, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(fast.weight_v, plain.weight_v, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(fast.weight, plain.weight, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(fast.weight_orig.grad, plain.weight_orig.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(fast.bias.grad, plain.bias.grad)
        with torch.no_grad():  # a step, so the next power iteration sees a changed weight
            for net in (plain, fast):
                net.weight_orig -= 0.1 * net.weight_orig.grad
    assert set(fast.state_dict()) == set(plain.state_dict())


def test_compiled_kernels_give_the_eager_output():
    from spadekit.layers import spade as spade_module

    model = optimize_for_inference(SPADEModel(tiny_model_config(use_vae=False, norm="instance", crop_size=64)))
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (2, 1, h, w))
    with torch.inference_mode():
        expected = model.generator(model.label_maps(label))
    try:
        assert spade_module.compile_kernels(), "torch.compile failed (the Makefile installs g++ for it)"
        assert spade_module._KERNELS["modulate"] is not spade_module.modulate
        with torch.inference_mode():
            torch.testing.assert_close(model.generator(model.label_maps(label)), expected, atol=1e-5, rtol=1e-5)
    finally:
        spade_module.use_eager_kernels()


ALLOCATE = """
import resource, sys, torch
from spadekit.runtime_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(8):  # 64 MB each, freed at once: the heap grows to its working size
    torch.ones(16 << 20)
faults = []
for _ in range(24):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, *faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_keep_freed_memory_stops_large_tensors_faulting_in_fresh_pages():
    """A 64 MB allocation faults in about 16k fresh pages by default (a new mapping each time), and
    next to none once keep_freed_memory() keeps freed memory in the heap (per allocation, after eight
    to warm up: small allocations between them split freed blocks, so the heap still grew for 0-4 of
    the allocations after the warm-up in measurements here, four of seven in a fresh run that failed
    the earlier median of seven; so the median of the last twelve of 24)."""
    import statistics
    import subprocess

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", ALLOCATE, mode], capture_output=True, text=True, check=True).stdout.split()
        return out[0], [int(n) for n in out[1:]]
    (kept_default, default), (kept, kept_faults) = faults("default"), faults("keep")
    assert kept_default == "False" and kept == "True"
    assert len(default) == len(kept_faults) == 24
    assert min(default) > 10_000 and statistics.median(kept_faults[12:]) < 1_000, (default, kept_faults)


def test_inference_copy_of_a_model_in_the_middle_of_training():
    # after a forward with gradients each spectral-norm layer holds a computed (non-leaf) weight; copying must not trip on it
    torch.manual_seed(0)
    model = SPADEModel(tiny_model_config(use_vae=False, norm="batch")).train()
    semantic = torch.zeros(2, model.config.semantic_channels, *model.config.output_size)
    semantic[:, 1] = 1
    model.generator(semantic).square().mean().backward()
    copy = inference_copy(model)
    assert not has_spectral_norm(copy) and has_spectral_norm(model.generator)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(copy.generator(semantic), model.generator(semantic), atol=1e-5, rtol=1e-4)
