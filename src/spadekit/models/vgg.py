"""Frozen VGG16 / VGG19 feature extractors for the perceptual loss and LPIPS.

Layers sit in a `features` Sequential at the torchvision indices, so official torchvision
state dicts (`features.N.weight` / `features.N.bias`) load as they are. Only the layers up to the
fifth returned ReLU are built.

- vgg19 (SPADE's perceptual loss): relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
- vgg16 (LPIPS): relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from spadekit import SpadekitError

# Channel widths, "M" = 2x2 max pool (torchvision configs "D" and "E").
VGG_CONFIGS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}
# `features` indices of the ReLUs whose outputs are returned.
VGG_OUTPUTS = {
    "vgg16": {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29},
    "vgg19": {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29},
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_features(config: list, last_index: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
            layers.append(nn.ReLU())
            in_channels = item
        if len(layers) > last_index:
            break
    return nn.Sequential(*layers[: last_index + 1])


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file or a `.pth`/`.pt` state dict (loaded with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise SpadekitError(f"weights file {path} does not exist; give the path of a .pth or .safetensors file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, pickle with foreign objects, ...
        raise SpadekitError(f"cannot read weights file {path}: {error}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SpadekitError(f"weights file {path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


class VGGFeatures(nn.Module):
    """Frozen VGG returning the 5 ReLU feature maps of the perceptual loss.

    arch: "vgg16" or "vgg19".
    weights: path of torchvision-format weights (.pth or .safetensors, keys `features.N.weight/bias`);
        None = the cached ImageNet VGG16 (`python -m spadekit.weights --prepare`). VGG19 has no
        cached weights: give the official torchvision file (e.g. vgg19-dcbb9e9d.pth).
    random_init: skip loading (tests and tiny smoke runs only).

    forward(images in [-1, 1], [B,3,H,W]) -> list of 5 tensors, the maps named in `self.layer_names`.
    Inputs are mapped to ImageNet statistics inside. Parameters never require grad; gradients
    still flow to the input.
    """

    def __init__(self, arch: str = "vgg19", weights: str | Path | None = None, random_init: bool = False):
        super().__init__()
        if arch not in VGG_CONFIGS:
            raise SpadekitError(f"unknown VGG architecture {arch!r}; choose one of {', '.join(VGG_CONFIGS)}")
        self.arch = arch
        outputs = VGG_OUTPUTS[arch]
        self.layer_names = list(outputs)
        self._output_indices = list(outputs.values())
        self.features = _build_features(VGG_CONFIGS[arch], max(self._output_indices))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if not random_init:
            if weights is None:
                if arch != "vgg16":
                    raise SpadekitError(
                        f"{arch} needs a weights file: pass the official torchvision {arch} weights "
                        "(.pth or .safetensors); only vgg16 has cached default weights"
                    )
                from spadekit.weights import vgg16_weights_path

                weights = vgg16_weights_path()
            self.load_weights(weights)
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, path: str | Path) -> None:
        """Load torchvision-format `features.N.*` tensors; extra keys (classifier, later layers) are ignored."""
        state = load_state_dict_file(path)
        wanted = {f"features.{name}": tensor for name, tensor in self.features.state_dict().items()}
        loaded = {}
        for key, expected in wanted.items():
            if key not in state:
                raise SpadekitError(
                    f"weights file {path} has no tensor {key!r}: it is not torchvision-format {self.arch} weights "
                    f"(expected keys features.N.weight / features.N.bias)"
                )
            tensor = state[key]
            if tuple(tensor.shape) != tuple(expected.shape):
                raise SpadekitError(
                    f"weights file {path}: {key!r} has shape {tuple(tensor.shape)}, {self.arch} expects "
                    f"{tuple(expected.shape)}; is it the right architecture?"
                )
            loaded[key[len("features.") :]] = tensor.float()
        self.features.load_state_dict(loaded)

    def train(self, mode: bool = True) -> VGGFeatures:
        # Always frozen: a parent module's .train() must not change anything here.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images + 1) / 2 - self.mean) / self.std
        outputs = []
        wanted = iter(self._output_indices)
        next_index = next(wanted)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == next_index:
                outputs.append(x)
                next_index = next(wanted, -1)
        return outputs
