"""The CLADE generator (`ModelConfig.arch: clade`): the SPADE generator with class-adaptive
normalisation (`spadekit.layers.clade`) in its residual blocks.

Per-class scale and bias tables replace SPADE's convolutions over the semantic map, so each block
costs its two (or three) convolutions and a lookup; spade_hidden and spade_kernel are not used.
Everything else (latent grid, VAE input, upsampling plan, the `LabelMaps` input that turns the
input conv into a lookup) is the SPADE generator's.
"""
from __future__ import annotations

from torch import nn

from spadekit.config import ModelConfig
from spadekit.layers.clade import CLADEResBlock
from spadekit.models.generator import SPADEGenerator


class CLADEGenerator(SPADEGenerator):
    """G(semantic, z) -> image, as `SPADEGenerator`, with `CLADEResBlock`s."""

    @staticmethod
    def make_block(in_channels: int, out_channels: int, learned_shortcut: bool, c: ModelConfig) -> nn.Module:
        return CLADEResBlock(in_channels, out_channels, c.semantic_channels, c.norm, c.spectral_norm, learned_shortcut)
