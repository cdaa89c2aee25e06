"""Residual blocks whose normalisation layers are SPADE."""
from __future__ import annotations

import torch
from torch import nn

from spadekit.layers.lookup import LabelConvTable, LabelMaps, label_conv
from spadekit.layers.spade import SPADE
from spadekit.layers.spectral_norm import maybe_spectral_norm


class SPADEResBlock(nn.Module):
    """SPADE -> LeakyReLU -> conv3x3 (in -> mid) -> SPADE -> LeakyReLU -> conv3x3 (mid -> out), plus shortcut.

    mid = min(in, out). When in != out the shortcut is SPADE -> 1x1 conv (no bias); else identity
    (learned_shortcut, when given, decides instead: the generator's min_width keeps the plan's shortcut).
    Spectral norm applies to the block's convolutions, not to those inside SPADE.

    forward(x, semantic): semantic is a dense map or a `LabelMaps`; on a label map the SPADE layers
    that read x (norm_0 and the shortcut's) share one lookup, their shared-conv tables side by side.
    `prepare_for_inference` keeps those tables precomputed and fuses each SPADE layer's gamma/beta.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        semantic_channels: int,
        spade_hidden: int = 128,
        spade_kernel: int = 3,
        norm: str = "batch",
        spectral_norm: bool = True,
        learned_shortcut: bool | None = None,
    ):
        super().__init__()
        mid = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels if learned_shortcut is None else learned_shortcut
        spade = lambda c: SPADE(c, semantic_channels, spade_hidden, spade_kernel, norm)  # noqa: E731
        self.norm_0 = spade(in_channels)
        self.conv_0 = maybe_spectral_norm(nn.Conv2d(in_channels, mid, 3, padding=1), spectral_norm)
        self.norm_1 = spade(mid)
        self.conv_1 = maybe_spectral_norm(nn.Conv2d(mid, out_channels, 3, padding=1), spectral_norm)
        if self.learned_shortcut:
            self.norm_shortcut = spade(in_channels)
            self.conv_shortcut = maybe_spectral_norm(nn.Conv2d(in_channels, out_channels, 1, bias=False), spectral_norm)
        self.lookup_tables: nn.ModuleDict | None = None

    def _spades(self) -> dict[str, list[SPADE]]:
        """The SPADE layers by the activations they normalise: the block's input, and the middle."""
        reading_input = [self.norm_0] + ([self.norm_shortcut] if self.learned_shortcut else [])
        return {"input": reading_input, "middle": [self.norm_1]}

    def _shared_convs(self, name: str, semantic: torch.Tensor | LabelMaps, size) -> list[torch.Tensor]:
        spades = self._spades()[name]
        if not isinstance(semantic, LabelMaps):
            return [s.shared_conv(semantic, size) for s in spades]
        if self.lookup_tables is not None:
            hidden = self.lookup_tables[name](semantic, size)
        else:
            weight = torch.cat([s.shared[0].weight for s in spades])
            bias = torch.cat([s.shared[0].bias for s in spades])
            hidden = label_conv(semantic, size, weight, bias)
        return list(hidden.split([s.shared[0].out_channels for s in spades], dim=1))

    def forward(self, x: torch.Tensor, semantic: torch.Tensor | LabelMaps) -> torch.Tensor:
        size = x.shape[-2:]
        hidden = self._shared_convs("input", semantic, size)
        shortcut = self.conv_shortcut(self.norm_shortcut(x, semantic, shared=hidden[1])) if self.learned_shortcut else x
        dx = self.conv_0(self.norm_0(x, semantic, 0.2, shared=hidden[0]))
        (hidden,) = self._shared_convs("middle", semantic, size)
        dx = self.conv_1(self.norm_1(dx, semantic, 0.2, shared=hidden))
        return shortcut + dx

    def prepare_for_inference(self, num_labels: int, has_edge: bool) -> None:
        """In place, on an inference copy: the label-map lookup tables precomputed from the current
        weights (`num_labels` label channels, + the edge channel when has_edge) and gamma/beta fused."""
        self.lookup_tables = nn.ModuleDict({
            name: LabelConvTable([s.shared[0] for s in spades], num_labels, has_edge) for name, spades in self._spades().items()
        })
        for spades in self._spades().values():
            for spade in spades:
                spade.fuse_gamma_beta()
