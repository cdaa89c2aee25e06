"""Export the generator to ONNX (segmap and VAE variants, dynamic batch)."""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from spadekit import SpadekitError
from spadekit.fileio import atomic_write
from spadekit.layers.spectral_norm import fold_spectral_norm
from spadekit.models import SPADEModel


class _GeneratorGraph(nn.Module):
    """semantic (+ z) -> image, with spectral norm folded into the weights."""

    def __init__(self, model: SPADEModel):
        super().__init__()
        self.generator = fold_spectral_norm(copy.deepcopy(model.generator).eval())
        self.use_vae = model.config.use_vae

    def forward(self, semantic: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(semantic, z)


def export_onnx(model: SPADEModel, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write the generator as ONNX. Inputs: semantic [N,C,H,W] (+ z [N,z_dim] for VAE models); output image [N,3,H,W]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _GeneratorGraph(model).eval()
    gen = model.config
    h, w = gen.output_size
    semantic = torch.zeros(2, gen.semantic_channels, h, w)
    semantic[:, 0] = 1
    inputs: tuple = (semantic,)
    names = ["semantic"]
    axes = {"semantic": {0: "batch"}, "image": {0: "batch"}}
    if gen.use_vae:
        inputs = (semantic, torch.randn(2, gen.z_dim))
        names.append("z")
        axes["z"] = {0: "batch"}
    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            # tracer notes about shape checks that are constant for a fixed model
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, inputs, tmp, input_names=names, output_names=["image"],
                dynamic_axes=axes, opset_version=opset, dynamo=False,
            )
    try:
        atomic_write(path, write)
    except SpadekitError:
        raise
    except Exception as error:
        raise SpadekitError(f"ONNX export failed: {type(error).__name__}: {error}") from None
    return path
