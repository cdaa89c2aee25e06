"""The SPADE layer: normalise, then modulate with a scale and bias predicted from the semantic map."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.layers.lookup import LabelMaps, label_conv
from spadekit.layers.norms import param_free_norm


class SPADE(nn.Module):
    """out = norm(x) * (1 + gamma(h)) + beta(h), h = relu(shared(semantic map)); leaky_relu(out, slope) when given.

    channels: channels of x. semantic_channels: channels of the semantic map. hidden: width of the
    shared conv (128 in the paper, independent of the generator width). norm: parameter-free norm name.

    The semantic map is a dense tensor [N,C,H,W] (nearest-resized to x's size), or a `LabelMaps`: then
    the shared conv over the one-hot map is a table lookup (`spadekit.layers.lookup`), the same
    numbers with a fraction of the work. After `fuse_gamma_beta()` (what `optimize_for_inference`
    does, for inference only) gamma and beta are one conv and the normalisation, modulation and
    activation one float32 kernel (`modulate`).
    """

    def __init__(self, channels: int, semantic_channels: int, hidden: int = 128, kernel_size: int = 3, norm: str = "batch"):
        super().__init__()
        padding = kernel_size // 2
        self.norm = param_free_norm(norm, channels)
        self.shared = nn.Sequential(nn.Conv2d(semantic_channels, hidden, kernel_size, padding=padding), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.beta = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.gamma_beta: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor, semantic: torch.Tensor | LabelMaps, slope: float | None = None,
                shared: torch.Tensor | None = None) -> torch.Tensor:
        """shared: the shared conv's output at x's size, when the caller has it (a block computes it in one
        lookup for the SPADE layers that read the same map); else computed here from `semantic`."""
        if shared is None:
            shared = self.shared_conv(semantic, x.shape[-2:])
        return self.modulate(x, shared, slope)

    def shared_conv(self, semantic: torch.Tensor | LabelMaps, size) -> torch.Tensor:
        """The shared conv (before its ReLU) over the semantic map at size (h, w)."""
        conv = self.shared[0]
        if isinstance(semantic, LabelMaps):
            return label_conv(semantic, size, conv.weight, conv.bias)
        if semantic.shape[-2:] != size:
            semantic = F.interpolate(semantic, size=size, mode="nearest")
        return conv(semantic)

    def modulate(self, x: torch.Tensor, shared: torch.Tensor, slope: float | None = None) -> torch.Tensor:
        """x normalised and modulated by `shared`, the shared conv's output (before its ReLU)."""
        if self.gamma_beta is not None:
            if self.training:
                raise RuntimeError("a SPADE layer with fused gamma/beta is for inference only (it uses running statistics)")
            gamma_beta = self.gamma_beta(F.relu(shared).to(self.gamma_beta.weight.dtype))
            scale, shift = norm_affine(self.norm, x)
            return _KERNELS["modulate"](x, gamma_beta, scale, shift, 1.0 if slope is None else slope)
        hidden = F.relu(shared)
        out = self.norm(x) * (1 + self.gamma(hidden)) + self.beta(hidden)
        return out if slope is None else F.leaky_relu(out, slope)

    def fuse_gamma_beta(self) -> None:
        """Replace the gamma and beta convs by one conv with 2C outputs (in place; inference only)."""
        if self.gamma_beta is not None:
            return
        g, b = self.gamma, self.beta
        conv = nn.Conv2d(g.in_channels, 2 * g.out_channels, g.kernel_size, padding=g.padding,
                         device=g.weight.device, dtype=g.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(torch.cat([g.weight.detach(), b.weight.detach()]))
            conv.bias.copy_(torch.cat([g.bias.detach(), b.bias.detach()]))
        del self.gamma, self.beta
        self.gamma_beta = conv


def norm_affine(norm: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A parameter-free norm as x * scale + shift (float32): running statistics, or x's own for instance norm."""
    if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_mean is not None:
        scale = (norm.running_var + norm.eps).rsqrt()
        return scale.view(1, -1, 1, 1), (-norm.running_mean * scale).view(1, -1, 1, 1)
    if isinstance(norm, nn.InstanceNorm2d) and not norm.track_running_stats:
        var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0, keepdim=True)
        scale = (var + norm.eps).rsqrt()
        return scale, -mean * scale
    raise TypeError(f"fused SPADE modulation does not support {type(norm).__name__}")


def modulate(x: torch.Tensor, gamma_beta: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, slope: float) -> torch.Tensor:
    """leaky_relu((x * scale + shift) * (1 + gamma) + beta, slope) in float32, returned in x's dtype.

    gamma_beta: gamma and beta concatenated on channels; scale, shift: the normalisation as a per-channel
    (batch norm: [1,C,1,1]) or per-sample (instance norm: [N,C,1,1]) affine map; slope 1: no activation.
    Eager: in place on two float32 buffers (each new large tensor costs page faults). `compile_kernels()`
    swaps in a torch.compile'd version: one fused pass, several times faster.
    """
    gamma, beta = gamma_beta.float().chunk(2, dim=1)
    y = x.to(torch.float32, copy=True).mul_(scale).add_(shift).mul_(gamma.add_(1)).add_(beta)
    y = y.to(x.dtype)
    return y if slope == 1.0 else F.leaky_relu_(y, slope)


_KERNELS = {"modulate": modulate}


def compile_kernels() -> bool:
    """Use a torch.compile'd `modulate` in fused SPADE layers (process-wide; compiled once per dtype and
    rank on first use, a few seconds each). Returns False, keeping the eager kernel, if compiling fails."""
    if _KERNELS["modulate"] is not modulate:
        return True
    try:
        compiled = torch.compile(modulate, dynamic=True, fullgraph=True)
        x = torch.zeros(1, 2, 4, 4)
        compiled(x, torch.zeros(1, 4, 4, 4), torch.ones(1, 2, 1, 1), torch.zeros(1, 2, 1, 1), 0.2)
    except Exception:  # no C++ compiler, unsupported platform: the eager kernel gives the same numbers
        return False
    _KERNELS["modulate"] = compiled
    return True


def use_eager_kernels() -> None:
    """Undo `compile_kernels()` (process-wide)."""
    _KERNELS["modulate"] = modulate
