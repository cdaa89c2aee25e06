"""One training step's updates: the generator step, the discriminator step and the EMA of G.

The generator and the encoder train as one module (`GeneratorStep`), so one DDP wrapper and one
optimiser cover both. A step works on the micro-batches of one global batch: each backward is
scaled by 1 / grad_accum and DDP synchronises the gradients on the last micro-batch only.
Before each update the step's loss scalars are checked in one fused `isfinite` (agreed by all
processes): an update from NaN or Inf losses is not applied, and the caller hears of it.
"""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from spadekit.augment import DiscriminatorAugment
from spadekit.layers.lookup import LabelMaps
from spadekit.losses import (
    color_loss,
    detail_loss,
    feature_matching_loss,
    gan_loss,
    kl_divergence,
    labelmix_loss,
    oasis_fake_loss,
    oasis_real_loss,
    perceptual_loss,
)
from spadekit.models.oasis import OASISDiscriminator, labelmix, labelmix_mask, realness_logits
from spadekit.train.batching import StepLayout
from spadekit.train.config import OptimConfig

# (semantic map, real photo, z or None) of one micro-batch
MicroBatch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


class GeneratorStep(nn.Module):
    """Generator (+ encoder) as one module, so a single DDP wrapper and optimiser cover both.

    forward(semantic, image, noise) -> (fake, mu, logvar): with an encoder, z = mu + noise * std of
    E(image); with use_vae and no image, z = noise; without the VAE the map alone drives G.
    has_edge: with fast_path, whether the semantic map's last channel is the instance edge.
    fast_path: in training, give G the map as a `LabelMaps` (its convs over the one-hot map become
    lookups; the same parameters and, within float rounding, the same outputs and gradients).
    """

    def __init__(self, generator: nn.Module, encoder: nn.Module | None, fast_path: bool = False, has_edge: bool = False):
        super().__init__()
        self.generator = generator
        self.encoder = encoder
        self.fast_path, self.has_edge = fast_path, has_edge

    def forward(self, semantic, image=None, noise=None):
        mu = logvar = None
        z = noise
        if self.encoder is not None and image is not None:
            mu, logvar = self.encoder(image)
            z = noise * torch.exp(0.5 * logvar) + mu
        if self.fast_path and self.training:
            semantic = LabelMaps.from_semantic(semantic, self.has_edge)
        return self.generator(semantic, z), mu, logvar


def autocast(device: torch.device, precision: str, cache: bool = True):
    """cache=False: no cast cache (with activation checkpointing it would keep a low-precision copy of every weight)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def _sync_last(wrapped: nn.Module, module: nn.Module, last: bool):
    """DDP's gradient all-reduce on the last micro-batch only (a no-op outside DDP)."""
    return contextlib.nullcontext() if last or wrapped is module else wrapped.no_sync()


def _seen(augmenter: DiscriminatorAugment | None, images: list[torch.Tensor], semantic: torch.Tensor):
    """What the discriminator sees: the images, augmented alike, and their semantic map."""
    return (images, semantic) if augmenter is None else augmenter(images, semantic)


def all_finite(losses: dict[str, torch.Tensor]) -> bool:
    """Whether every loss scalar is finite on every process: one fused check, one device sync (and one
    all-reduce under torchrun, so all processes skip or apply an update together)."""
    if not losses:
        return True
    finite = torch.isfinite(torch.stack([torch.as_tensor(v, dtype=torch.float32).reshape(()) for v in losses.values()])).all()
    if dist.is_initialized():
        finite = finite.to(torch.int32)
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite)


def _update(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, losses: dict[str, torch.Tensor]) -> bool:
    """Apply the optimiser step when the losses are finite (else drop the gradients); returns whether it did."""
    finite = all_finite(losses)
    if finite:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.zero_grad(set_to_none=True)
    return finite


