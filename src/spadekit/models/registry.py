"""Generators by name (`ModelConfig.arch`): the SPADE generator and the paper's baselines."""
from __future__ import annotations

from torch import nn

from spadekit import SpadekitError
from spadekit.models.baselines import ConcatGenerator, Pix2PixHDGenerator
from spadekit.models.generator import SPADEGenerator

GENERATORS: dict[str, type[nn.Module]] = {"spade": SPADEGenerator, "pix2pixhd": Pix2PixHDGenerator, "concat": ConcatGenerator}


def generator_class(arch: str) -> type[nn.Module]:
    try:
        return GENERATORS[arch]
    except KeyError:
        raise SpadekitError(f"unknown generator arch {arch!r}; known: {', '.join(sorted(GENERATORS))}") from None
