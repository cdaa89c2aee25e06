"""The fast path: same weights, same output (within float tolerance), less work; for inference and training.

- A SPADE shared conv reads a one-hot map, so `conv3x3(one_hot(label))` is a sum over the 9 taps of
  one weight column each: a table lookup (`embedding_bag`) instead of a 3x3 convolution over
  num_labels input channels (151-183 for ADE20K / COCO-Stuff: two orders of magnitude fewer FLOPs).
  Its gradient to the table is one sparse x dense product (the scatter matrix of the label map).
  The instance-edge channel, when present, stays a 1-channel conv.
- Nearest resizing of a one-hot map is the one-hot of the nearest-resized label map, so the label
  map is resized once per resolution, and its lookup indices built once, for every SPADE layer there.
- In a block, the SPADE layers that read the same map at the same size share one lookup (their
  shared-conv tables are concatenated), and each layer's gamma and beta convs are one conv.
- Inference (`FastGenerator`): spectral norm folded into plain weights, channels_last, weights stored
  in the compute dtype (`to_compute_dtype`, no casts per call), the SPADE modulation in float32.
- Training (`spade_forward`, `semantic_forward`): the same lookups on the live parameters of a
  SPADEGenerator (spectral norm, BatchNorm statistics and all), differentiable, optionally with
  activation checkpointing per block.
- Both: `keep_freed_memory()` stops glibc from unmapping large freed blocks, so tensors of 32 MB and
  more reuse memory instead of faulting in fresh zeroed pages on every allocation.
"""
from __future__ import annotations

import copy
import ctypes
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from spadekit.layers.blocks import SPADEResBlock
from spadekit.layers.norms import fold_spectral_norm
from spadekit.layers.spade import SPADE
from spadekit.models.generator import SPADEGenerator, checkpointed


