"""A complete SPADE model: generator, optional image encoder and discriminator, label set; saved as
`config.json` + one `*.safetensors` file per network."""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.fileio import WriteError, atomic_write
from spadekit.layers.lookup import LabelMaps
from spadekit.models.encoder import ImageEncoder, reparameterize
from spadekit.models.registry import discriminator_builder, generator_class
from spadekit.semantic import instance_edges, semantic_map

CONFIG_NAME = "config.json"
NETWORKS = ("generator", "encoder", "discriminator")
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
# A pickle starts with PROTO (0x80) and its version; torch.save's files are zip archives of one.
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


class SPADEModel(nn.Module):
    """Generator (+ encoder, + discriminator) with the label set and input encoding they were built for.

    with_encoder: build the image encoder (default: when the config has use_vae). with_discriminator:
    build the discriminator (training, parity checks; inference does without).
    """

    def __init__(self, config: ModelConfig, with_encoder: bool | None = None, with_discriminator: bool = True):
        super().__init__()
        self.config = config
        try:
            self.labels = config.label_set
        except ValueError as error:
            raise SpadekitError(f"model config: {error}") from None
        self.generator = generator_class(config.arch)(config)
        self.encoder = ImageEncoder(config) if (config.use_vae if with_encoder is None else with_encoder) else None
        self.discriminator = discriminator_builder(config.d_arch)(config) if with_discriminator else None

    @property
    def use_instance(self) -> bool:
        return self.config.use_instance

    @property
    def output_size(self) -> tuple[int, int]:
        return self.config.output_size

    def semantic(self, channels: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
        """Channel-index label map [B,1,H,W] (+ instance ids) -> the semantic map the networks read."""
        if self.use_instance and instance is None:
            instance = channels  # no instance map: region boundaries of the label map stand in
        return semantic_map(channels, self.labels.num_channels, instance if self.use_instance else None)

    def label_maps(self, channels: torch.Tensor, instance: torch.Tensor | None = None) -> LabelMaps:
        """The same input as `semantic(channels, instance)`, as label indices + edges that the generator
        reads through lookups (see `spadekit.layers.lookup`)."""
        if channels.dim() == 3:
            channels = channels.unsqueeze(1)
        edge = None
        if self.use_instance:
            edge = instance_edges(channels if instance is None else instance).to(channels.device)
        return LabelMaps(channels.long(), edge, self.labels.num_channels)

    def encode(self, image: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        if self.encoder is None:
            raise SpadekitError("this model has no image encoder, so it cannot take a style image (use_vae is off)")
        mu, logvar = self.encoder(image)
        return reparameterize(mu, logvar, eps)

    def forward(self, semantic: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(semantic, z)

    # ---- save / load -------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, include_discriminator: bool = True,
                        dtype: torch.dtype | None = None) -> Path:
        """Write config.json and generator/encoder/discriminator .safetensors to `directory`.

        dtype: store floating-point tensors in this dtype (e.g. torch.float16: half the size; they are
        loaded back into float32 parameters by from_pretrained). None keeps the parameters' own.
        The folder is written whole into a temporary folder beside `directory` and then moved into place,
        so a full disk leaves `directory` as it was and no partial folder (a WriteError names it). Into an
        existing model folder the new files are moved one by one (renames need no space), and a network
        file the new model does not have is removed, so the folder never mixes two models.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise SpadekitError(f"{directory} is a file; give a folder (new or a model folder) to save the model to")
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
        except OSError as error:
            raise WriteError(directory, "the model folder", error.strerror or str(error), error.errno == errno.ENOSPC) from None
        try:
            self._write_files(staging, include_discriminator, dtype)
            if not directory.exists():
                os.replace(staging, directory)
                return directory
            written = {p.name for p in staging.iterdir()}
            for name in NETWORKS:
                stale = directory / f"{name}.safetensors"
                if stale.name not in written and stale.is_file():
                    stale.unlink()
            for name in sorted(written - {CONFIG_NAME}) + [CONFIG_NAME]:
                os.replace(staging / name, directory / name)
            return directory
        except WriteError as error:
            raise WriteError(directory, "the model folder", error.reason, error.disk_full) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _write_files(self, directory: Path, include_discriminator: bool, dtype: torch.dtype | None) -> None:
        parts = {"generator": self.generator, "encoder": self.encoder}
        if include_discriminator:
            parts["discriminator"] = self.discriminator
        for name, net in parts.items():
            if net is not None:
                tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
                if dtype is not None:
                    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
                atomic_write(directory / f"{name}.safetensors", lambda p, t=tensors: save_file(t, p, metadata={"format": "pt"}))
        config = json.dumps(self.config.to_dict(), indent=2) + "\n"
        atomic_write(directory / CONFIG_NAME, lambda p: Path(p).write_text(config))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> SPADEModel:
        """Read a model folder: config.json and the networks whose .safetensors files are there (a generator
        is required; the encoder and discriminator are built when their files exist)."""
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise SpadekitError(
                f"{directory}: no {CONFIG_NAME} here, so this is not a spadekit model folder "
                "(import official checkpoints with `spadekit import-nvlabs SRC OUT`)"
            )
        try:
            config = ModelConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except OSError as error:
            raise SpadekitError(f"{config_path}: cannot read it ({error.strerror or error})") from None
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise SpadekitError(f"{config_path}: not a valid spadekit model config ({error})") from None
        present = {name: (directory / f"{name}.safetensors").is_file() for name in NETWORKS}
        if not present["generator"]:
            pickles = [p.name for p in sorted(directory.glob("generator*")) if p.suffix.lower() in PICKLE_SUFFIXES]
            found = (f" (there is {pickles[0]}, a pickle: spadekit never loads pickles, which can run code; "
                     "a spadekit model folder holds .safetensors files)") if pickles else ""
            raise SpadekitError(f"{directory / 'generator.safetensors'} is missing: a model folder needs the generator's weights{found}")
        model = cls(config, with_encoder=present["encoder"], with_discriminator=present["discriminator"])
        for name in NETWORKS:
            net = getattr(model, name)
            if net is not None:
                path = directory / f"{name}.safetensors"
                load_state(net, read_weights(path, map_location), str(path))
        return model.to(map_location)


def read_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file. Nothing in the file is ever run: a pickle (a PyTorch .pt file under
    this name) is refused from its first bytes, and a damaged or altered file (a header that does not fit
    the data, a truncated file) is a SpadekitError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise SpadekitError(f"{path}: cannot read it ({error.strerror or error})") from None
    if head.startswith(_PICKLE_MAGIC):
        raise SpadekitError(
            f"{path} is a pickle (a PyTorch checkpoint), not a safetensors file; refused without loading it: pickles "
            "can run code. Use a model folder written by spadekit (save_pretrained, export-run, import-nvlabs)"
        )
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise SpadekitError(
            f"{path} is not a valid safetensors file ({str(error).strip().splitlines()[0]}): it is damaged, truncated or "
            "was altered; write the model folder again"
        ) from None


def load_state(
    net: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    built_from: str = "the config",
    stored_in: str = "the file",
    layer_name=lambda key: key,
    shape_hint=lambda key: "",
    mismatch_hint: str = "",
) -> None:
    """load_state_dict with messages that name the first mismatching layer and both shapes, or the
    missing / unexpected keys. layer_name(key) says how the user knows a layer; the hints say what to check."""
    own = net.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise SpadekitError(
                f"{source}: layer {layer_name(key)} has shape {tuple(value.shape)} in {stored_in} but "
                f"{tuple(own[key].shape)} in the network built from {built_from}{shape_hint(key)}"
            )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise SpadekitError(
            f"{source}: weights do not match the network built from {built_from} "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
            f"{mismatch_hint}"
        )
    net.load_state_dict(state, strict=True)
