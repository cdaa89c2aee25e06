"""OASIS (Schönfeld et al., ICLR 2021): a segmentation discriminator, LabelMix and 3D noise.

The discriminator is a U-Net of residual blocks that reads the image alone and labels every pixel
with one of N + 1 classes: the N semantic classes, or "fake" (index N). Its losses, pure functions
in `spadekit.losses` (`oasis_real_loss`, `oasis_fake_loss`, `labelmix_loss`), take the label map
as the target instead of as an input, which gives the generator a per-pixel, per-class signal
without a VGG loss.

3D noise replaces the image encoder as the source of multimodality: a z of shape [B, z_dim] is
broadcast to every pixel and concatenated to the semantic map (`with_3d_noise`), so the generator
sees z_dim extra semantic channels and its SPADE layers modulate every block by the noise. A
model uses either 3D noise or the VAE encoder, not both: with 3D noise there is no style image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.layers.spectral_norm import maybe_spectral_norm


class OASISResBlock(nn.Module):
    """LeakyReLU -> conv3x3 -> LeakyReLU -> conv3x3, plus a shortcut; resampled by `resample` after.

    resample: "down" (2x2 average pool), "up" (2x nearest, applied before the convs) or "none".
    The shortcut is a 1x1 conv when the width changes, else identity. Spectral norm on every conv.
    """

    def __init__(self, in_channels: int, out_channels: int, resample: str = "none", spectral_norm: bool = True):
        super().__init__()
        if resample not in ("down", "up", "none"):
            raise ValueError(f"resample must be down, up or none, got {resample!r}")
        self.resample = resample
        self.conv_0 = maybe_spectral_norm(nn.Conv2d(in_channels, out_channels, 3, padding=1), spectral_norm)
        self.conv_1 = maybe_spectral_norm(nn.Conv2d(out_channels, out_channels, 3, padding=1), spectral_norm)
        self.shortcut = (
            maybe_spectral_norm(nn.Conv2d(in_channels, out_channels, 1, bias=False), spectral_norm)
            if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        dx = self.conv_1(F.leaky_relu(self.conv_0(F.leaky_relu(x, 0.2)), 0.2))
        out = self.shortcut(x) + dx
        if self.resample == "down":
            out = F.avg_pool2d(out, 2)
        return out


def oasis_widths(ndf: int, num_blocks: int) -> list[int]:
    """Encoder widths ndf, ndf, 2ndf, 2ndf, 4ndf, 4ndf, ... (the paper's 128,128,256,256,512,512), capped at 8ndf."""
    return [ndf * min(2 ** (i // 2), 8) for i in range(num_blocks)]


class OASISDiscriminator(nn.Module):
    """D(image [B,3,H,W]) -> per-pixel logits [B, num_classes + 1, H, W]; the last channel is "fake".

    num_classes: semantic channels of the label map (classes + dontcare; no instance edge).
    ndf: width of the first blocks. num_blocks: down blocks, each halving the size (H and W must
    be multiples of 2**num_blocks; 6 at 256x256 as in the paper). The decoder mirrors the encoder:
    each up block doubles the size and, from the second on, reads the previous block's output
    concatenated with the encoder output of the same size.
    """

    def __init__(self, num_classes: int, ndf: int = 64, num_blocks: int = 6, spectral_norm: bool = True, image_channels: int = 3):
        super().__init__()
        if num_classes < 1 or num_blocks < 1:
            raise ValueError(f"OASISDiscriminator needs num_classes >= 1 and num_blocks >= 1, got {num_classes}, {num_blocks}")
        self.num_classes, self.num_blocks = num_classes, num_blocks
        widths = oasis_widths(ndf, num_blocks)
        ins = [image_channels] + widths[:-1]
        self.down = nn.ModuleList(OASISResBlock(i, o, "down", spectral_norm) for i, o in zip(ins, widths))
        up = []
        for k, level in enumerate(reversed(range(num_blocks))):  # level: the encoder output it starts from
            in_channels = widths[level] * (1 if k == 0 else 2)  # from the second block: + the skip
            out_channels = widths[level - 1] if level > 0 else widths[0]
            up.append(OASISResBlock(in_channels, out_channels, "up", spectral_norm))
        self.up = nn.ModuleList(up)
        self.to_logits = nn.Conv2d(widths[0], num_classes + 1, 1)

    @classmethod
    def from_config(cls, config) -> OASISDiscriminator:
        """From a `ModelConfig`: its label channels as the classes, d_ndf, d_num_layers down blocks."""
        return cls(config.label_channels, config.d_ndf, config.d_num_layers, config.spectral_norm)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        factor = 2 ** self.num_blocks
        if image.shape[-1] % factor or image.shape[-2] % factor:
            raise ValueError(
                f"OASISDiscriminator with {self.num_blocks} blocks needs H and W divisible by {factor}, got {tuple(image.shape[-2:])}"
            )
        skips = []
        x = image
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[0](skips[-1])
        for block, skip in zip(self.up[1:], reversed(skips[:-1])):
            x = block(torch.cat([x, skip], dim=1))
        return self.to_logits(x)


def realness_logits(logits: torch.Tensor) -> torch.Tensor:
    """log(sum over classes of p) - log(p_fake) per pixel, [B,1,H,W]: > 0 where D calls the pixel real.

    The segmentation discriminator's real-vs-fake logit, e.g. for ADA's sign(D(real)).
    """
    return torch.logsumexp(logits[:, :-1], dim=1, keepdim=True) - logits[:, -1:]


def labelmix_mask(semantic: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A binary mask [B,1,H,W] that is 1 on a random half of each map's classes (each class a coin flip).

    semantic: one-hot [B,N,H,W]; pixels of no class (all-zero) get 0.
    """
    source = generator.device if generator is not None else semantic.device
    chosen = (torch.rand(semantic.shape[:2], generator=generator, device=source) < 0.5).to(semantic.device, semantic.dtype)
    return (semantic * chosen[:, :, None, None]).sum(dim=1, keepdim=True).clamp(max=1)


def labelmix(real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mask * real + (1 - mask) * fake: real photo where the mask is 1, the generated image elsewhere."""
    return mask * real + (1 - mask) * fake


def with_3d_noise(semantic: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """concat(semantic [B,C,H,W], z [B,z_dim] broadcast to every pixel) -> [B, C + z_dim, H, W]."""
    if z.dim() != 2 or z.shape[0] != semantic.shape[0]:
        raise ValueError(f"3D noise z must be [B, z_dim] with B = {semantic.shape[0]}, got {tuple(z.shape)}")
    noise = z.to(semantic.dtype)[:, :, None, None].expand(-1, -1, *semantic.shape[-2:])
    return torch.cat([semantic, noise], dim=1)
