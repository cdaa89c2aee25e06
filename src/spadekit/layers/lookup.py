"""A convolution over a one-hot label map computed as a table lookup.

A conv over `one_hot(label)` reads one weight column per tap: `conv_kxk(one_hot(label))` is, at every
pixel, the sum over the k*k taps of the weight column of the class under that tap, an `embedding_bag`
over a table of k*k*(num_labels+1) rows instead of a convolution over num_labels input channels
(151-183 for ADE20K / COCO-Stuff: two orders of magnitude fewer FLOPs). Its gradient to the table is
one sparse x dense product with the scatter matrix of the label map. The instance-edge channel, when
there is one, stays a 1-channel conv. Nearest resizing of a one-hot map is the one-hot of the
nearest-resized label map, so a `LabelMaps` resizes the label map once per resolution and builds its
lookup indices once, for every layer that reads it there.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.semantic import one_hot


class LabelMaps:
    """A label map [N,1,H,W] of channel indices (+ instance edges [N,1,H,W]) that layers read at any size.

    The semantic map it stands for is `one_hot(label, num_labels)` with the edge channel appended;
    layers that can, read it through lookups (`label_conv`), the others through `dense()`. Resized
    maps, lookup indices and scatter matrices are built once per size and kept.
    """

    def __init__(self, label: torch.Tensor, edge: torch.Tensor | None, num_labels: int):
        if label.dim() != 4 or label.shape[1] != 1:
            raise ValueError(f"a label map is [N,1,H,W] channel indices, got shape {tuple(label.shape)}")
        self.label, self.edge, self.num_labels = label, edge, int(num_labels)
        self._maps: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._bags: dict[tuple, torch.Tensor] = {}
        self._scatter: dict[tuple, torch.Tensor] = {}
        self._dense: dict[tuple[int, int], torch.Tensor] = {}

    @classmethod
    def from_semantic(cls, semantic: torch.Tensor, has_edge: bool) -> LabelMaps:
        """The label map of a one-hot semantic map [N,C,H,W] (its last channel the instance edge when has_edge)."""
        num_labels = semantic.shape[1] - int(has_edge)
        label = semantic[:, :num_labels].argmax(1, keepdim=True)
        return cls(label, semantic[:, num_labels:] if has_edge else None, num_labels)

    @property
    def channels(self) -> int:
        """Channels of the semantic map this stands for (labels + edge)."""
        return self.num_labels + int(self.edge is not None)

    @property
    def device(self) -> torch.device:
        return self.label.device

    @property
    def shape(self) -> torch.Size:
        """The shape of the semantic map this stands for, [N, channels, H, W]."""
        n, _, h, w = self.label.shape
        return torch.Size((n, self.channels, h, w))

    def dense(self, size=None) -> torch.Tensor:
        """The semantic map itself (one-hot + edge channel) [N, channels, h, w] float32, at `size` (default: full)."""
        size = tuple(int(s) for s in (size if size is not None else self.label.shape[-2:]))
        if size not in self._dense:
            label, edge = self.at(size)
            semantic = one_hot(label, self.num_labels)
            self._dense[size] = semantic if edge is None else torch.cat([semantic, edge.to(semantic)], dim=1)
        return self._dense[size]

    def at(self, size) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(label, edge) nearest-resized to size (h, w)."""
        size = (int(size[0]), int(size[1]))
        if size not in self._maps:
            if tuple(self.label.shape[-2:]) == size:
                self._maps[size] = (self.label, self.edge)
            else:
                label = F.interpolate(self.label.float(), size=size, mode="nearest").long()
                edge = None if self.edge is None else F.interpolate(self.edge, size=size, mode="nearest")
                self._maps[size] = (label, edge)
        return self._maps[size]

    def bags(self, size, k: int) -> torch.Tensor:
        """[N*h*w, k*k] table rows read by each output pixel (tap t, class c -> t*(n+1)+c; outside -> t*(n+1)+n)."""
        key = (int(size[0]), int(size[1]), k)
        if key not in self._bags:
            n = self.num_labels
            label = self.at(size)[0][:, 0]
            h, w = label.shape[-2:]
            p = k // 2
            padded = F.pad(label, (p, p, p, p), value=n)
            index = torch.stack([padded[:, dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)], -1)
            offsets = torch.arange(k * k, device=label.device) * (n + 1)
            self._bags[key] = (index + offsets).reshape(-1, k * k)
        return self._bags[key]

    def scatter(self, size, k: int) -> torch.Tensor:
        """The transposed bag matrix as sparse CSR [k*k*(n+1), N*h*w]: grad of a table = scatter @ grad of the output."""
        key = (int(size[0]), int(size[1]), k)
        if key not in self._scatter:
            bags = self.bags(size, k)
            rows = k * k * (self.num_labels + 1)
            flat = bags.reshape(-1)
            order = torch.argsort(flat, stable=True)
            crow = torch.zeros(rows + 1, dtype=torch.long, device=flat.device)
            crow[1:] = torch.bincount(flat, minlength=rows).cumsum(0)
            ones = torch.ones(flat.numel(), device=flat.device)
            self._scatter[key] = torch.sparse_csr_tensor(crow, order // (k * k), ones, (rows, bags.shape[0]))
        return self._scatter[key]


def lookup_table(weight: torch.Tensor, bias: torch.Tensor | None, num_labels: int) -> torch.Tensor:
    """The one-hot part of a conv weight [out, in, k, k] as a table [k*k*(num_labels+1), out] (differentiable).

    One row per (tap, class) and one zero row per tap for the padding; the bias is added to every row of
    tap 0 (each output pixel reads exactly one of them).
    """
    out, _, k, _ = weight.shape
    taps = weight[:, :num_labels].permute(2, 3, 1, 0).reshape(k * k, num_labels, out)
    table = torch.cat([taps, taps.new_zeros(k * k, 1, out)], dim=1)
    if bias is not None:
        table = torch.cat([table[:1] + bias, table[1:]])
    return table.reshape(k * k * (num_labels + 1), out)


class _BagSum(torch.autograd.Function):
    """embedding_bag(sum) of a table; backward: one CSR x dense product (embedding_bag's own is 4x slower)."""

    @staticmethod
    def forward(ctx, table, maps, size, k):
        ctx.maps, ctx.key, ctx.dtype = maps, (size, k), table.dtype
        return F.embedding_bag(maps.bags(size, k), table, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        scatter = ctx.maps.scatter(*ctx.key)
        return (scatter @ grad.float()).to(ctx.dtype), None, None, None


def lookup(maps: LabelMaps, size, table: torch.Tensor, k: int, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
    """conv_kxk(one_hot(label at size) [+ edge]) from its table: [N, out, h, w] (channels_last memory)."""
    label, edge = maps.at(size)
    n, _, h, w = label.shape
    if table.requires_grad and torch.is_grad_enabled():
        flat = _BagSum.apply(table, maps, (h, w), k)
    else:
        flat = F.embedding_bag(maps.bags((h, w), k), table, mode="sum")
    out = flat.view(n, h, w, -1).permute(0, 3, 1, 2)
    if edge_weight is not None:
        out = out + F.conv2d(edge.to(out.dtype), edge_weight.to(out.dtype), padding=k // 2)
    return out


def _check_reads(weight: torch.Tensor, maps: LabelMaps) -> None:
    if weight.shape[1] != maps.channels:
        edge = " + instance edge" if maps.edge is not None else ""
        raise ValueError(
            f"a conv over {weight.shape[1]} semantic channels cannot read a label map of "
            f"{maps.num_labels} label channels{edge}; build the label map with the model's label set"
        )


def label_conv(maps: LabelMaps, size, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv_kxk(semantic map at `size`) for a conv (weight [out, labels (+ edge), k, k], bias) over the
    semantic map `maps` stands for, as a lookup: differentiable in weight and bias. "Same" padding."""
    _check_reads(weight, maps)
    n = maps.num_labels
    edge_weight = weight[:, n:n + 1] if maps.edge is not None else None
    return lookup(maps, size, lookup_table(weight, bias, n), weight.shape[-1], edge_weight)


class LabelConvTable(nn.Module):
    """A frozen `label_conv` of `convs` (their outputs concatenated): the table and edge weight as buffers.

    What an inference module keeps instead of rebuilding the table from the weights on every call.
    """

    def __init__(self, convs: list[nn.Conv2d], num_labels: int, has_edge: bool):
        super().__init__()
        weight = torch.cat([c.weight.detach() for c in convs])
        bias = torch.cat([c.bias.detach() if c.bias is not None else torch.zeros(c.out_channels) for c in convs])
        self.kernel_size, self.num_labels, self.has_edge = weight.shape[-1], num_labels, has_edge
        self.register_buffer("table", lookup_table(weight, bias, num_labels).contiguous())
        self.register_buffer("edge_weight", weight[:, num_labels:num_labels + 1].clone() if has_edge else None)

    def forward(self, maps: LabelMaps, size) -> torch.Tensor:
        if maps.num_labels != self.num_labels or (maps.edge is not None) != self.has_edge:
            raise ValueError(
                f"this module was optimised for {self.num_labels} label channels{' + edge' if self.has_edge else ''}, "
                f"got a label map of {maps.num_labels}{' + edge' if maps.edge is not None else ''}"
            )
        return lookup(maps, size, self.table, self.kernel_size, self.edge_weight)
