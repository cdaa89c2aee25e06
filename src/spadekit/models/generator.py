"""The SPADE generator: a latent grid upsampled by SPADE residual blocks to an image."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from spadekit.config import UPSAMPLING_LAYERS, GeneratorConfig
from spadekit.layers.blocks import SPADEResBlock


def generator_block_plan(num_upsampling_layers: str) -> list[tuple[str, int, int, bool]]:
    """(name, in width, out width, upsample before) per block, widths in units of ngf/2.

    head 16->16, middle_0 16->16 (after one x2), middle_1 16->16 (x2 first for more/most),
    up_0..up_3 halve the width after each x2, most adds up_4 (ngf -> ngf/2).
    """
    plan = [
        ("head", 32, 32, False),
        ("middle_0", 32, 32, True),
        ("middle_1", 32, 32, num_upsampling_layers in ("more", "most")),
        ("up_0", 32, 16, True),
        ("up_1", 16, 8, True),
        ("up_2", 8, 4, True),
        ("up_3", 4, 2, True),
    ]
    if num_upsampling_layers == "most":
        plan.append(("up_4", 2, 1, True))
    assert sum(up for *_, up in plan) == UPSAMPLING_LAYERS[num_upsampling_layers]
    return plan


def checkpointed(module: nn.Module, function, *args):
    """function(*args) (a forward of `module`) with its activations recomputed in backward instead of kept.

    torch.utils.checkpoint runs the forward again in backward; the buffers that forward updates
    (spectral-norm u/v, BatchNorm running statistics) are rewound for the recomputation and put back
    after it, so they are updated once and gradients equal those without checkpointing.
    """
    buffers = list(module.buffers())
    before = [b.detach().clone() for b in buffers]
    # the weights spectral norm computes stay on their modules as attributes after a forward; let them go
    # (the hook computes them again before every forward), or they would hold a copy of the weights
    normalized = [(m, hook.name) for m in module.modules() for hook in m._forward_pre_hooks.values() if isinstance(hook, SpectralNorm)]

    def release():
        for m, name in normalized:
            m.__dict__.pop(name, None)

    @contextlib.contextmanager
    def rewound():
        after = [b.detach().clone() for b in buffers]
        with torch.no_grad():
            for b, v in zip(buffers, before):
                b.copy_(v)
        try:
            yield
        finally:
            with torch.no_grad():
                for b, v in zip(buffers, after):
                    b.copy_(v)
            release()

    out = torch.utils.checkpoint.checkpoint(
        function, *args, use_reentrant=False, context_fn=lambda: (contextlib.nullcontext(), rewound())
    )
    release()
    return out


class SPADEGenerator(nn.Module):
    """G(semantic [B,C,H,W], z [B,z_dim] | None) -> image [B,3,H,W] in [-1, 1].

    With use_vae, z (random when None) is mapped by a linear layer to the latent grid; otherwise the
    semantic map, nearest-resized to the latent grid, goes through a 3x3 conv.
    activation_checkpointing (attribute, not saved): in training, recompute each block's activations
    in backward instead of keeping them (less memory, about one more forward of time).
    """

    activation_checkpointing = False

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config
        self.latent_size = c.latent_size
        sh, sw = self.latent_size
        top = 16 * c.ngf
        if c.use_vae:
            self.input = nn.Linear(c.z_dim, top * sh * sw)
        else:
            self.input = nn.Conv2d(c.semantic_channels, top, 3, padding=1)
        self.blocks = nn.ModuleDict()
        self.upsample_before: dict[str, bool] = {}
        for name, fin, fout, up in generator_block_plan(c.num_upsampling_layers):
            self.blocks[name] = self.make_block(fin * c.ngf // 2, fout * c.ngf // 2, c)
            self.upsample_before[name] = up
        last = next(reversed(self.blocks.values()))
        self.to_rgb = nn.Conv2d(last.conv_1.out_channels, 3, 3, padding=1)

    @staticmethod
    def make_block(in_channels: int, out_channels: int, c: GeneratorConfig) -> nn.Module:
        return SPADEResBlock(in_channels, out_channels, c.semantic_channels, c.spade_hidden, c.spade_kernel, c.norm, c.spectral_norm)

    def forward(self, semantic: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        sh, sw = self.latent_size
        if self.config.use_vae:
            if z is None:
                z = torch.randn(semantic.shape[0], self.config.z_dim, device=semantic.device, dtype=semantic.dtype)
            x = self.input(z).unflatten(1, (16 * self.config.ngf, sh, sw))
        else:
            x = self.input(F.interpolate(semantic, size=(sh, sw), mode="nearest"))
        for name, block in self.blocks.items():
            if self.upsample_before[name]:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpointed(block, block, x, semantic)
            else:
                x = block(x, semantic)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))
