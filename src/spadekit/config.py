"""The model configuration: everything needed to rebuild a model, saved as `config.json` beside its
weights and inside every training checkpoint. The trainer's YAML `model:` section is this dataclass;
the fields the data decides (`DATA_FIELDS`: label set, instance edges, output size) come from its
data section and dataset.

    config = ModelConfig(labels=landscape_labels().to_dict(), ngf=16, use_vae=True, z_dim=128)
    config.semantic_channels     # derived sizes are properties, computed here only
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from spadekit.labels import LabelSet

UPSAMPLING_LAYERS = {"normal": 5, "more": 6, "most": 7}

# Fields the data decides: the trainer fills them from its data section and dataset, not from `model:`.
DATA_FIELDS = ("labels", "use_instance", "crop_size", "aspect_ratio")
# Fields only one generator reads; left out of other models' config.json.
ARCH_FIELDS = {"num_downsample": "pix2pixhd", "num_res_blocks": "pix2pixhd"}
# Fields only one discriminator reads; left out of other models' config.json.
D_ARCH_FIELDS = {"d_vgg_layers": "projected", "d_channel_mixing": "projected"}


@dataclass
class ModelConfig:
    """A complete model: the data it reads and writes, the generator, the image encoder, the discriminator.

    Data (DATA_FIELDS):
      labels: the label set (`LabelSet.to_dict()`); its channels plus the instance edge are the
        semantic map's channels. use_instance: add the instance-edge channel.
      crop_size: output width; aspect_ratio: width / height (output height = crop_size / aspect_ratio).
    Generator:
      arch: spade; clade (class-adaptive normalisation: per-class scale/bias tables instead of SPADE's
        convs, models/clade.py); or a baseline generator by name: pix2pixhd (encoder-decoder with
        instance norm; num_downsample / num_res_blocks), concat (segmap concatenated at every layer);
        see models/registry.py.
      ngf: base width; the generator runs at 16*ngf at the latent grid and ngf at full resolution.
      min_width: the fewest channels a generator block runs at (0: the plan's widths). With ngf 16 and
        min_width 32 the last block (256 px) runs at 32 channels instead of 16: capacity where the
        detail is, at a fraction of ngf 32's cost. A narrower model's weights widen to it without
        changing its output (`spadekit.models.widen`, `train.init_from`). Not for pix2pixhd.
      num_upsampling_layers: normal (5), more (6) or most (7) doublings from the latent grid.
      norm: parameter-free norm in SPADE (batch, syncbatch, instance). spade_hidden / spade_kernel: the
        shared SPADE conv's width (128 in the paper) and kernel. use_vae: start from a latent z (random
        or from the image encoder) instead of the downsampled map; z_dim its size.
      noise_3d: OASIS's 3D noise, an alternative to the VAE encoder (use_vae false; arch spade): a z of
        this size, broadcast to every pixel, joins the semantic map as extra generator input channels
        (0 = off). z_dim is then not used.
      spectral_norm: on the convolutions of the generator's blocks, the encoder and the discriminator.
    Image encoder (with use_vae): encoder_ndf width; encoder_size: the square side it resizes images to
      (None: 256, or crop_size when smaller); encoder_layers stride-2 convs (None: as many as leave a 4x4
      grid, at most 6: the paper's encoder at 256x256); encoder_norm.
    Discriminator: d_arch picks it (models/registry.py):
      multiscale: the multi-scale PatchGAN over semantic map + image; d_ndf / d_num_scales / d_num_layers / d_norm.
      oasis: OASIS's U-Net segmentation discriminator over the image (N+1 classes per pixel; the OASIS
        losses go with it); d_ndf its first width, d_num_layers its down blocks.
      projected: heads on frozen ImageNet VGG16 features (models/projected.py); d_vgg_layers the
        comma-separated layers, d_ndf the heads' width, d_channel_mixing Projected GAN's fixed random mixing.
    extra: free-form notes kept with the model (e.g. where it was imported from).
    """

    labels: dict[str, Any] | None = None
    use_instance: bool = False
    crop_size: int = 256
    aspect_ratio: float = 1.0
    arch: str = "spade"
    ngf: int = 64
    min_width: int = 0
    num_upsampling_layers: str = "normal"
    norm: str = "syncbatch"
    spade_hidden: int = 128
    spade_kernel: int = 3
    use_vae: bool = False
    z_dim: int = 256
    num_downsample: int = 4
    num_res_blocks: int = 9
    encoder_ndf: int = 64
    encoder_size: int | None = None
    encoder_layers: int | None = None
    encoder_norm: str = "instance"
    d_ndf: int = 64
    d_num_scales: int = 2
    d_num_layers: int = 4
    d_norm: str = "instance"
    d_arch: str = "multiscale"
    d_vgg_layers: str = "relu2_2,relu3_3,relu4_3"
    d_channel_mixing: bool = True
    noise_3d: int = 0
    spectral_norm: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

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
        if self.arch == "pix2pixhd" and self.use_vae:
            raise ValueError("the pix2pixhd baseline has no latent input (use_vae must be false)")
        if not 0 <= self.min_width <= 16 * self.ngf:
            raise ValueError(f"min_width must lie in [0, 16*ngf = {16 * self.ngf}] (0 = the plan's widths), got {self.min_width}")
        if self.min_width and self.arch == "pix2pixhd":
            raise ValueError("min_width applies to the residual-block generators (spade, clade, concat), not pix2pixhd")
        if self.noise_3d < 0:
            raise ValueError(f"noise_3d is the size of the 3D noise (0 = off), got {self.noise_3d}")
        if self.noise_3d and self.use_vae:
            raise ValueError("noise_3d is an alternative to the VAE encoder: set use_vae false (or noise_3d 0)")
        if self.noise_3d and self.arch != "spade":
            raise ValueError(f"noise_3d works with arch spade only, got arch {self.arch!r}")
        if self.use_vae and self.encoder_input_size % 2 ** self.encoder_num_layers:
            raise ValueError(
                f"encoder_layers {self.encoder_num_layers}: the encoder's {self.encoder_input_size}x{self.encoder_input_size} "
                f"input must be divisible by 2**encoder_layers"
            )

    # ---- derived sizes ---------------------------------------------------------------------------
    @property
    def label_set(self) -> LabelSet:
        if self.labels is None:
            raise ValueError("the model config has no label set (labels); give LabelSet.to_dict() of the model's labels")
        return LabelSet.from_dict(self.labels)

    @property
    def label_channels(self) -> int:
        """One-hot channels of the label set (classes + dontcare)."""
        return self.label_set.num_channels

    @property
    def semantic_channels(self) -> int:
        """Channels of the semantic map the networks read: label channels + the instance edge."""
        return self.label_channels + int(self.use_instance)

    @property
    def generator_input_channels(self) -> int:
        """Channels the generator's semantic input has: the semantic map + the 3D noise."""
        return self.semantic_channels + self.noise_3d

    @property
    def latent_dim(self) -> int:
        """Size of the z the generator takes: z_dim with use_vae, noise_3d with 3D noise, else 0 (none)."""
        return self.z_dim if self.use_vae else self.noise_3d

    @property
    def discriminator_input_channels(self) -> int:
        """The discriminator reads the semantic map and an RGB image side by side."""
        return self.semantic_channels + 3

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

    @property
    def encoder_input_size(self) -> int:
        """The encoder resizes style images to this square: encoder_size, else 256 or the crop size when smaller."""
        return self.encoder_size if self.encoder_size is not None else min(256, self.crop_size)

    @property
    def encoder_num_layers(self) -> int:
        """encoder_layers, or stride-2 convs down to a 4x4 grid (6 at 256, the paper's encoder)."""
        if self.encoder_layers is not None:
            return self.encoder_layers
        size, layers = self.encoder_input_size, 1
        while layers < 6 and size % 2 ** (layers + 1) == 0 and size // 2 ** (layers + 1) >= 4:
            layers += 1
        return layers

    # ---- config.json -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fields as a JSON-able dict (fields of other generators' and discriminators' arch left out)."""
        data = dataclasses.asdict(self)
        for name, arch in ARCH_FIELDS.items():
            if self.arch != arch:
                del data[name]
        for name, arch in D_ARCH_FIELDS.items():
            if self.d_arch != arch:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Read `to_dict()` output, or the nested layout older versions wrote (generator / encoder /
        discriminator sections); unknown keys are refused with a clear message (ValueError)."""
        if not isinstance(data, dict):
            raise ValueError(f"a model config is a mapping of options, got {type(data).__name__}")
        if "generator" in data:
            data = from_nested_layout(data)
        return from_dict(cls, data)


def from_dict(cls, data: dict):
    """Build a dataclass from a dict, refusing unknown keys with a clear message."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {unknown}; known: {sorted(names)}")
    return cls(**data)


