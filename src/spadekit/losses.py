"""The paper's losses as pure functions.

Discriminator outputs are lists over scales of lists of features (last = patch prediction), as
returned by MultiscaleDiscriminator. GAN losses average over scales.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Features = Sequence[Sequence[torch.Tensor]]


def _predictions(outputs: Features) -> list[torch.Tensor]:
    return [scale[-1] for scale in outputs]


def hinge_loss(outputs: Features, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
    """D: mean(relu(1 - D(real))) or mean(relu(1 + D(fake))); G: -mean(D(fake))."""
    losses = []
    for pred in _predictions(outputs):
        if for_discriminator:
            losses.append(F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean())
        else:
            losses.append(-pred.mean())
    return torch.stack(losses).mean()


def least_squares_loss(outputs: Features, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
    """mean((D(x) - t)^2), t = 1 for real (and for the generator's fakes), 0 for fake."""
    target = 1.0 if (target_is_real or not for_discriminator) else 0.0
    return torch.stack([F.mse_loss(p, torch.full_like(p, target)) for p in _predictions(outputs)]).mean()


def original_gan_loss(outputs: Features, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
    """Binary cross-entropy on logits (the original GAN loss; non-saturating for the generator)."""
    target = 1.0 if (target_is_real or not for_discriminator) else 0.0
    return torch.stack(
        [F.binary_cross_entropy_with_logits(p, torch.full_like(p, target)) for p in _predictions(outputs)]
    ).mean()


GAN_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "hinge": hinge_loss,
    "ls": least_squares_loss,
    "original": original_gan_loss,
}


def gan_loss(mode: str, outputs: Features, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
    try:
        fn = GAN_LOSSES[mode]
    except KeyError:
        raise ValueError(f"unknown gan loss {mode!r}; choose one of {sorted(GAN_LOSSES)}") from None
    return fn(outputs, target_is_real, for_discriminator)


def feature_matching_loss(fake: Features, real: Features, weight: float = 10.0) -> torch.Tensor:
    """Sum over scales and intermediate features of L1(fake, real.detach()) * weight / num_scales."""
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real):
        for f, r in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(f, r.detach())
    return total * weight / len(fake)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, weight: float = 0.05) -> torch.Tensor:
    """-0.5 * sum(1 + logvar - mu^2 - exp(logvar)) * weight (summed over batch and dims, as the paper's code)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * weight


def color_loss(fake: torch.Tensor, real: torch.Tensor, weight: float = 10.0, cells: int = 8) -> torch.Tensor:
    """L1 between the images' local mean colours, x weight: both [B, 3, H, W] are averaged over a
    grid of about `cells` x `cells` (squares of side min(H, W) // cells) first. Only the low frequencies are
    compared, so it pulls global colour and light towards the real photo without blurring detail;
    with a VAE it makes the encoder carry the style photo's colours (what the perceptual and
    projected-discriminator losses, on colour-normalised features, barely do)."""
    if fake.shape != real.shape or fake.dim() != 4:
        raise ValueError(f"color_loss needs two [B, C, H, W] tensors of one shape, got {tuple(fake.shape)} and {tuple(real.shape)}")
    side = max(1, min(fake.shape[-2], fake.shape[-1]) // cells)
    return F.l1_loss(F.avg_pool2d(fake, side), F.avg_pool2d(real.detach(), side)) * weight


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]  # the 4-neighbour 3x3 kernel


def abs_laplacian(grey: torch.Tensor) -> torch.Tensor:
    """|Laplacian| of [B, 1, H, W] grey levels, no padding -> [B, 1, H-2, W-2] (also the sharpness metric's)."""
    return F.conv2d(grey, _LAPLACIAN.to(grey)).abs()


def detail_energy(images: torch.Tensor, side: int) -> torch.Tensor:
    """Local high-frequency energy of [B, C, H, W] images: |Laplacian| of the grey level (mean of
    the channels) averaged over squares of `side` pixels -> [B, 1, H', W']."""
    return F.avg_pool2d(abs_laplacian(images.mean(dim=1, keepdim=True)), side, ceil_mode=True)


def detail_loss(fake: torch.Tensor, real: torch.Tensor, weight: float = 10.0, cells: int = 16, octaves: int = 2) -> torch.Tensor:
    """L1 between the local detail energies (`detail_energy`) of fake and real, x weight, averaged
    over `octaves` scales (full size, then halved with a 2x2 mean each time); the energies are
    averaged over a grid of about `cells` x `cells` squares. Only how much fine detail each region
    has is compared, not where its edges lie: a blurred fake is pulled towards the photo's texture
    contrast without being asked to put each blade of grass in its place (an L1 on pixels or on
    the Laplacian itself would reward the blur)."""
    if fake.shape != real.shape or fake.dim() != 4:
        raise ValueError(f"detail_loss needs two [B, C, H, W] tensors of one shape, got {tuple(fake.shape)} and {tuple(real.shape)}")
    if min(fake.shape[-2:]) < 3 * 2 ** (octaves - 1):
        raise ValueError(f"detail_loss: {octaves} octaves need images of at least {3 * 2 ** (octaves - 1)} pixels, got {tuple(fake.shape[-2:])}")
    real = real.detach()
    total = fake.new_zeros(())
    for octave in range(octaves):
        side = max(1, min(fake.shape[-2], fake.shape[-1]) // cells)
        total = total + F.l1_loss(detail_energy(fake, side), detail_energy(real, side))
        if octave < octaves - 1:
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
    return total * weight / octaves


PERCEPTUAL_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def perceptual_loss(
    fake_features: Sequence[torch.Tensor],
    real_features: Sequence[torch.Tensor],
    layer_weights: Sequence[float] = PERCEPTUAL_LAYER_WEIGHTS,
    weight: float = 10.0,
) -> torch.Tensor:
    """Weighted L1 between backbone features (e.g. VGG relu1..relu5) of fake and real images, x weight."""
    total = fake_features[0].new_zeros(())
    for w, f, r in zip(layer_weights, fake_features, real_features):
        total = total + w * F.l1_loss(f, r.detach())
    return total * weight


# ---- OASIS: the segmentation discriminator's losses (Schönfeld et al., ICLR 2021) ------------------
# Logits are [B, N+1, H, W] (N classes, then "fake"); label maps are one-hot [B, N, H, W]. Pixels of
# no class (all-zero, e.g. uncovered by an augmentation) count in no loss.


def class_balance_weights(semantic: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights [B,H,W]: the inverse frequency of the pixel's class in the batch.

    alpha_c = L / (K * n_c), with n_c the pixels of class c, K the classes present and L the
    labelled pixels, so the weights average 1 over labelled pixels (the paper's alpha_c up to that
    constant). A soft map weights each class by its share. Unlabelled pixels get 0.
    """
    counts = semantic.detach().float().sum(dim=(0, 2, 3))
    present = counts > 0
    labelled = counts.sum()
    alpha = torch.where(present, labelled / (present.sum().clamp(min=1) * counts.clamp(min=1e-12)), torch.zeros_like(counts))
    return torch.einsum("bnhw,n->bhw", semantic.detach().float(), alpha)


def _check_logits(logits: torch.Tensor, semantic: torch.Tensor) -> None:
    if logits.shape[1] != semantic.shape[1] + 1 or logits.shape[-2:] != semantic.shape[-2:]:
        raise ValueError(
            f"OASIS logits {tuple(logits.shape)} must have one channel more than the label map "
            f"{tuple(semantic.shape)} (N classes + fake) and the same height x width"
        )


def oasis_real_loss(logits: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
    """Class-balanced cross-entropy towards each pixel's own class.

    The discriminator's loss on real photos and the generator's adversarial loss on its fakes:
    sum over pixels of alpha(class) * -log softmax(logits)[class], divided by the labelled pixels.
    """
    _check_logits(logits, semantic)
    log_probs = F.log_softmax(logits.float(), dim=1)[:, :-1]
    per_pixel = -(semantic.float() * log_probs).sum(dim=1) / semantic.float().sum(dim=1).clamp(min=1e-12)
    weights = class_balance_weights(semantic)
    return (weights * per_pixel).sum() / _labelled(semantic).sum().clamp(min=1)


def oasis_fake_loss(logits: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss on generated images: cross-entropy towards "fake" (the last channel),
    not class-balanced, averaged over the labelled pixels."""
    _check_logits(logits, semantic)
    per_pixel = -F.log_softmax(logits.float(), dim=1)[:, -1]
    labelled = _labelled(semantic)
    return (labelled * per_pixel).sum() / labelled.sum().clamp(min=1)


def _labelled(semantic: torch.Tensor) -> torch.Tensor:
    return (semantic.detach().sum(dim=1) > 0).float()


def labelmix_loss(
    mixed_logits: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor, mask: torch.Tensor,
    weight: float = 10.0,
) -> torch.Tensor:
    """LabelMix consistency: weight * mean((D(mix) - (mask * D(real) + (1 - mask) * D(fake)))^2).

    mask [B,1,H,W] is the binary class mask that built the mixed image (`models.oasis.labelmix`);
    weight 10 in the paper.
    """
    target = mask * real_logits + (1 - mask) * fake_logits
    return F.mse_loss(mixed_logits.float(), target.float()) * weight