def generator_step(
    g_ddp: nn.Module, g_step: GeneratorStep, discriminator: nn.Module, vgg: nn.Module | None,
    inputs: list[MicroBatch], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    t: OptimConfig, layout: StepLayout, device: torch.device, augmenter: DiscriminatorAugment | None = None,
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], bool]:
    """One G update: GAN + feature matching + perceptual + colour + KL losses, D frozen.

    The discriminator sees fake and real through `augmenter` (the same transforms for both, so
    feature matching compares aligned pixels). With the OASIS discriminator the GAN loss is its
    class-balanced cross-entropy towards each fake pixel's class, and there is no feature matching.
    Returns the detached fakes (the D step reuses them), the step's losses (means over micro-batches)
    and whether they were finite (when not, G was not updated).
    """
    oasis = isinstance(discriminator, OASISDiscriminator)
    losses: dict[str, torch.Tensor] = {}
    fakes = []
    optimizer.zero_grad(set_to_none=True)
    discriminator.requires_grad_(False)
    for m, (semantic, real, z) in enumerate(inputs):
        with _sync_last(g_ddp, g_step, m == len(inputs) - 1):
            with autocast(device, t.precision, cache=not t.activation_checkpointing):
                fake, mu, logvar = g_ddp(semantic, real if g_step.encoder is not None else None, z)
                (fake_seen, real_seen), semantic_seen = _seen(augmenter, [fake, real], semantic)
                if oasis:
                    logits_fake = discriminator(fake_seen)
                else:
                    pred_fake = discriminator(semantic_seen, fake_seen)
                    with torch.no_grad():
                        pred_real = discriminator(semantic_seen, real_seen)
            fake = fake.float()
            if oasis:
                parts = {"G_gan": oasis_real_loss(logits_fake.float(), semantic_seen[:, : discriminator.num_classes])}
            else:
                pred_fake = [[f.float() for f in scale] for scale in pred_fake]
                pred_real = [[f.float() for f in scale] for scale in pred_real]
                parts = {"G_gan": gan_loss(t.gan_mode, pred_fake, True, for_discriminator=False)}
            if t.lambda_feat > 0 and not oasis:
                parts["G_feat"] = feature_matching_loss(pred_fake, pred_real, t.lambda_feat)
            if vgg is not None:
                parts["G_vgg"] = _perceptual(vgg, fake, real, t, device)
            if t.lambda_color > 0:
                parts["G_color"] = color_loss(fake, real, t.lambda_color)
            if t.lambda_color_global > 0:
                parts["G_color_global"] = color_loss(fake, real, t.lambda_color_global, cells=1)
            if t.lambda_detail > 0:
                parts["G_detail"] = detail_loss(fake, real, t.lambda_detail)
            if mu is not None and t.lambda_kld > 0:
                # KL summed over the global batch, whatever the split into micro-batches and processes.
                parts["G_kld"] = kl_divergence(mu.float(), logvar.float(), t.lambda_kld) * (layout.accum * layout.world)
            loss = sum(parts.values())
            scaler.scale(loss / layout.accum).backward()
        fakes.append(fake.detach())
        for k, v in parts.items():
            losses[k] = losses.get(k, 0.0) + v.detach() / layout.accum
        losses["G_l1"] = losses.get("G_l1", 0.0) + F.l1_loss(fake.detach(), real) / layout.accum
    discriminator.requires_grad_(True)
    finite = _update(optimizer, scaler, losses)
    optimizer.zero_grad(set_to_none=True)  # G's gradients are not needed in the D step: free them
    return fakes, losses, finite


