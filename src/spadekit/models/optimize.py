"""Inference copies of a model: the same weights, computed with less work. The argument is never changed."""
from __future__ import annotations

import copy

import torch
from torch import nn

from spadekit.layers.lookup import LabelConvTable
from spadekit.layers.spectral_norm import fold_spectral_norm, spectral_norm_hooks
from spadekit.models.spade_model import SPADEModel


def inference_copy(model: nn.Module) -> nn.Module:
    """A new module that computes what `model` computes in eval mode: eval, no gradients, spectral norm
    folded into plain weights, channels_last memory. A SPADEModel's copy leaves out the discriminator.
    The plain computation: what `optimize_for_inference` is measured against."""
    skip = {id(model.discriminator): None} if isinstance(model, SPADEModel) and model.discriminator is not None else {}
    # the memo maps the discriminator to None (it is not copied), and each spectral-norm layer's computed weight too:
    # after a forward with gradients it is a non-leaf tensor that deepcopy refuses, and folding recomputes it anyway
    for module, hook in spectral_norm_hooks(model):
        weight = module.__dict__.get(hook.name)
        if isinstance(weight, torch.Tensor):
            skip[id(weight)] = None
    net = copy.deepcopy(model, memo=skip)
    fold_spectral_norm(net.eval())
    return net.requires_grad_(False).to(memory_format=torch.channels_last)


def optimize_for_inference(model: nn.Module, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A new module for inference with `model`'s weights (a SPADEModel, or one of its generators).

    On top of `inference_copy`: the generator's label-map lookup tables precomputed and each SPADE
    layer's gamma/beta convs fused (the modulation runs as one float32 kernel, `layers.spade.modulate`),
    and the generator's convolutions, linear layers and tables stored in `dtype` (no cast per call;
    normalisation statistics stay float32). The image encoder keeps float32 weights: run it under
    torch.autocast for other dtypes, as `Pipeline` does. Feed the generator a `LabelMaps`
    (`SPADEModel.label_maps`) to use the lookups; a dense semantic map works too.
    """
    net = inference_copy(model)
    generator = net.generator if isinstance(net, SPADEModel) else net
    prepare = getattr(generator, "prepare_for_inference", None)
    if prepare is not None:
        prepare()
        generator.to(memory_format=torch.channels_last)  # the new fused convs too
    if dtype != torch.float32:
        for module in generator.modules():
            if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear, LabelConvTable)):
                module.to(dtype)
    return net.requires_grad_(False)
