"""Configuration dataclasses. A model's config is everything needed to rebuild it; it is saved as
`config.json` beside the weights and with every training run."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

UPSAMPLING_LAYERS = {"normal": 5, "more": 6, "most": 7}


@dataclass
class GeneratorConfig:
    """The SPADE generator (or a baseline generator, chosen by `arch`).

    semantic_channels: channels of the semantic map (labels + dontcare + instance edge).
    ngf: base width; the generator runs at 16*ngf at the latent grid and ngf at full resolution.
    num_upsampling_layers: normal (5), more (6) or most (7) doublings from the latent grid.
    crop_size: output width; aspect_ratio: width / height (output height = crop_size / aspect_ratio).
    use_vae: start from a latent z (random or from the image encoder) instead of the downsampled map.
    arch: spade, or a baseline (pix2pixhd, concat; see models/baselines.py).
    norm: parameter-free norm in SPADE (batch, syncbatch, instance).
    spade_hidden: width of the shared SPADE conv (128 in the paper).
    """

    semantic_channels: int
    ngf: int = 64
    num_upsampling_layers: str = "normal"
    crop_size: int = 256
    aspect_ratio: float = 1.0
    use_vae: bool = False
    z_dim: int = 256
    norm: str = "syncbatch"
    spade_hidden: int = 128
    spade_kernel: int = 3
    spectral_norm: bool = True
    arch: str = "spade"
    num_downsample: int = 4  # pix2pixhd baseline only
    num_res_blocks: int = 9  # pix2pixhd baseline only

    def __post_init__(self):
        if self.num_upsampling_layers not in UPSAMPLING_LAYERS:
            raise ValueError(
                f"num_upsampling_layers must be one of {sorted(UPSAMPLING_LAYERS)}, got {self.num_upsampling_layers!r}"
            )
        factor = 2 ** UPSAMPLING_LAYERS[self.num_upsampling_layers]
        if self.crop_size < factor or self.crop_size % factor:
            raise ValueError(
                f"crop_size {self.crop_size} must be a positive multiple of {factor} with num_upsampling_layers "
                f"{self.num_upsampling_layers!r} (the generator doubles a {self.crop_size // factor}-wide grid {factor.bit_length() - 1} times)"
            )
        sh, sw = self.latent_size
        if sh < 1:
            raise ValueError(f"aspect_ratio {self.aspect_ratio} leaves no rows in the {sw}-wide latent grid; use a larger crop_size")
        if self.norm == "instance" and sh * sw == 1:
            raise ValueError(
                f"crop_size {self.crop_size} with num_upsampling_layers {self.num_upsampling_layers!r} starts from a 1x1 grid, "
                "where instance norm is undefined; use a larger crop_size, fewer upsampling layers, or batch norm"
            )

    @property
    def latent_size(self) -> tuple[int, int]:
        """(sh, sw): the latent grid the generator starts from."""
        sw = self.crop_size // 2 ** UPSAMPLING_LAYERS[self.num_upsampling_layers]
        sh = round(sw / self.aspect_ratio)
        return sh, sw

    @property
    def output_size(self) -> tuple[int, int]:
        """(H, W) of the generated image."""
        sh, sw = self.latent_size
        factor = 2 ** UPSAMPLING_LAYERS[self.num_upsampling_layers]
        return sh * factor, sw * factor


@dataclass
class EncoderConfig:
    """The image encoder for style (VAE): image -> (mu, logvar) of a z_dim Gaussian.

    Images are resized to input_size x input_size; num_layers stride-2 convs then leave a
    (input_size / 2**num_layers)^2 grid of min(2**i * ndf, 8*ndf) channels for the two linear heads.
    """

    ndf: int = 64
    z_dim: int = 256
    input_size: int = 256
    num_layers: int = 6
    norm: str = "instance"
    spectral_norm: bool = True


@dataclass
class DiscriminatorConfig:
    """Multi-scale PatchGAN discriminator over concat(semantic map, image)."""

    input_channels: int
    ndf: int = 64
    num_scales: int = 2
    num_layers: int = 4
    norm: str = "instance"
    spectral_norm: bool = True


@dataclass
class SPADEModelConfig:
    """A complete model: label set, input encoding and the networks it contains."""

    labels: dict[str, Any]
    use_instance: bool
    generator: GeneratorConfig
    encoder: EncoderConfig | None = None
    discriminator: DiscriminatorConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SPADEModelConfig":
        return cls(
            labels=data["labels"],
            use_instance=bool(data["use_instance"]),
            generator=from_dict(GeneratorConfig, data["generator"]),
            encoder=from_dict(EncoderConfig, data["encoder"]) if data.get("encoder") else None,
            discriminator=from_dict(DiscriminatorConfig, data["discriminator"]) if data.get("discriminator") else None,
            extra=data.get("extra", {}),
        )


def from_dict(cls, data: dict):
    """Build a dataclass from a dict, refusing unknown keys with a clear message."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}; known: {sorted(names)}")
    return cls(**data)
