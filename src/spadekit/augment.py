"""Differentiable augmentation of what the discriminator sees, and ADA's adaptive probability.

With few training photos the discriminator memorises them and its gradients stop helping the
generator. Augmenting every image it sees, real and fake alike, with transforms the generator can
be differentiated through (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020) keeps it from
memorising without teaching the generator the augmentations.

The semantic map moves with its image: translation shifts both by the same offset and cutout cuts
the same square from both. Pixels that an operation empties (the border a translation uncovers, the
cutout square) are 0 in the image (mid grey in [-1, 1]) and all-zero in the semantic map, so they
belong to no class; the segmentation losses of OASIS skip such pixels.

    image, semantic = augment(image, semantic, "translation,cutout,color", p=0.5, generator=g)
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from spadekit import SpadekitError

TRANSLATION_RATIO = 1 / 8  # largest shift, as a fraction of the side (DiffAugment's)
CUTOUT_RATIO = 1 / 2  # side of the cutout square, as a fraction of the image side (DiffAugment's)


def _uniform(shape, low: float, high: float, generator, device) -> torch.Tensor:
    source = generator.device if generator is not None else device
    return (torch.rand(shape, generator=generator, device=source) * (high - low) + low).to(device)


def _integers(low: int, high: int, shape, generator, device) -> torch.Tensor:
    """Uniform integers in [low, high] inclusive."""
    source = generator.device if generator is not None else device
    return torch.randint(low, high + 1, shape, generator=generator, device=source).to(device)


def _shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """out[b, :, y, x] = x[b, :, y - dy[b], x - dx[b]], 0 where that falls outside the image."""
    batch, channels, height, width = x.shape
    ys = torch.arange(height, device=x.device).view(1, -1, 1) - dy.view(-1, 1, 1)
    xs = torch.arange(width, device=x.device).view(1, 1, -1) - dx.view(-1, 1, 1)
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    index = ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)
    gathered = x.flatten(2).gather(2, index.flatten(1).unsqueeze(1).expand(-1, channels, -1))
    return gathered.view_as(x) * inside.unsqueeze(1).to(x.dtype)


def translation(image, semantic, apply, generator):
    """Shift image and map together by up to 1/8 of each side (integer pixels)."""
    batch, _, height, width = image.shape
    max_y, max_x = int(height * TRANSLATION_RATIO), int(width * TRANSLATION_RATIO)
    dy = _integers(-max_y, max_y, (batch,), generator, image.device) * apply
    dx = _integers(-max_x, max_x, (batch,), generator, image.device) * apply
    both = _shift(torch.cat([image, semantic.to(image.dtype)], dim=1), dy, dx)
    return both[:, : image.shape[1]], both[:, image.shape[1]:].to(semantic.dtype)


def cutout(image, semantic, apply, generator):
    """Zero a square of half the side, centred anywhere in the image, in image and map alike."""
    batch, _, height, width = image.shape
    size_y, size_x = int(height * CUTOUT_RATIO), int(width * CUTOUT_RATIO)
    cy = _integers(0, height - 1, (batch,), generator, image.device)
    cx = _integers(0, width - 1, (batch,), generator, image.device)
    ys = torch.arange(height, device=image.device).view(1, -1, 1)
    xs = torch.arange(width, device=image.device).view(1, 1, -1)
    inside = ((ys - cy.view(-1, 1, 1)).abs() * 2 < size_y) & ((xs - cx.view(-1, 1, 1)).abs() * 2 < size_x)
    keep = (~(inside & apply.bool().view(-1, 1, 1))).unsqueeze(1)
    return image * keep.to(image.dtype), semantic * keep.to(semantic.dtype)


def brightness(image, semantic, apply, generator):
    """Add one offset in [-0.5, 0.5] to every pixel and channel."""
    offset = _uniform((image.shape[0], 1, 1, 1), -0.5, 0.5, generator, image.device)
    return torch.where(_selected(apply), image + offset.to(image.dtype), image), semantic


def saturation(image, semantic, apply, generator):
    """Scale each pixel's distance from its grey value by a factor in [0, 2]."""
    factor = _uniform((image.shape[0], 1, 1, 1), 0.0, 2.0, generator, image.device).to(image.dtype)
    grey = image.mean(dim=1, keepdim=True)
    return torch.where(_selected(apply), (image - grey) * factor + grey, image), semantic


def contrast(image, semantic, apply, generator):
    """Scale each pixel's distance from the image mean by a factor in [0.5, 1.5]."""
    factor = _uniform((image.shape[0], 1, 1, 1), 0.5, 1.5, generator, image.device).to(image.dtype)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    return torch.where(_selected(apply), (image - mean) * factor + mean, image), semantic


def _selected(apply: torch.Tensor) -> torch.Tensor:
    return apply.bool().view(-1, 1, 1, 1)


