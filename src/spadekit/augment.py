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

from collections.abc import Callable, Sequence

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


# Each operation takes the images of one batch (real, fake, ...: the same transform for all of them),
# their semantic map, which pairs it applies to (0/1 per pair) and the generator.


def translation(images, semantic, apply, generator):
    """Shift images and map together by up to 1/8 of each side (integer pixels)."""
    batch, _, height, width = semantic.shape
    max_y, max_x = int(height * TRANSLATION_RATIO), int(width * TRANSLATION_RATIO)
    dy = _integers(-max_y, max_y, (batch,), generator, semantic.device) * apply
    dx = _integers(-max_x, max_x, (batch,), generator, semantic.device) * apply
    dtype = images[0].dtype
    moved = _shift(torch.cat([*images, semantic.to(dtype)], dim=1), dy, dx)
    parts = list(moved.split([*(i.shape[1] for i in images), semantic.shape[1]], dim=1))
    return parts[:-1], parts[-1].to(semantic.dtype)


def cutout(images, semantic, apply, generator):
    """Zero a square of half the side, centred anywhere in the image, in images and map alike."""
    batch, _, height, width = semantic.shape
    size_y, size_x = int(height * CUTOUT_RATIO), int(width * CUTOUT_RATIO)
    cy = _integers(0, height - 1, (batch,), generator, semantic.device)
    cx = _integers(0, width - 1, (batch,), generator, semantic.device)
    ys = torch.arange(height, device=semantic.device).view(1, -1, 1)
    xs = torch.arange(width, device=semantic.device).view(1, 1, -1)
    inside = ((ys - cy.view(-1, 1, 1)).abs() * 2 < size_y) & ((xs - cx.view(-1, 1, 1)).abs() * 2 < size_x)
    keep = (~(inside & apply.bool().view(-1, 1, 1))).unsqueeze(1)
    return [i * keep.to(i.dtype) for i in images], semantic * keep.to(semantic.dtype)


def brightness(images, semantic, apply, generator):
    """Add one offset in [-0.5, 0.5] to every pixel and channel."""
    offset = _uniform((semantic.shape[0], 1, 1, 1), -0.5, 0.5, generator, semantic.device)
    return [torch.where(_selected(apply), i + offset.to(i.dtype), i) for i in images], semantic


def saturation(images, semantic, apply, generator):
    """Scale each pixel's distance from its grey value by a factor in [0, 2]."""
    factor = _uniform((semantic.shape[0], 1, 1, 1), 0.0, 2.0, generator, semantic.device)
    out = []
    for i in images:
        grey = i.mean(dim=1, keepdim=True)
        out.append(torch.where(_selected(apply), (i - grey) * factor.to(i.dtype) + grey, i))
    return out, semantic


def contrast(images, semantic, apply, generator):
    """Scale each pixel's distance from the image mean by a factor in [0.5, 1.5]."""
    factor = _uniform((semantic.shape[0], 1, 1, 1), 0.5, 1.5, generator, semantic.device)
    out = []
    for i in images:
        mean = i.mean(dim=(1, 2, 3), keepdim=True)
        out.append(torch.where(_selected(apply), (i - mean) * factor.to(i.dtype) + mean, i))
    return out, semantic


def _selected(apply: torch.Tensor) -> torch.Tensor:
    return apply.bool().view(-1, 1, 1, 1)


