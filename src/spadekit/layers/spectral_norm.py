"""Spectral norm: wrapping a layer, folding it into plain weights, and a fused gradient for training.

`maybe_spectral_norm` uses torch's reparametrisation (weight_orig / weight_u / weight_v, the keys
the reference stores). `fold_spectral_norm` replaces it by the weight it computes now (inference,
export). `use_fast_spectral_norm` switches the hooks to `FastSpectralNorm`: the same power
iteration, buffers and state dict, with the gradient of weight_orig / sigma in three passes over
the weight instead of autograd's eight.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a conv/linear with spectral norm (weight_orig / weight_u / weight_v, as the reference stores)."""
    if not enabled:
        return module
    return nn.utils.spectral_norm(module)


def spectral_norm_hooks(model: nn.Module) -> list[tuple[nn.Module, SpectralNorm]]:
    """(module, hook) for every spectral-norm reparametrisation in `model`."""
    return [(m, h) for m in model.modules() for h in m._forward_pre_hooks.values() if isinstance(h, SpectralNorm)]


def has_spectral_norm(model: nn.Module) -> bool:
    return bool(spectral_norm_hooks(model))


def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Replace every spectral-norm reparametrisation by the plain weight it computes now, in place (for
    inference/export); returns `model`. Uses the stored u, v (no power iteration), which is what eval mode computes.
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


# ---- training: the fused gradient ------------------------------------------------------------------
def _memory_matrix(t: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """t [out, ...] as an [out, rest] matrix that is a view in memory order: (matrix, columns_permuted).

    Contiguous: the usual reshape. channels_last 4-D: the columns run (kh, kw, in) instead of (in, kh, kw),
    so no transposing copy is made; vectors on the column side must be permuted to match (_to_memory_order).
    """
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1), True
    return t.reshape(t.shape[0], -1), False


def _to_memory_order(v: torch.Tensor, shape) -> torch.Tensor:
    return v.view(shape[1], shape[2], shape[3]).permute(1, 2, 0).reshape(-1)


def _to_standard_order(v: torch.Tensor, shape) -> torch.Tensor:
    return v.view(shape[2], shape[3], shape[1]).permute(2, 0, 1).reshape(-1)


class _SpectralDivide(torch.autograd.Function):
    """weight_orig / sigma with sigma = u . (W v) (u, v constants of the step), and its gradient in three passes:
    g / sigma - (g . W) / sigma^2 * u v^T. Autograd's own chain (div, neg, mul, sum, the outer product of
    mv's backward) makes about eight passes and several weight-sized temporaries. Works on the weight in
    its memory layout (channels_last weights included) without transposing copies."""

    @staticmethod
    def forward(ctx, weight, u, v):
        matrix, permuted = _memory_matrix(weight)
        sigma = torch.dot(u, torch.mv(matrix, _to_memory_order(v, weight.shape) if permuted else v))
        ctx.save_for_backward(weight, u, v, sigma)
        return weight / sigma

    @staticmethod
    def backward(ctx, grad):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        weight, u, v, sigma = ctx.saved_tensors
        weight_matrix, permuted = _memory_matrix(weight)
        if grad.stride() != weight.stride():  # the gradient in the weight's layout, so both read in memory order
            grad = grad.contiguous(memory_format=torch.channels_last if permuted else torch.contiguous_format)
        coefficient = torch.dot(_memory_matrix(grad)[0].reshape(-1), weight_matrix.reshape(-1)) / (sigma * sigma)
        out = grad / sigma
        _memory_matrix(out)[0].addr_(u, _to_memory_order(v, weight.shape) if permuted else v, alpha=-float(coefficient))
        return out, None, None


class FastSpectralNorm(SpectralNorm):
    """torch's SpectralNorm hook (same power iteration, buffers and state dict) with the fused gradient above."""

    def compute_weight(self, module, do_power_iteration: bool) -> torch.Tensor:
        if self.dim != 0:  # only transposed convolutions; torch's own computation
            return super().compute_weight(module, do_power_iteration)
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        if do_power_iteration:
            matrix, permuted = _memory_matrix(weight.detach())
            with torch.no_grad():
                for _ in range(self.n_power_iterations):
                    if permuted:  # the column side in memory order, stored in the standard order
                        v_mem = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=self.eps)
                        v = v.copy_(_to_standard_order(v_mem, weight.shape))
                    else:
                        v = v_mem = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=self.eps, out=v)
                    u = F.normalize(torch.mv(matrix, v_mem), dim=0, eps=self.eps, out=u)
                if self.n_power_iterations > 0:  # autograd may need the values of this step after the in-place update
                    u, v = u.clone(memory_format=torch.contiguous_format), v.clone(memory_format=torch.contiguous_format)
        return _SpectralDivide.apply(weight, u, v)


def use_fast_spectral_norm(model: nn.Module) -> int:
    """Switch every spectral-norm hook in `model` to FastSpectralNorm in place (checkpoints unchanged); returns how many."""
    count = 0
    for _, hook in spectral_norm_hooks(model):
        if type(hook) is SpectralNorm:
            hook.__class__ = FastSpectralNorm
            count += 1
    return count