Operation = Callable[..., tuple[torch.Tensor, torch.Tensor]]
# policy name -> the operations it runs, in order
POLICIES: dict[str, tuple[Operation, ...]] = {
    "translation": (translation,),
    "cutout": (cutout,),
    "color": (brightness, saturation, contrast),
    "brightness": (brightness,),
    "saturation": (saturation,),
    "contrast": (contrast,),
}


def parse_policy(policy: str | Sequence[str]) -> list[str]:
    """"translation,cutout,color" (or a list of names) -> the names, checked against POLICIES."""
    names = [n.strip() for n in policy.split(",")] if isinstance(policy, str) else [str(n).strip() for n in policy]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise SpadekitError(
            f"unknown augmentation(s) {', '.join(map(repr, unknown))} in policy {policy!r}; "
            f"give a comma-separated list of {', '.join(POLICIES)}"
        )
    return names


def augment(
    image: torch.Tensor,
    semantic: torch.Tensor,
    policy: str | Sequence[str],
    p: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch of (image [B,3,H,W] in [-1, 1], semantic map [B,C,H,W]) pairs.

    Each operation of `policy` runs on each pair with probability p, drawn independently per pair;
    translation and cutout change image and map identically, the colour operations the image only.
    Differentiable with respect to the image. p = 0 returns the inputs themselves. `generator`
    (on any device) makes the draws repeatable.
    """
    names = parse_policy(policy)
    if not 0.0 <= p <= 1.0:
        raise SpadekitError(f"augmentation probability {p} is outside [0, 1]; give a probability")
    if image.shape[0] != semantic.shape[0] or image.shape[-2:] != semantic.shape[-2:]:
        raise SpadekitError(
            f"augment: image {tuple(image.shape)} and semantic map {tuple(semantic.shape)} must have the same "
            "batch size and height x width"
        )
    if p == 0.0 or not names:
        return image, semantic
    for name in names:
        for operation in POLICIES[name]:
            apply = (_uniform((image.shape[0],), 0.0, 1.0, generator, image.device) < p).long()
            image, semantic = operation(image, semantic, apply, generator)
    return image, semantic


def _predictions(outputs) -> list[torch.Tensor]:
    """A tensor of logits, or a [scale][features] list (last = prediction), as a list of tensors."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [scale[-1] if isinstance(scale, (list, tuple)) else scale for scale in outputs]


class AdaptiveProbability:
    """ADA's controller: raise the augmentation probability while the discriminator overfits.

    The overfitting measure is r_t = E[sign(D(real))] over the training reals: near 1 when D is sure
    of every real photo, near 0 when it cannot tell. Every `interval` observed batches p moves by
    sign(r_t - target) * images / ramp_images, so it could go from 0 to 1 in `ramp_images` images,
    and is clipped to [0, 1]. target = 0.6 as in ADA; ramp_images is ADA's 500k by default, far
    more than a small run sees, so give a smaller one for short runs.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, ramp_images: int = 500_000, p: float = 0.0):
        if not 0.0 < target < 1.0:
            raise SpadekitError(f"ADA target {target} must lie strictly between 0 and 1 (ADA uses 0.6)")
        if interval < 1 or ramp_images < 1:
            raise SpadekitError(f"ADA interval ({interval}) and ramp_images ({ramp_images}) must be positive")
        self.target, self.interval, self.ramp_images = target, interval, ramp_images
        self.p = float(p)
        self._sign_sum, self._count, self._images, self._batches = 0.0, 0, 0, 0
        self.last_rt: float | None = None

    def update(self, real_outputs) -> float:
        """Observe D's outputs on one batch of training reals; returns p (changed every `interval` calls).

        real_outputs: real-vs-fake logits (a tensor, e.g. `oasis.realness_logits`) or a
        MultiscaleDiscriminator's [scale][features] list.
        """
        predictions = [p.detach().float() for p in _predictions(real_outputs)]
        self._sign_sum += sum(float(torch.sign(p).sum()) for p in predictions)
        self._count += sum(p.numel() for p in predictions)
        self._images += int(predictions[0].shape[0])
        self._batches += 1
        if self._batches >= self.interval:
            self.last_rt = self._sign_sum / max(self._count, 1)
            direction = (self.last_rt > self.target) - (self.last_rt < self.target)
            self.p = min(1.0, max(0.0, self.p + direction * self._images / self.ramp_images))
            self._sign_sum, self._count, self._images, self._batches = 0.0, 0, 0, 0
        return self.p

    def state_dict(self) -> dict:
        return {
            "p": self.p, "sign_sum": self._sign_sum, "count": self._count, "images": self._images,
            "batches": self._batches, "last_rt": self.last_rt,
        }

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state["p"])
        self._sign_sum, self._count = float(state["sign_sum"]), int(state["count"])
        self._images, self._batches = int(state["images"]), int(state["batches"])
        self.last_rt = state.get("last_rt")
