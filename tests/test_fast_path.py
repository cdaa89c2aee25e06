"""The fast inference path computes what the plain generator computes (parity fixtures included)."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spadekit.data.semantic import instance_edges
from spadekit.fast import FastGenerator
from spadekit.interop.nvlabs import import_nvlabs
from spadekit.models import SPADEModel

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_model_config  # noqa: E402
from test_nvlabs_parity import CASES  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fast_path_matches_reference_fixtures(case):
    options = json.loads((case / "options.json").read_text())["options"]
    inputs = dict(np.load(case / "inputs.npz"))
    expected = dict(np.load(case / "expected.npz"))
    model = import_nvlabs(case).eval()
    label = torch.from_numpy(inputs["label"])  # raw values are channel indices here (dontcare = label_nc)
    edge = None if options.get("no_instance") else instance_edges(torch.from_numpy(inputs["instance"]))
    fast = FastGenerator(model.generator, model.labels.num_channels, edge is not None)
    z = torch.from_numpy(inputs["z"]) if "z" in inputs else None
    with torch.inference_mode():
        out = fast(label, edge, z)
    np.testing.assert_allclose(out.numpy(), expected["G_eval_out"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", [
    dict(use_vae=False, upsampling="more", crop_size=128, norm="instance"),
    dict(use_vae=True, use_instance=False, norm="batch", dontcare=True),
])
def test_fast_path_matches_plain_generator(variant):
    model = SPADEModel(tiny_model_config(**variant)).eval()
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (2, 1, h, w))
    semantic = model.semantic(label, label)
    edge = semantic[:, -1:] if model.use_instance else None
    z = torch.randn(2, 16)
    fast = FastGenerator(model.generator, model.labels.num_channels, model.use_instance)
    with torch.inference_mode():
        torch.testing.assert_close(fast(label, edge, z), model.generator(semantic, z), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fast_spectral_norm_gives_torchs_weight_gradient_and_power_iteration(memory_format):
    from spadekit.fast import FastSpectralNorm, use_fast_spectral_norm

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
    import spadekit.fast as fast_module

    model = SPADEModel(tiny_model_config(use_vae=False, norm="instance", crop_size=64)).eval()
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (2, 1, h, w))
    edge = model.semantic(label, label)[:, -1:] if model.use_instance else None
    fast = FastGenerator(model.generator, model.labels.num_channels, model.use_instance)
    eager = fast_module._KERNELS["modulate"]
    with torch.inference_mode():
        expected = fast(label, edge)
    try:
        assert fast_module.compile_kernels(), "torch.compile failed (the Makefile installs g++ for it)"
        assert fast_module._KERNELS["modulate"] is not eager
        with torch.inference_mode():
            torch.testing.assert_close(fast(label, edge), expected, atol=1e-5, rtol=1e-5)
    finally:
        fast_module._KERNELS["modulate"] = eager


ALLOCATE = """
import resource, sys, torch
from spadekit.fast import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(3):  # 64 MB each, freed at once: the heap grows to its working size
    torch.ones(16 << 20)
faults = []
for _ in range(7):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, *faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_keep_freed_memory_stops_large_tensors_faulting_in_fresh_pages():
    """A 64 MB allocation faults in about 16k fresh pages by default (a new mapping each time), and
    next to none once keep_freed_memory() keeps freed memory in the heap (per allocation, after three
    to warm up; the median of seven, as the heap may still grow once)."""
    import statistics
    import subprocess

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", ALLOCATE, mode], capture_output=True, text=True, check=True).stdout.split()
        return out[0], [int(n) for n in out[1:]]
    (kept_default, default), (kept, kept_faults) = faults("default"), faults("keep")
    assert kept_default == "False" and kept == "True"
    assert min(default) > 10_000 and statistics.median(kept_faults) < 1_000, (default, kept_faults)