class LabelMaps:
    """A label map [N,1,H,W] of channel indices (+ instance edges [N,1,H,W]), resized once per size.

    num_labels: label channels (the one-hot width); lookups index tables with a zero row per tap for padding.
    """

    def __init__(self, label: torch.Tensor, edge: torch.Tensor | None = None, num_labels: int | None = None):
        self.label, self.edge, self.num_labels = label, edge, num_labels
        self._maps: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._bags: dict[tuple, torch.Tensor] = {}
        self._scatter: dict[tuple, torch.Tensor] = {}

    def at(self, size) -> tuple[torch.Tensor, torch.Tensor | None]:
        size = (int(size[0]), int(size[1]))
        if size not in self._maps:
            if tuple(self.label.shape[-2:]) == size:
                self._maps[size] = (self.label, self.edge)
            else:
                label = F.interpolate(self.label.float(), size=size, mode="nearest").long()
                edge = None if self.edge is None else F.interpolate(self.edge, size=size, mode="nearest")
                self._maps[size] = (label, edge)
        return self._maps[size]

    def bags(self, size, k: int) -> torch.Tensor:
        """[N*h*w, k*k] table rows read by each output pixel (tap t, class c -> t*(n+1)+c; outside -> t*(n+1)+n)."""
        key = (int(size[0]), int(size[1]), k)
        if key not in self._bags:
            n = self.num_labels
            label = self.at(size)[0][:, 0]
            h, w = label.shape[-2:]
            p = k // 2
            padded = F.pad(label, (p, p, p, p), value=n)
            index = torch.stack([padded[:, dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)], -1)
            offsets = torch.arange(k * k, device=label.device) * (n + 1)
            self._bags[key] = (index + offsets).reshape(-1, k * k)
        return self._bags[key]

    def scatter(self, size, k: int) -> torch.Tensor:
        """The transposed bag matrix as sparse CSR [k*k*(n+1), N*h*w]: grad of a table = scatter @ grad of the output."""
        key = (int(size[0]), int(size[1]), k)
        if key not in self._scatter:
            bags = self.bags(size, k)
            rows = k * k * (self.num_labels + 1)
            flat = bags.reshape(-1)
            order = torch.argsort(flat, stable=True)
            crow = torch.zeros(rows + 1, dtype=torch.long, device=flat.device)
            crow[1:] = torch.bincount(flat, minlength=rows).cumsum(0)
            ones = torch.ones(flat.numel(), device=flat.device)
            self._scatter[key] = torch.sparse_csr_tensor(crow, order // (k * k), ones, (rows, bags.shape[0]))
        return self._scatter[key]


def lookup_table(weight: torch.Tensor, bias: torch.Tensor | None, num_labels: int) -> torch.Tensor:
    """The one-hot part of a conv weight [out, in, k, k] as a table [k*k*(num_labels+1), out] (differentiable).

    One row per (tap, class) and one zero row per tap for the padding; the bias is added to every row of
    tap 0 (each output pixel reads exactly one of them).
    """
    out, _, k, _ = weight.shape
    taps = weight[:, :num_labels].permute(2, 3, 1, 0).reshape(k * k, num_labels, out)
    table = torch.cat([taps, taps.new_zeros(k * k, 1, out)], dim=1)
    if bias is not None:
        table = torch.cat([table[:1] + bias, table[1:]])
    return table.reshape(k * k * (num_labels + 1), out)


class _BagSum(torch.autograd.Function):
    """embedding_bag(sum) of a table; backward: one CSR x dense product (embedding_bag's own is 4x slower)."""

    @staticmethod
    def forward(ctx, table, maps, size, k):
        ctx.maps, ctx.key, ctx.dtype = maps, (size, k), table.dtype
        return F.embedding_bag(maps.bags(size, k), table, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        scatter = ctx.maps.scatter(*ctx.key)
        return (scatter @ grad.float()).to(ctx.dtype), None, None, None


def lookup(maps: LabelMaps, size, table: torch.Tensor, k: int, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
    """conv_kxk(one_hot(label at size) [+ edge]) from its table: [N, out, h, w] (channels_last memory)."""
    label, edge = maps.at(size)
    n, _, h, w = label.shape
    if table.requires_grad and torch.is_grad_enabled():
        flat = _BagSum.apply(table, maps, (h, w), k)
    else:
        flat = F.embedding_bag(maps.bags((h, w), k), table, mode="sum")
    out = flat.view(n, h, w, -1).permute(0, 3, 1, 2)
    if edge_weight is not None:
        out = out + F.conv2d(edge.to(out.dtype), edge_weight.to(out.dtype), padding=k // 2)
    return out


def _shared_convs(spades: list[SPADE]) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.cat([s.shared[0].weight for s in spades])
    bias = torch.cat([s.shared[0].bias for s in spades])
    return weight, bias


# ---- the allocator --------------------------------------------------------------------------------
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_KEEP_FREED = {"done": False}


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Serve allocations up to `limit` bytes from the process heap and keep freed heap memory (glibc).

    By default glibc gives every allocation of 32 MB or more its own mapping and unmaps it on free, so
    each one faults in fresh zeroed pages: at 256x256 the fp32 gradients of the 1024x1024x3x3 weights
    and 128-channel activations hit this several times per step (measured: 38-51 ms per pass over a
    37.7 MB gradient instead of ~12). Freed memory then stays with the process (its resident size stays
    near its peak). Process-wide, idempotent; returns False where it does not apply (not Linux/glibc).
    """
    if _KEEP_FREED["done"]:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(limit)) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, int(limit)) == 1
    except (OSError, AttributeError):  # another C library (musl) or no mallopt
        return False
    _KEEP_FREED["done"] = ok
    return ok


# ---- training (and any differentiable use): the live modules of a SPADEGenerator --------------------
def _block_forward(block: SPADEResBlock, x: torch.Tensor, maps: LabelMaps, has_edge: bool) -> torch.Tensor:
    n = maps.num_labels
    size = x.shape[-2:]
    first = [block.norm_0] + ([block.norm_shortcut] if block.learned_shortcut else [])
    k = first[0].shared[0].kernel_size[0]

    def shared(spades):
        weight, bias = _shared_convs(spades)
        return lookup(maps, size, lookup_table(weight, bias, n), k, weight[:, n:n + 1] if has_edge else None)

    def modulate(spade: SPADE, x, hidden):
        hidden = F.relu(hidden)  # gamma and beta as two convs: autocast casts leaf weights once, not a concatenation per call
        return spade.norm(x) * (1 + spade.gamma(hidden)) + spade.beta(hidden)

    hidden = shared(first).split([s.shared[0].out_channels for s in first], dim=1)
    shortcut = block.conv_shortcut(modulate(block.norm_shortcut, x, hidden[1])) if block.learned_shortcut else x
    dx = block.conv_0(F.leaky_relu(modulate(block.norm_0, x, hidden[0]), 0.2))
    dx = block.conv_1(F.leaky_relu(modulate(block.norm_1, dx, shared([block.norm_1])), 0.2))
    return shortcut + dx


def spade_forward(generator: SPADEGenerator, label: torch.Tensor, edge: torch.Tensor | None = None,
                  z: torch.Tensor | None = None, num_labels: int | None = None) -> torch.Tensor:
    """generator(one_hot(label) [+ edge], z) computed with lookups, differentiable in the generator's parameters.

    label: [N,1,H,W] channel indices; edge: [N,1,H,W] instance edges when the generator reads them;
    num_labels: the one-hot width (default: the generator's semantic channels minus the edge channel).
    Activation checkpointing per block when `generator.activation_checkpointing` is set (in training).
    """
    if type(generator) is not SPADEGenerator:
        raise TypeError("the fast path supports the SPADE generator only")
    c = generator.config
    has_edge = edge is not None
    maps = LabelMaps(label, edge, num_labels if num_labels is not None else c.semantic_channels - int(has_edge))
    sh, sw = generator.latent_size
    if c.use_vae:
        if z is None:
            z = torch.randn(label.shape[0], c.z_dim, device=label.device)
        x = generator.input(z).unflatten(1, (16 * c.ngf, sh, sw))
    else:
        conv, n = generator.input, maps.num_labels
        x = lookup(maps, (sh, sw), lookup_table(conv.weight, conv.bias, n), conv.kernel_size[0],
                   conv.weight[:, n:n + 1] if has_edge else None)
    x = x.contiguous(memory_format=torch.channels_last)
    keep = not (generator.activation_checkpointing and generator.training and torch.is_grad_enabled())
    for name, block in generator.blocks.items():
        if generator.upsample_before[name]:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        if keep:
            x = _block_forward(block, x, maps, has_edge)
        else:
            x = checkpointed(block, _block_forward, block, x, maps, has_edge)
    return torch.tanh(generator.to_rgb(F.leaky_relu(x, 0.2)))


def semantic_forward(generator: SPADEGenerator, semantic: torch.Tensor, z: torch.Tensor | None = None,
                     has_edge: bool = False) -> torch.Tensor:
    """Drop-in for generator(semantic, z) when `semantic` is a one-hot map (+ an instance-edge channel last)."""
    num_labels = semantic.shape[1] - int(has_edge)
    label = semantic[:, :num_labels].argmax(1, keepdim=True)
    edge = semantic[:, num_labels:] if has_edge else None
    return spade_forward(generator, label, edge, z, num_labels)


# ---- training: spectral norm with a fused backward ---------------------------------------------------
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
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if type(hook) is SpectralNorm:
                hook.__class__ = FastSpectralNorm
                count += 1
    return count


# ---- inference: a folded, precomputed twin ----------------------------------------------------------
class LookupConv(nn.Module):
    """conv_kxk(one_hot(label) [+ edge channel]) as a table lookup; weights copied from `convs` (outputs concatenated)."""

    def __init__(self, convs: list[nn.Conv2d], num_labels: int, has_edge: bool):
        super().__init__()
        weight = torch.cat([c.weight.detach() for c in convs])
        bias = torch.cat([c.bias.detach() if c.bias is not None else torch.zeros(c.out_channels) for c in convs])
        self.k, self.num_labels = weight.shape[-1], num_labels
        self.register_buffer("table", lookup_table(weight, bias, num_labels).contiguous())
        self.register_buffer("edge_weight", weight[:, num_labels:num_labels + 1].clone() if has_edge else None)

    def forward(self, maps: LabelMaps, size) -> torch.Tensor:
        return lookup(maps, size, self.table, self.k, self.edge_weight)


class FastSPADEBlock(nn.Module):
    """SPADEResBlock computed with one shared lookup for its SPADE layers at the input size."""

    def __init__(self, block: SPADEResBlock, num_labels: int, has_edge: bool):
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        first = [block.norm_0] + ([block.norm_shortcut] if self.learned_shortcut else [])
        self.split = [s.shared[0].out_channels for s in first]
        self.lookup_in = LookupConv([s.shared[0] for s in first], num_labels, has_edge)
        self.lookup_mid = LookupConv([block.norm_1.shared[0]], num_labels, has_edge)
        self.norms = nn.ModuleList([block.norm_0.norm, block.norm_1.norm] + ([block.norm_shortcut.norm] if self.learned_shortcut else []))
        self.modulation = nn.ModuleList([_gamma_beta(block.norm_0), _gamma_beta(block.norm_1)]
                                        + ([_gamma_beta(block.norm_shortcut)] if self.learned_shortcut else []))
        self.conv_0, self.conv_1 = block.conv_0, block.conv_1
        self.conv_shortcut = block.conv_shortcut if self.learned_shortcut else None

    def _modulate(self, x, i: int, hidden, slope: float):
        gb = self.modulation[i](F.relu(hidden).to(self.modulation[i].weight.dtype))
        scale, shift = _norm_affine(self.norms[i], x)
        return _KERNELS["modulate"](x, gb, scale, shift, slope)

    def forward(self, x: torch.Tensor, maps: LabelMaps) -> torch.Tensor:
        size = x.shape[-2:]
        hidden = self.lookup_in(maps, size).split(self.split, dim=1)
        if self.learned_shortcut:
            shortcut = self.conv_shortcut(self._modulate(x, 2, hidden[1], 1.0))
        else:
            shortcut = x
        dx = self.conv_0(self._modulate(x, 0, hidden[0], 0.2))
        dx = self.conv_1(self._modulate(dx, 1, self.lookup_mid(maps, size), 0.2))
        return shortcut + dx


def modulate(x: torch.Tensor, gb: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, slope: float) -> torch.Tensor:
    """leaky_relu((x * scale + shift) * (1 + gamma) + beta, slope) in float32, returned in x's dtype.

    gb: gamma and beta concatenated on channels; scale, shift: the normalisation as a per-channel
    (batch norm: [1,C,1,1]) or per-sample (instance norm: [N,C,1,1]) affine map; slope 1: no activation.
    Eager: in place on two float32 buffers (each new large tensor costs page faults). `compile_kernels()`
    swaps in a torch.compile'd version: one fused pass, several times faster.
    """
    gamma, beta = gb.float().chunk(2, dim=1)
    y = x.to(torch.float32, copy=True).mul_(scale).add_(shift).mul_(gamma.add_(1)).add_(beta)
    y = y.to(x.dtype)
    return y if slope == 1.0 else F.leaky_relu_(y, slope)


_KERNELS = {"modulate": modulate}


def compile_kernels() -> bool:
    """Use torch.compile'd elementwise kernels in FastGenerator (process-wide; compiled once per dtype and
    rank on first use, a few seconds each). Returns False, keeping the eager kernels, if compiling fails."""
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


def _norm_affine(norm: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A parameter-free norm as x * scale + shift (float32): running statistics, or x's own for instance norm."""
    if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_mean is not None:
        scale = (norm.running_var + norm.eps).rsqrt()
        return scale.view(1, -1, 1, 1), (-norm.running_mean * scale).view(1, -1, 1, 1)
    if isinstance(norm, nn.InstanceNorm2d) and not norm.track_running_stats:
        var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0, keepdim=True)
        scale = (var + norm.eps).rsqrt()
        return scale, -mean * scale
    raise TypeError(f"the fast path does not support {type(norm).__name__} in SPADE")


def _gamma_beta(spade: SPADE) -> nn.Conv2d:
    """SPADE's gamma and beta convs as one conv with 2C outputs."""
    g, b = spade.gamma, spade.beta
    conv = nn.Conv2d(g.in_channels, 2 * g.out_channels, g.kernel_size, padding=g.padding)
    conv.weight.data.copy_(torch.cat([g.weight.detach(), b.weight.detach()]))
    conv.bias.data.copy_(torch.cat([g.bias.detach(), b.bias.detach()]))
    return conv


class FastGenerator(nn.Module):
    """Inference-only twin of a SPADEGenerator: forward(label [N,1,H,W] channel ids, edge [N,1,H,W] | None, z | None).

    Works in float32 as built; `to_compute_dtype(torch.bfloat16)` stores the convolutions and tables in
    bf16 (normalisation statistics and the modulation stay float32).
    """

    def __init__(self, generator: SPADEGenerator, num_labels: int, has_edge: bool):
        super().__init__()
        if not isinstance(generator, SPADEGenerator) or type(generator) is not SPADEGenerator:
            raise TypeError("the fast path supports the SPADE generator only")
        generator = fold_spectral_norm(copy.deepcopy(generator).eval())
        self.config = generator.config
        self.latent_size = generator.latent_size
        self.num_labels, self.has_edge = num_labels, has_edge
        self.use_vae = self.config.use_vae
        self.input = generator.input if self.use_vae else LookupConv([generator.input], num_labels, has_edge)
        self.blocks = nn.ModuleDict({name: FastSPADEBlock(block, num_labels, has_edge) for name, block in generator.blocks.items()})
        self.upsample_before = dict(generator.upsample_before)
        self.to_rgb = generator.to_rgb
        self.eval().requires_grad_(False)

    def to_compute_dtype(self, dtype: torch.dtype) -> "FastGenerator":
        """Store convolution weights and lookup tables in `dtype` (e.g. bfloat16); norms stay float32."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, LookupConv)):
                module.to(dtype)
        return self

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.to_rgb.weight.dtype

    def forward(self, label: torch.Tensor, edge: torch.Tensor | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        maps = LabelMaps(label, edge, self.num_labels)
        sh, sw = self.latent_size
        if self.use_vae:
            if z is None:
                z = torch.randn(label.shape[0], self.config.z_dim, device=label.device)
            x = self.input(z.to(self.compute_dtype)).unflatten(1, (16 * self.config.ngf, sh, sw))
        else:
            x = self.input(maps, (sh, sw))
        x = x.contiguous(memory_format=torch.channels_last)
        for name, block in self.blocks.items():
            if self.upsample_before[name]:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(x, maps)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))
