"""Activation checkpointing and label-map lookups (the trainer's fast path) compute the gradients of the plain generator."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

from spadekit import SpadekitError
from spadekit.layers.lookup import LabelMaps
from spadekit.models import SPADEModel
from spadekit.train.config import load_config
from spadekit.train.loop import train

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_model_config  # noqa: E402
from test_train_smoke import TINY, write_tiny_dataset  # noqa: E402

VARIANTS = [
    dict(use_vae=False, use_instance=True, norm="batch"),
    dict(use_vae=True, use_instance=False, norm="batch", dontcare=True),
    dict(use_vae=True, use_instance=True, norm="instance", upsampling="more", crop_size=128),
]


def _backward(model, generator, semantic, z, fast: bool):
    """Output and, after a backward of a fixed weighting of it, every gradient and buffer of `generator`."""
    out = generator(LabelMaps.from_semantic(semantic, model.use_instance) if fast else semantic, z)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {n: p.grad.clone() for n, p in generator.named_parameters()}
    buffers = {n: b.clone() for n, b in generator.named_buffers()}
    return out.detach(), grads, buffers


@pytest.mark.parametrize("variant", VARIANTS, ids=["batch-edge", "batch-vae-dontcare", "instance-more"])
def test_checkpointing_and_fast_path_give_the_plain_gradients(variant):
    torch.manual_seed(0)
    model = SPADEModel(tiny_model_config(**variant)).train()
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (2, 1, h, w))
    semantic = model.semantic(label)
    z = torch.randn(2, 16)
    reference = _backward(model, copy.deepcopy(model.generator), semantic, z, fast=False)
    # float32's own noise: the same plain computation in channels_last memory (another summation order);
    # tiny batches through BatchNorm amplify it in some gradients
    relaid = copy.deepcopy(model.generator).to(memory_format=torch.channels_last)
    noise = _backward(model, relaid, semantic.contiguous(memory_format=torch.channels_last), z, fast=False)[1]
    scale = max(g.abs().max() for g in reference[1].values())
    for fast in (False, True):
        for checkpointing in (False, True):
            if not (fast or checkpointing):
                continue
            generator = copy.deepcopy(model.generator)
            generator.activation_checkpointing = checkpointing
            calls = []
            handle = generator.blocks["head"].norm_0.register_forward_pre_hook(lambda *_, calls=calls: calls.append(1))
            out, grads, buffers = _backward(model, generator, semantic, z, fast)
            handle.remove()
            if not fast:  # plain checkpointing recomputes exactly what the forward computed
                torch.testing.assert_close(out, reference[0], atol=0, rtol=0)
                for name, grad in grads.items():
                    torch.testing.assert_close(grad, reference[1][name], atol=0, rtol=0, msg=name)
            else:  # lookups sum in another order: within float32's own noise
                torch.testing.assert_close(out, reference[0], atol=1e-5, rtol=0)
                for name, grad in grads.items():
                    error = (grad - reference[1][name]).abs().max()
                    allowed = 4 * (noise[name] - reference[1][name]).abs().max() + 1e-6 * scale
                    assert error <= allowed, (name, float(error), float(allowed))
            # BatchNorm statistics and spectral-norm vectors updated once, as without checkpointing
            for name, buffer in buffers.items():
                torch.testing.assert_close(buffer, reference[2][name], atol=1e-6, rtol=1e-5, msg=name)
            if checkpointing and not fast:
                assert len(calls) == 2  # the head block ran again in backward: checkpointing did happen


def test_checkpointing_is_off_in_eval_and_without_grad():
    model = SPADEModel(tiny_model_config(use_vae=False)).eval()
    model.generator.activation_checkpointing = True
    semantic = model.semantic(torch.randint(0, model.labels.num_channels, (1, 1, 64, 64)))
    with torch.no_grad():
        out = model.generator(semantic)
    model.generator.activation_checkpointing = False
    with torch.no_grad():
        torch.testing.assert_close(out, model.generator(semantic), atol=0, rtol=0)


def _losses(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_trainer_fast_path_and_checkpointing_track_the_plain_run(tmp_path):
    """Same data, seed and steps: the fast path with checkpointing logs the plain run's losses (fp32) and
    its checkpoints load into the plain networks (same parameter names and shapes)."""
    data = write_tiny_dataset(tmp_path / "data", count=2)
    common = [f"data.root={data}", "data.flip=false", "train.steps=3", "train.batch_size=2", "model.norm=batch",
              "model.use_vae=false", "train.lambda_vgg=0", "train.num_threads=2", "log.log_every=1",
              "log.sample_every=100", "log.checkpoint_every=3"]
    plain = train(load_config(TINY, common), tmp_path / "plain")
    fast = train(load_config(TINY, common + ["train.fast_path=true", "train.activation_checkpointing=true"]), tmp_path / "fast")
    a, b = _losses(tmp_path / "plain"), _losses(tmp_path / "fast")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for key in ("G_gan", "G_feat", "D_fake", "D_real", "G_l1"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-3, abs=1e-4), (key, ra, rb)
    # Adam turns float noise in near-zero gradients (biases before BatchNorm) into steps of up to lr each
    for x, y in zip(SPADEModel.from_pretrained(plain).state_dict().items(), SPADEModel.from_pretrained(fast).state_dict().items()):
        assert x[0] == y[0]
        if x[0].endswith(("_u", "_v", "running_mean", "running_var", "num_batches_tracked")):
            continue  # power-iteration vectors and statistics: compared by the gradient test above
        torch.testing.assert_close(x[1], y[1], atol=3 * 2 * 4e-4, rtol=1e-2, msg=lambda m, k=x[0]: f"{k}: {m}")


def test_fast_options_need_the_spade_generator():
    for key in ("fast_path", "activation_checkpointing"):
        with pytest.raises(SpadekitError, match=f"train.{key}"):
            load_config(TINY, [f"train.{key}=true", "model.arch=concat", "model.use_vae=false"])
    assert load_config(TINY).train.fast_path is False and load_config(TINY).train.activation_checkpointing is False
