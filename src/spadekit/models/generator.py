"""The SPADE generator: a latent grid upsampled by SPADE residual blocks to an image."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from spadekit.config import UPSAMPLING_LAYERS, ModelConfig
from spadekit.layers.blocks import SPADEResBlock
from spadekit.layers.lookup import LabelConvTable, LabelMaps, label_conv
from spadekit.layers.spectral_norm import spectral_norm_hooks
from spadekit.models.oasis import with_3d_noise


def random_latents(count: int, z_dim: int, seed: int | None = None, device: str | torch.device | None = None) -> torch.Tensor:
    """z ~ N(0, I) [count, z_dim] float32. With a seed, row i comes from seed + i alone (so image i of seed s
    is image 0 of seed s + i, whatever the batch); without one, from torch's global generator."""
    if seed is None:
        return torch.randn(count, z_dim, device=device)
    rows = [torch.randn(z_dim, generator=torch.Generator().manual_seed(seed + i)) for i in range(count)]
    return torch.stack(rows).to(device)


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


def generator_widths(c: ModelConfig) -> list[tuple[str, int, int, bool, bool]]:
    """(name, in channels, out channels, learned shortcut, upsample before) per block: the plan at ngf, no
    block narrower than min_width. The shortcut is the plan's (a 1x1 conv where the plan changes width), so
    a block widened to equal widths keeps the conv it had and a narrower model's weights still fit."""
    widths = []
    for name, fin, fout, up in generator_block_plan(c.num_upsampling_layers):
        nominal_in, nominal_out = fin * c.ngf // 2, fout * c.ngf // 2
        widths.append((name, max(nominal_in, c.min_width), max(nominal_out, c.min_width), nominal_in != nominal_out, up))
    return widths


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
    normalized = [(m, hook.name) for m, hook in spectral_norm_hooks(module)]

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


def grown_side(length: int, trained: int) -> tuple[int, list[int]]:
    """How one side of the latent grid reaches `length` cells from `trained`: (the length it is
    resized to, then the index of that resized side each output cell takes). A side that grows by k
    is stretched to round(trained * sqrt(k)) cells and mirror-extended (0, 1, .., m-1, m-1, .., 0, 0,
    ..); any other side is resized to its length."""
    if length <= trained:
        return length, list(range(length))
    stretched = min(length, max(trained, round(trained * math.sqrt(length / trained))))
    period = 2 * stretched
    return stretched, [i % period if i % period < stretched else period - 1 - i % period for i in range(length)]


