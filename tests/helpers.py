"""Small builders shared by tests: tiny model configurations."""
from __future__ import annotations

from spadekit.config import DiscriminatorConfig, EncoderConfig, GeneratorConfig, SPADEModelConfig
from spadekit.data.labels import Label, LabelSet


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
) -> SPADEModelConfig:
    labels = tiny_labels(n_labels, dontcare)
    semantic = labels.num_channels + int(use_instance)
    return SPADEModelConfig(
        labels=labels.to_dict(),
        use_instance=use_instance,
        generator=GeneratorConfig(
            semantic_channels=semantic, ngf=ngf, num_upsampling_layers=upsampling, crop_size=crop_size,
            aspect_ratio=aspect_ratio, use_vae=use_vae, z_dim=16, norm=norm, spade_hidden=8,
        ),
        encoder=EncoderConfig(ndf=4, z_dim=16, input_size=64, num_layers=4) if use_vae else None,
        discriminator=DiscriminatorConfig(input_channels=semantic + 3, ndf=4, num_scales=num_scales, num_layers=3) if with_d else None,
    )