# ---- the nested layout of older model folders and checkpoints --------------------------------------
_NESTED_SECTIONS = {"labels", "use_instance", "generator", "encoder", "discriminator", "extra"}
_GENERATOR_FIELDS = {"ngf", "min_width", "num_upsampling_layers", "crop_size", "aspect_ratio", "use_vae", "z_dim", "norm",
                     "spade_hidden", "spade_kernel", "arch", "num_downsample", "num_res_blocks"}


def from_nested_layout(data: dict) -> dict:
    """The flat fields of a config written as {labels, use_instance, generator: {...}, encoder: {...} | null,
    discriminator: {...} | null, extra} (config.json and checkpoints before the flat layout).

    Checks what the flat layout derives instead of storing (semantic and discriminator input channels,
    the encoder's input size and z size) and refuses a config it cannot express, naming the field."""
    unknown = sorted(set(data) - _NESTED_SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; known: {sorted(_NESTED_SECTIONS)}")
    generator = dict(data["generator"])
    spectral = generator.pop("spectral_norm", True)
    semantic_channels = generator.pop("semantic_channels", None)
    unknown = sorted(set(generator) - _GENERATOR_FIELDS)
    if unknown:
        raise ValueError(f"generator: unknown option(s) {unknown}")
    flat = {"labels": data["labels"], "use_instance": bool(data["use_instance"]), "spectral_norm": spectral,
            "extra": data.get("extra") or {}, **generator}
    encoder, discriminator = data.get("encoder"), data.get("discriminator")
    if encoder:
        flat.update(encoder_ndf=encoder.get("ndf", 64), encoder_norm=encoder.get("norm", "instance"))
        flat.update(encoder_size=encoder.get("input_size", 256), encoder_layers=encoder.get("num_layers", 6))
    if discriminator:
        flat.update(d_ndf=discriminator.get("ndf", 64), d_num_scales=discriminator.get("num_scales", 2),
                    d_num_layers=discriminator.get("num_layers", 4), d_norm=discriminator.get("norm", "instance"))
    config = from_dict(ModelConfig, flat)
    checks = [("generator.semantic_channels", semantic_channels, config.semantic_channels)]
    if encoder:
        checks += [("encoder.z_dim", encoder.get("z_dim", 256), config.z_dim),
                   ("encoder.spectral_norm", encoder.get("spectral_norm", True), spectral)]
    if discriminator:
        checks += [("discriminator.input_channels", discriminator.get("input_channels"), config.discriminator_input_channels),
                   ("discriminator.spectral_norm", discriminator.get("spectral_norm", True), spectral)]
    for name, stored, derived in checks:
        if stored is not None and stored != derived:
            raise ValueError(f"{name} is {stored!r} but this version builds {derived!r} from the other fields; "
                             "the model cannot be rebuilt as it was saved")
    return flat
