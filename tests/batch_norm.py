"""BatchNorm running statistics that match a random model's activations, as a trained model's do.

A randomly initialised network keeps mean 0 / var 1, which its activations do not have, so eval-mode
outputs are off scale and rounding errors grow. Used by the tests and by benchmarks/suite.py.
"""
from __future__ import annotations

import torch


def random_bands(height: int, width: int, num_classes: int, batch: int, seed: int) -> torch.Tensor:
    """[batch, 1, H, W] channel indices: horizontal bands of random classes with random edges."""
    rng = torch.Generator().manual_seed(seed)
    label = torch.zeros(batch, 1, height, width, dtype=torch.long)
    for b in range(batch):
        edges = sorted(torch.randint(1, height, (7,), generator=rng).tolist())
        for top, bottom in zip([0] + edges, edges + [height]):
            label[b, :, top:bottom] = int(torch.randint(0, num_classes, (1,), generator=rng))
    return label


def calibrate_batch_norm(model, passes: int = 3, batch: int = 2) -> None:
    """Set the generator's BatchNorm statistics from `passes` train-mode forwards on random label maps."""
    norms = [m for m in model.generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momentum = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes
    model.generator.train()
    h, w = model.output_size
    with torch.no_grad():
        for i in range(passes):
            label = random_bands(h, w, model.labels.num_channels, batch, seed=100 + i)
            z = torch.randn(batch, model.config.z_dim) if model.config.use_vae else None
            model.generator(model.semantic(label), z)
    for m, value in zip(norms, momentum):
        m.momentum = value
    model.generator.eval()