Operation = Callable[..., tuple[torch.Tensor, torch.Tensor]]
# policy name -> the operations it runs. They run in this order whatever the policy's order: colour
# first, so the pixels translation and cutout empty stay exactly 0 (as in DiffAugment).
POLICIES: dict[str, tuple[Operation, ...]] = {
    "color": (brightness, saturation, contrast),
    "brightness": (brightness,),
    "saturation": (saturation,),
    "contrast": (contrast,),
    "translation": (translation,),
    "cutout": (cutout,),
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
    image: torch.Tensor | Sequence[torch.Tensor],
    semantic: torch.Tensor,
    policy: str | Sequence[str],
    p: float,
    generator: torch.Generator | None = None,
):
    """Augment a batch of (image [B,3,H,W] in [-1, 1], semantic map [B,C,H,W]) pairs.

    Each operation of `policy` runs on each pair with probability p, drawn independently per pair,
    colour first, then translation, then cutout; translation and cutout change image and map
    identically, the colour operations the image only.
    `image` may be a list of image batches sharing the map (real and fake, say): each then gets the
    same transforms, so they stay aligned pixel for pixel. Differentiable with respect to the images.
    Returns (image or list of images, semantic map); p = 0 returns the inputs themselves.
    `generator` (on any device) makes the draws repeatable.
    """
    names = parse_policy(policy)
    if not 0.0 <= p <= 1.0:
        raise SpadekitError(f"augmentation probability {p} is outside [0, 1]; give a probability")
    images = [image] if isinstance(image, torch.Tensor) else list(image)
    for i in images:
        if i.shape[0] != semantic.shape[0] or i.shape[-2:] != semantic.shape[-2:]:
            raise SpadekitError(
                f"augment: image {tuple(i.shape)} and semantic map {tuple(semantic.shape)} must have the same "
                "batch size and height x width"
            )
    if p == 0.0 or not names:
        return image, semantic
    operations = [op for name in POLICIES if name in names for op in POLICIES[name]]
    for operation in dict.fromkeys(operations):  # each once, in the table's order
        apply = (_uniform((semantic.shape[0],), 0.0, 1.0, generator, semantic.device) < p).long()
        images, semantic = operation(images, semantic, apply, generator)
    return (images[0] if isinstance(image, torch.Tensor) else images), semantic


def _predictions(outputs) -> list[torch.Tensor]:
    """A tensor of logits, or a [scale][features] list (last = prediction), as a list of tensors."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [scale[-1] if isinstance(scale, (list, tuple)) else scale for scale in outputs]


def sign_statistics(real_outputs) -> tuple[float, int, int]:
    """(sum of sign(D(real)), number of logits, number of images) of one batch's outputs."""
    predictions = [p.detach().float() for p in _predictions(real_outputs)]
    sign_sum = sum(float(torch.sign(p).sum()) for p in predictions)
    return sign_sum, sum(p.numel() for p in predictions), int(predictions[0].shape[0])


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
        return self.observe(*sign_statistics(real_outputs))

    def observe(self, sign_sum: float, count: int, images: int) -> float:
        """Like `update`, from `sign_statistics` (summed over processes when there are several)."""
        self._sign_sum += float(sign_sum)
        self._count += int(count)
        self._images += int(images)
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


class DiscriminatorAugment:
    """What the trainer applies to every batch the discriminator sees: a policy, its probability (fixed,
    or adapted by `AdaptiveProbability` when ada_target > 0) and a seeded generator, checkpointable.

    An empty policy changes nothing; the generator also draws the trainer's other per-step choices
    for the discriminator (LabelMix masks).
    """

    def __init__(self, policy: str | Sequence[str] = "", p: float = 1.0, ada_target: float = 0.0,
                 ada_ramp_images: int = 10000, seed: int = 0):
        self.policy = parse_policy(policy)
        self.fixed_p = float(p)
        self.ada = AdaptiveProbability(ada_target, ramp_images=ada_ramp_images, p=p) if ada_target > 0 else None
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def p(self) -> float:
        return self.ada.p if self.ada is not None else self.fixed_p

    def __call__(self, images, semantic: torch.Tensor):
        """`augment(images, semantic, policy, p, generator)`: a list of images gets the same transforms."""
        if not self.policy:
            return images, semantic
        return augment(images, semantic, self.policy, self.p, self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "ada": self.ada.state_dict() if self.ada is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if self.ada is not None and state.get("ada") is not None:
            self.ada.load_state_dict(state["ada"])