def discriminator_step(
    d_ddp: nn.Module, discriminator: nn.Module, g_step: GeneratorStep, inputs: list[MicroBatch],
    fakes: list[torch.Tensor], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    t: OptimConfig, layout: StepLayout, device: torch.device, augmenter: DiscriminatorAugment | None = None,
) -> tuple[dict[str, torch.Tensor], bool]:
    """One D update: real vs (detached) fake in one batch; without the G step's fakes, G makes new ones.

    Both go through `augmenter` (the same transforms for the pair). With the OASIS discriminator: its
    N+1-class losses, and with t.labelmix > 0 LabelMix (a third image, real on a random half of the
    classes and fake elsewhere, whose logits must be the same mix of the other two's). With ADA on,
    the losses also hold D_real_sign, mean sign(D(real)): what the controller reads.
    Returns the step's losses (means over micro-batches) and whether they were finite (when not, D
    was not updated)."""
    oasis = isinstance(discriminator, OASISDiscriminator)
    mixing = oasis and t.labelmix > 0
    losses: dict[str, torch.Tensor] = {}
    optimizer.zero_grad(set_to_none=True)
    for m, (semantic, real, z) in enumerate(inputs):
        if fakes:
            fake = fakes[m]
        else:
            with torch.no_grad(), autocast(device, t.precision):
                fake = g_step(semantic, real if g_step.encoder is not None else None, z)[0].float()
        images = [fake, real]
        if mixing:  # the mask travels with the map, as one more channel, through the augmentation
            mask = labelmix_mask(semantic[:, : discriminator.num_classes], augmenter.generator if augmenter else None)
            images.append(labelmix(real, fake, mask))
            semantic = torch.cat([semantic, mask], dim=1)
        images, semantic = _seen(augmenter, images, semantic)
        if mixing:
            semantic, mask = semantic[:, :-1], semantic[:, -1:]
        n = len(real)
        with _sync_last(d_ddp, discriminator, m == len(inputs) - 1):
            if oasis:
                with autocast(device, t.precision):
                    logits = d_ddp(torch.cat(images)).float()
                labels = semantic[:, : discriminator.num_classes]
                parts = {"D_fake": oasis_fake_loss(logits[:n], labels), "D_real": oasis_real_loss(logits[n:2 * n], labels)}
                if mixing:
                    parts["D_labelmix"] = labelmix_loss(logits[2 * n:], logits[n:2 * n], logits[:n], mask, t.labelmix)
                real_predictions = [realness_logits(logits[n:2 * n])]
            else:
                with autocast(device, t.precision):
                    outputs = d_ddp(torch.cat([semantic, semantic]), torch.cat(images))
                pred_fake = [[f.float()[:n] for f in scale] for scale in outputs]
                pred_real = [[f.float()[n:] for f in scale] for scale in outputs]
                parts = {
                    "D_fake": gan_loss(t.gan_mode, pred_fake, False),
                    "D_real": gan_loss(t.gan_mode, pred_real, True),
                }
                real_predictions = [scale[-1] for scale in pred_real]
            scaler.scale(sum(parts.values()) / layout.accum).backward()
        if augmenter is not None and augmenter.ada is not None:
            sign = torch.stack([torch.sign(p.detach()).mean() for p in real_predictions]).mean()
            losses["D_real_sign"] = losses.get("D_real_sign", 0.0) + sign / layout.accum
        for k, v in parts.items():
            losses[k] = losses.get(k, 0.0) + v.detach() / layout.accum
    return losses, _update(optimizer, scaler, losses)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers (spectral-norm u/v, BN stats) copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _perceptual(vgg: nn.Module, fake: torch.Tensor, real: torch.Tensor, t: OptimConfig, device) -> torch.Tensor:
    if t.perceptual_size is not None and fake.shape[-1] != t.perceptual_size:
        size = (max(1, round(t.perceptual_size * fake.shape[-2] / fake.shape[-1])), t.perceptual_size)
        fake = F.interpolate(fake, size=size, mode="bilinear", align_corners=False, antialias=True)
        real = F.interpolate(real, size=size, mode="bilinear", align_corners=False, antialias=True)
    with autocast(device, t.precision):
        fake_features = vgg(fake)
        with torch.no_grad():
            real_features = vgg(real)
    return perceptual_loss([f.float() for f in fake_features], [r.float() for r in real_features], weight=t.lambda_vgg)
