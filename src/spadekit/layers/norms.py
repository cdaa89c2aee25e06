"""Normalisation and spectral-norm helpers, chosen by name."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm


def param_free_norm(name: str, channels: int) -> nn.Module:
    """A normalisation layer without learned affine parameters (the SPADE layer supplies them).

    batch: BatchNorm with running statistics. syncbatch: the same layer; the trainer converts it to
    SyncBatchNorm when it runs in more than one process. instance: InstanceNorm, no statistics.
    """
    try:
        factory = PARAM_FREE_NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; choose one of {sorted(PARAM_FREE_NORMS)}") from None
    return factory(channels)


PARAM_FREE_NORMS = {
    "batch": lambda c: nn.BatchNorm2d(c, affine=False),
    "syncbatch": lambda c: nn.BatchNorm2d(c, affine=False),
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False),
}


def feature_norm(name: str, channels: int) -> nn.Module:
    """Norm after a discriminator/encoder conv: instance (no affine), batch/syncbatch (affine), none."""
    try:
        factory = FEATURE_NORMS[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; choose one of {sorted(FEATURE_NORMS)}") from None
    return factory(channels)


FEATURE_NORMS = {
    "instance": lambda c: nn.InstanceNorm2d(c, affine=False),
    "batch": lambda c: nn.BatchNorm2d(c, affine=True),
    "syncbatch": lambda c: nn.BatchNorm2d(c, affine=True),
    "none": lambda c: nn.Identity(),
}


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a conv/linear with spectral norm (weight_orig / weight_u / weight_v, as the reference stores)."""
    if not enabled:
        return module
    return nn.utils.spectral_norm(module)


def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Replace every spectral-norm reparametrisation by the plain weight it computes now (for inference/export).

    Uses the stored u, v (no power iteration), which is what eval mode computes.
    """
    for module in model.modules():
        for hook_id, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, SpectralNorm):
                with torch.no_grad():
                    weight = hook.compute_weight(module, do_power_iteration=False)
                del module._forward_pre_hooks[hook_id]
                for suffix in ("_orig", "_u", "_v"):
                    name = hook.name + suffix
                    if name in module._parameters:
                        del module._parameters[name]
                    if name in module._buffers:
                        del module._buffers[name]
                if hasattr(module, hook.name):
                    delattr(module, hook.name)
                module.register_parameter(hook.name, nn.Parameter(weight.detach().clone()))
                # drop the state-dict hooks that rename keys for the spectral-norm version marker
                for hooks in (module._state_dict_hooks, module._load_state_dict_pre_hooks):
                    for key, fn in list(hooks.items()):
                        owner = getattr(fn, "fn", fn)
                        if type(owner).__name__ in ("SpectralNormStateDictHook", "SpectralNormLoadStateDictPreHook"):
                            del hooks[key]
    return model


def has_spectral_norm(model: nn.Module) -> bool:
    return any(
        isinstance(h, SpectralNorm) for m in model.modules() for h in m._forward_pre_hooks.values()
    )
