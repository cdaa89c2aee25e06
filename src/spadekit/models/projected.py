"""A discriminator on frozen pretrained features (the idea of Projected GAN, Vision-aided GAN, DP-SIMS).

A discriminator trained from scratch on a few hundred crops memorises them; one that judges
ImageNet VGG16 features only has to learn small heads, and the features already tell textures,
edges and objects apart. Each chosen VGG layer gets a small trainable head that also reads the
label map, resized to the layer's grid, through a projection (Miyato & Koyama 2018): the patch
logit is psi(h) + sum_c m_c <v_c, h>, with h the head's features and m the label map.

The VGG weights are constants of the module (`FrozenVGG16`): the optimiser never sees them,
`requires_grad_` cannot unfreeze them and checkpoints do not store them; they are loaded from the
weight cache (`spadekit.weights`) whenever the discriminator is built.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spadekit import SpadekitError
from spadekit.layers.spectral_norm import maybe_spectral_norm
from spadekit.models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG_OUTPUTS, VGGFeatures

VGG16_WIDTHS = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512, "relu5_3": 512}
DEFAULT_LAYERS = ("relu2_2", "relu3_3", "relu4_3")


class FrozenVGG16(nn.Module):
    """The VGG16 `features` stack up to `last_index` (a torchvision index) as constant tensors.

    The weights are neither parameters nor buffers, so no optimiser, `requires_grad_`, weight
    initialisation, EMA, DDP buffer broadcast or checkpoint ever sees them; `.to()` and friends still
    move them. forward(x already ImageNet-normalised) -> the outputs at `indices`.
    """

    def __init__(self, features: nn.Sequential, last_index: int):
        super().__init__()
        self.plan: list[str] = []
        self.weights: list[torch.Tensor] = []
        for layer in list(features)[: last_index + 1]:
            if isinstance(layer, nn.Conv2d):
                self.plan.append("conv")
                self.weights += [layer.weight.detach().clone(), layer.bias.detach().clone()]
            else:
                self.plan.append("relu" if isinstance(layer, nn.ReLU) else "pool")

    def _apply(self, fn, recurse=True):
        self.weights = [fn(w) for w in self.weights]
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        wanted, outputs, weights = set(indices), [], iter(self.weights)
        for index, kind in enumerate(self.plan):
            if kind == "conv":
                weight, bias = next(weights), next(weights)
                x = F.conv2d(x, weight.to(x.dtype), bias.to(x.dtype), padding=1)
            elif kind == "relu":
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, 2)
            if index in wanted:
                outputs.append(x)
        return outputs


class ProjectionHead(nn.Module):
    """Patch logits from one feature map and the label map at its size.

    [mixing 1x1, fixed random] -> conv3x3 -> LeakyReLU -> conv3x3 -> LeakyReLU = h, then
    psi(h) (1x1 conv to 1) + sum over classes of m_c * (V h)_c. Spectral norm on the trained convs.
    forward returns [h after the first conv, h, logits].
    """

    def __init__(self, in_channels: int, semantic_channels: int, channels: int = 64, channel_mixing: bool = True,
                 spectral_norm: bool = True):
        super().__init__()
        if channel_mixing:
            # Projected GAN's cross-channel mixing: a random 1x1 conv that is never trained.
            mixing = torch.empty(in_channels, in_channels, 1, 1)
            nn.init.kaiming_uniform_(mixing, a=5 ** 0.5)
            self.register_buffer("mixing", mixing)
        else:
            self.mixing = None
        self.conv_0 = maybe_spectral_norm(nn.Conv2d(in_channels, channels, 3, padding=1), spectral_norm)
        self.conv_1 = maybe_spectral_norm(nn.Conv2d(channels, channels, 3, padding=1), spectral_norm)
        self.psi = maybe_spectral_norm(nn.Conv2d(channels, 1, 1), spectral_norm)
        self.embed = maybe_spectral_norm(nn.Conv2d(channels, semantic_channels, 1, bias=False), spectral_norm)

    def forward(self, features: torch.Tensor, semantic: torch.Tensor) -> list[torch.Tensor]:
        if self.mixing is not None:
            features = F.conv2d(features, self.mixing.to(features.dtype))
        first = F.leaky_relu(self.conv_0(features), 0.2)
        h = F.leaky_relu(self.conv_1(first), 0.2)
        projection = (self.embed(h) * semantic.to(h.dtype)).sum(dim=1, keepdim=True)
        return [first, h, self.psi(h) + projection]


class ProjectedDiscriminator(nn.Module):
    """D(semantic [B,C,H,W], image [B,3,H,W] in [-1, 1]) -> [layer][features], as MultiscaleDiscriminator.

    One entry per VGG16 layer in `layers` (default relu2_2, relu3_3, relu4_3: 1/2, 1/4, 1/8 of the
    input size), each [head feature, head feature, patch logits]: hinge and feature-matching losses
    use it unchanged (feature matching then compares the heads' features, not VGG's).
    semantic_channels: channels of the semantic map (with instance edge, if any); it is area-resized
    to each layer's grid, so thin classes keep their share. head_channels: width of each head.
    channel_mixing: the fixed random cross-channel mixing of Projected GAN.
    vgg_weights: torchvision-format VGG16 file; None = the cached ImageNet weights. pretrained=False
    leaves VGG random (tests only).
    """

    def __init__(
        self,
        semantic_channels: int,
        layers: Sequence[str] = DEFAULT_LAYERS,
        head_channels: int = 64,
        channel_mixing: bool = True,
        spectral_norm: bool = True,
        vgg_weights: str | None = None,
        pretrained: bool = True,
    ):
        super().__init__()
        layers = list(layers)
        unknown = [name for name in layers if name not in VGG16_WIDTHS]
        if unknown or not layers:
            raise SpadekitError(
                f"projected discriminator (d_vgg_layers): unknown VGG16 layer(s) {unknown or layers!r}; choose from {', '.join(VGG16_WIDTHS)}"
            )
        self.layer_names = sorted(layers, key=list(VGG16_WIDTHS).index)
        self._indices = [VGG_OUTPUTS["vgg16"][name] for name in self.layer_names]
        vgg = VGGFeatures("vgg16", weights=vgg_weights, random_init=not pretrained)
        self.vgg = FrozenVGG16(vgg.features, max(self._indices))  # only the layers up to the deepest one used
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.heads = nn.ModuleList(
            ProjectionHead(VGG16_WIDTHS[name], semantic_channels, head_channels, channel_mixing, spectral_norm)
            for name in self.layer_names
        )

    @classmethod
    def from_config(cls, config) -> ProjectedDiscriminator:
        """From a `ModelConfig`: its semantic channels, d_vgg_layers, d_ndf as the heads' width, d_channel_mixing."""
        layers = [name.strip() for name in config.d_vgg_layers.split(",") if name.strip()]
        return cls(config.semantic_channels, layers, config.d_ndf, config.d_channel_mixing, config.spectral_norm)

    def forward(self, semantic: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        x = ((image + 1) / 2 - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        outputs = []
        for features, head in zip(self.vgg(x, self._indices), self.heads):
            resized = F.interpolate(semantic.float(), size=features.shape[-2:], mode="area")
            outputs.append(head(features, resized))
        return outputs
