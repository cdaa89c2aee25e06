"""A folder holding one network: `config.json` + `model.safetensors` (the upscaler, the segmenters).

Written atomically (temporary file, then rename) and read without running anything from the files:
the weights go through `read_weights`, which refuses pickles and names a damaged file.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from spadekit import SpadekitError
from spadekit.fileio import atomic_write_bytes, atomic_write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

Net = TypeVar("Net", bound=nn.Module)


def save_network_folder(directory: str | os.PathLike, state: dict[str, torch.Tensor], config: dict) -> Path:
    """Write `state` as model.safetensors and `config` as config.json in `directory` (created if needed)."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write_bytes(directory / WEIGHTS_NAME, save(tensors, metadata={"format": "pt"}))
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    return directory


def load_network_folder(directory: str | os.PathLike, what: str, hint: str, build: Callable[[dict], Net],
                        own_state: Callable[[Net], dict[str, torch.Tensor]] | None = None) -> tuple[Net, dict[str, torch.Tensor]]:
    """The network `build(config fields)` makes from `directory`'s config.json, and the weights read for it.

    `what` names the kind of folder in messages ("an upscaler"), `hint` says where a good one comes from.
    The weights must have exactly the keys and shapes of `own_state(net)` (default: its state_dict); the
    caller loads them. Every problem is a SpadekitError naming the file.
    """
    from spadekit.models.spade_model import read_weights

    kind = what.split(" ", 1)[-1]  # "an upscaler" -> "upscaler"
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config_path.is_file() or not weights_path.is_file():
        raise SpadekitError(f"{directory} is not {what} folder (needs {CONFIG_NAME} and {WEIGHTS_NAME}); {hint}")
    try:
        net = build(json.loads(config_path.read_text()))
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise SpadekitError(f"{config_path}: not a valid {kind} config ({error})") from None
    state = read_weights(weights_path)  # refuses pickles, names the file when it is damaged
    own = (own_state or (lambda n: n.state_dict()))(net)
    if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
        raise SpadekitError(f"{weights_path}: weights do not match the {kind} described by {config_path}")
    return net, state
