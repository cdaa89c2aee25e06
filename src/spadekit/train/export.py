"""Model folders from training: the final export of a run, and `spadekit export-run` from its newest checkpoint."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.models import SPADEModel
from spadekit.train import checkpoint as ckpt


def export_model(mconfig: ModelConfig, generator_step_state: dict, discriminator_state: dict | None, out: Path,
                 dtype: torch.dtype | None = None) -> Path:
    """Write a model folder from GeneratorStep weights (generator.* / encoder.*) and the discriminator's.

    The folder is written whole into a temporary folder beside `out` and then moved into place, so a
    full disk leaves `out` as it was (and no partial folder): a WriteError names `out`."""
    export = SPADEModel(mconfig)
    export.generator.load_state_dict({k[len("generator."):]: v for k, v in generator_step_state.items() if k.startswith("generator.")})
    if export.encoder is not None:
        export.encoder.load_state_dict({k[len("encoder."):]: v for k, v in generator_step_state.items() if k.startswith("encoder.")})
    if discriminator_state is not None:
        export.discriminator.load_state_dict(discriminator_state)
    return export.save_pretrained(out, include_discriminator=discriminator_state is not None, dtype=dtype)


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, use_ema: bool = True,
               dtype: torch.dtype | None = None) -> tuple[int, Path]:
    """Export the newest checkpoint of a run (EMA generator/encoder when present) as a model folder: (step, folder).
    dtype: store the weights in this dtype (torch.float16 halves the folder; loading gives float32).
    An unreadable newest checkpoint is skipped with a note naming it (the one before is exported)."""
    def note(path: Path, error: SpadekitError) -> None:
        print(f"note: {error}; skipped", file=sys.stderr, flush=True)

    latest = ckpt.load_latest(Path(run_dir), required=("step", "g", "d", "model_config"), on_skip=note)
    if latest is None:
        raise SpadekitError(f"{run_dir}: no readable checkpoint to export (train first, or check the folder)")
    _, state = latest
    mconfig = ModelConfig.from_dict(state["model_config"])  # the nested layout of older checkpoints too
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["g"]
    return int(state["step"]), export_model(mconfig, weights, state["d"], Path(out), dtype=dtype)
