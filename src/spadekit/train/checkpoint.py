"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a dict of tensors and plain containers (so `torch.load(weights_only=True)` reads
it): network and optimiser state dicts, schedulers, grad scalers, step / epoch / position in the
epoch, RNG states (python, numpy, torch CPU and CUDA, the training noise generator) and the config.
Files are RUN_DIR/checkpoints/step_XXXXXXXX.pt, written to a temporary name and renamed; the last
`keep_last` are kept.
"""
from __future__ import annotations

import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spadekit import SpadekitError

CHECKPOINT_DIR = "checkpoints"
from spadekit.fileio import atomic_write, atomic_write_text  # noqa: E402,F401  (used by the loop too)

_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's checkpoint files, oldest first (temporary files excluded)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Write `state` as the checkpoint of `step`, then delete all but the newest `keep_last`."""
    path = checkpoint_path(run_dir, step)
    atomic_write(path, lambda p: torch.save(state, p))
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        try:
            old.unlink()
        except FileNotFoundError:
            pass
    # Leftovers of writes interrupted by a kill.
    for tmp in (Path(run_dir) / CHECKPOINT_DIR).glob(".step_*.tmp"):
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise SpadekitError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(state, dict) or "step" not in state:
        raise SpadekitError(f"{path} is not a spadekit training checkpoint (no 'step' entry)")
    return state


def load_latest(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint of the run; corrupt or partial files are skipped with a warning."""
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path)
        except SpadekitError as error:
            warnings.warn(f"skipping unreadable checkpoint: {error}", stacklevel=2)
    return None


# ---- RNG states as tensors / lists (weights_only-safe) -------------------------------------------
def rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        ("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
