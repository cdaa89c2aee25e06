"""Networks by name: generators (`ModelConfig.arch`: SPADE, CLADE and the paper's baselines) and
discriminators (`ModelConfig.d_arch`). Each entry builds its network from a `ModelConfig`."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.models.baselines import ConcatGenerator, Pix2PixHDGenerator
from spadekit.models.clade import CLADEGenerator
from spadekit.models.discriminator import MultiscaleDiscriminator
from spadekit.models.generator import SPADEGenerator
from spadekit.models.oasis import OASISDiscriminator
from spadekit.models.projected import ProjectedDiscriminator

GENERATORS: dict[str, type[nn.Module]] = {
    "spade": SPADEGenerator, "clade": CLADEGenerator, "pix2pixhd": Pix2PixHDGenerator, "concat": ConcatGenerator,
}

DISCRIMINATORS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "multiscale": MultiscaleDiscriminator,
    "oasis": OASISDiscriminator.from_config,
    "projected": ProjectedDiscriminator.from_config,
}


def generator_class(arch: str) -> type[nn.Module]:
    try:
        return GENERATORS[arch]
    except KeyError:
        raise SpadekitError(f"unknown generator arch {arch!r}; known: {', '.join(sorted(GENERATORS))}") from None


def discriminator_builder(d_arch: str) -> Callable[[ModelConfig], nn.Module]:
    try:
        return DISCRIMINATORS[d_arch]
    except KeyError:
        raise SpadekitError(f"unknown discriminator d_arch {d_arch!r}; known: {', '.join(sorted(DISCRIMINATORS))}") from None
