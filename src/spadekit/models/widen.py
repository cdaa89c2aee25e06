"""A trained generator's weights widened to a larger `min_width` without changing what it computes.

`widen_generator_state(state, wide)` turns the state dict of a generator into one for `wide`, the same
generator built with a larger `ModelConfig.min_width` (and freshly initialised): every old tensor
fills the leading slice of the new one, and the new channels are set so the old output is kept:

- the convs that add to the residual stream (conv_1, conv_shortcut) start the new channels at zero,
  so the stream's new channels are zero;
- every other layer that reads new channels gets zero weights from them in its old outputs, except
  to_rgb, which reads the stream (zero there) and keeps fresh weights: its gradients reach the new
  rows of the last conv_1 from the first step, and from there every new weight as they grow;
- new output channels of the other layers (conv_0, SPADE's gamma and beta) keep their fresh init, new
  biases are zero, new normalisation statistics start fresh;
- spectral norm's u and v are extended with zeros, so its sigma (u . W v) is the same number.

In eval mode the widened generator's images equal the narrower one's (within float summation order).
"""
from __future__ import annotations

import torch
from torch import nn

from spadekit import SpadekitError

RESIDUAL_WRITERS = ("conv_1", "conv_shortcut")


def widen_tensor(key: str, old: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """The value of parameter/buffer `key` of the wide generator from its narrow value `old` and its fresh one."""
    if old.shape == fresh.shape:
        return old.to(fresh.dtype)
    if old.dim() != fresh.dim() or any(o > n for o, n in zip(old.shape, fresh.shape)):
        raise SpadekitError(f"{key}: {tuple(old.shape)} does not fit in {tuple(fresh.shape)}; only widening to more channels is supported")
    module, _, leaf = key.rpartition(".")
    module = module.rpartition(".")[2]
    out = fresh.detach().clone()
    if leaf in ("weight_u", "weight_v", "bias"):
        out.zero_()
    elif leaf in ("weight", "weight_orig") and out.dim() >= 2:
        if module in RESIDUAL_WRITERS:
            out[old.shape[0]:] = 0
        if module != "to_rgb":
            out[: old.shape[0], old.shape[1]:] = 0
    out[tuple(slice(0, n) for n in old.shape)] = old.to(out.dtype)
    return out


def widen_generator_state(state: dict[str, torch.Tensor], wide: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict for `wide` (a generator with a larger min_width) that computes what `state` computed."""
    arch = getattr(wide.config, "arch", None)
    if arch not in ("spade", "clade"):  # concat's convs read [x, map]: new channels would land mid-row
        raise SpadekitError(f"widening applies to the spade and clade generators, not arch {arch!r}")
    fresh = wide.state_dict()
    missing = sorted(set(fresh) - set(state))
    if missing:
        raise SpadekitError(f"cannot widen: the narrower generator has no {missing[0]} (and {len(missing) - 1} more); "
                            "the two models must differ in min_width only")
    return {key: widen_tensor(key, state[key], value) for key, value in fresh.items()}