class SPADEGenerator(nn.Module):
    """G(semantic, z [B,z_dim] | None) -> image [B,3,H,W] in [-1, 1].

    semantic: the semantic map [B,C,H,W] (one-hot labels + instance edge), or the same as a
    `LabelMaps` (label indices + edges): then every conv over the map (the input conv, each SPADE
    layer's shared conv) is a table lookup, computed once per resolution: the same numbers within
    float rounding, much less work, differentiable (the trainer's fast path).
    With use_vae, z (random when None) is mapped by a linear layer to the latent grid; otherwise the
    semantic map, nearest-resized to the latent grid, goes through a 3x3 conv. The latent grid follows
    the semantic map's size (H / 2**upsamplings, W / 2**upsamplings), so one generator makes any size
    its upsampling factor divides (`latent_grid`: how one z fills a grid larger than the trained one). With noise_3d, z
    (random when None) is OASIS's 3D noise: broadcast to every pixel and appended to the semantic
    map that the input conv and every SPADE layer read (a dense map then: noise is not one-hot).
    activation_checkpointing (attribute, not saved): in training, recompute each block's activations
    in backward instead of keeping them (less memory, about one more forward of time).
    """

    activation_checkpointing = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.latent_size = c.latent_size
        sh, sw = self.latent_size
        top = 16 * c.ngf
        if c.use_vae:
            self.input = nn.Linear(c.z_dim, top * sh * sw)
        else:
            self.input = nn.Conv2d(c.generator_input_channels, top, 3, padding=1)
        self.blocks = nn.ModuleDict()
        self.upsample_before: dict[str, bool] = {}
        for name, in_channels, out_channels, learned_shortcut, up in generator_widths(c):
            self.blocks[name] = self.make_block(in_channels, out_channels, learned_shortcut, c)
            self.upsample_before[name] = up
        last = next(reversed(self.blocks.values()))
        self.to_rgb = nn.Conv2d(last.conv_1.out_channels, 3, 3, padding=1)
        self.input_table: LabelConvTable | None = None

    @staticmethod
    def make_block(in_channels: int, out_channels: int, learned_shortcut: bool, c: ModelConfig) -> nn.Module:
        return SPADEResBlock(in_channels, out_channels, c.generator_input_channels, c.spade_hidden, c.spade_kernel, c.norm,
                             c.spectral_norm, learned_shortcut)

    @property
    def size_multiple(self) -> int:
        """Output sides are multiples of this: one latent cell becomes 2**upsamplings pixels along each side."""
        return 2 ** UPSAMPLING_LAYERS[self.config.num_upsampling_layers]

    def latent_grid_size(self, size) -> tuple[int, int]:
        """(sh, sw) of the latent grid for an output of `size` (H, W); ValueError unless the factor divides both."""
        factor, (h, w) = self.size_multiple, (int(size[0]), int(size[1]))
        if h < factor or w < factor or h % factor or w % factor:
            raise ValueError(f"the generator makes sizes whose sides are multiples of {factor}; got {w}x{h}")
        return h // factor, w // factor

    def latent_grid(self, z: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The VAE input: z [B,z_dim] -> linear -> the trained latent grid [B,16*ngf,sh,sw], the trained
        size exactly as trained. For a larger grid, each side that grows by a factor k is stretched
        (bilinearly) by only sqrt(k) and then extended by mirroring to its full length: one z, no seam
        (a mirror continues every cell), textures stretched by sqrt(k) instead of k. A smaller side is
        resized to its length (`grown_side` has the rule; docs/inference.md, "Any size", the measurements)."""
        x = self.input(z.to(self.input.weight.dtype)).unflatten(1, (16 * self.config.ngf, *self.latent_size))
        if tuple(grid) == tuple(self.latent_size):
            return x
        (h, hidx), (w, widx) = (grown_side(n, trained) for n, trained in zip(grid, self.latent_size))
        if (h, w) != tuple(self.latent_size):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x[:, :, hidx][:, :, :, widx]

    def forward(self, semantic: torch.Tensor | LabelMaps, z: torch.Tensor | None = None) -> torch.Tensor:
        sh, sw = self.latent_grid_size(semantic.shape[-2:])
        if self.config.noise_3d:
            if isinstance(semantic, LabelMaps):
                semantic = semantic.dense()
            if z is None:
                z = random_latents(semantic.shape[0], self.config.noise_3d, device=semantic.device)
            semantic = with_3d_noise(semantic, z)
        labels = isinstance(semantic, LabelMaps)
        if self.config.use_vae:
            if z is None:
                z = random_latents(semantic.shape[0], self.config.z_dim, device=semantic.device)
            x = self.latent_grid(z, (sh, sw))
        elif labels and self.input_table is not None:
            x = self.input_table(semantic, (sh, sw))
        elif labels:
            x = label_conv(semantic, (sh, sw), self.input.weight, self.input.bias)
        else:
            x = self.input(F.interpolate(semantic, size=(sh, sw), mode="nearest"))
        if labels:  # the layout lookups produce; the blocks' convs then run in it
            x = x.contiguous(memory_format=torch.channels_last)
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for name, block in self.blocks.items():
            if self.upsample_before[name]:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = checkpointed(block, block, x, semantic) if recompute else block(x, semantic)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))

    def prepare_for_inference(self) -> None:
        """In place, on an inference copy (`spadekit.models.optimize_for_inference`): lookup tables
        precomputed from the current weights, gamma/beta of every SPADE layer fused."""
        num_labels, has_edge = self.config.label_channels, self.config.use_instance
        if self.config.noise_3d:  # the generator reads a dense map (labels + noise): no lookups to prepare
            return
        if not self.config.use_vae:
            self.input_table = LabelConvTable([self.input], num_labels, has_edge)
        for block in self.blocks.values():
            if isinstance(block, SPADEResBlock):
                block.prepare_for_inference(num_labels, has_edge)
