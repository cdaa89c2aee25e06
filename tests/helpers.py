"""Small builders shared by tests: tiny model configurations, a dataset that misbehaves on one read."""
from __future__ import annotations

from collections.abc import Callable

from spadekit.config import ModelConfig
from spadekit.labels import Label, LabelSet


def tiny_labels(n: int = 5, dontcare: bool = False) -> LabelSet:
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (128, 128, 128), (0, 0, 0)]
    return LabelSet("tiny", [Label(i, f"c{i}", colors[i % len(colors)]) for i in range(n)], 255, dontcare)


def tiny_model_config(
    n_labels: int = 5,
    dontcare: bool = False,
    use_instance: bool = True,
    use_vae: bool = True,
    upsampling: str = "normal",
    crop_size: int = 64,
    aspect_ratio: float = 1.0,
    norm: str = "batch",
    ngf: int = 4,
    with_d: bool = True,
    num_scales: int = 2,
) -> ModelConfig:
    """with_d: kept for callers; the discriminator is built by SPADEModel(..., with_discriminator=...)."""
    return ModelConfig(
        labels=tiny_labels(n_labels, dontcare).to_dict(), use_instance=use_instance, crop_size=crop_size,
        aspect_ratio=aspect_ratio, ngf=ngf, num_upsampling_layers=upsampling, norm=norm, spade_hidden=8,
        use_vae=use_vae, z_dim=16, encoder_ndf=4, encoder_size=64, encoder_layers=4, d_ndf=4, d_num_scales=num_scales, d_num_layers=3,
    )


class OnNthRead:
    """A dataset that passes its n-th item through `action` (which may also act, e.g. signal the process)
    and every other item unchanged; everything else is the wrapped dataset's."""

    def __init__(self, dataset, n: int, action: Callable[[dict], dict]):
        self.dataset, self.n, self.action, self.reads = dataset, n, action, 0

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.reads += 1
        item = self.dataset[index]
        return self.action(item) if self.reads == self.n else item
