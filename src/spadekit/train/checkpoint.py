"""Training checkpoints: everything needed to continue a run exactly, written atomically; the run lock.

A checkpoint is a dict of tensors and plain containers (so `torch.load(weights_only=True)` reads
it): network and optimiser state dicts, schedulers, grad scalers, step / epoch / position in the
epoch, RNG states (python, numpy, torch CPU and CUDA, the training noise generator) and the config.
Files are RUN_DIR/checkpoints/step_XXXXXXXX.pt, written to a temporary name and renamed; the last
`keep_last` are kept. A checkpoint that cannot be read is never deleted: a resumed run moves it
aside as step_XXXXXXXX.pt.unreadable and continues from the newest good one.

One trainer at a time holds RUN_DIR/.lock (an flock, so the kernel releases it when the process
dies, however it dies); the file names the holder's PID for the refusal a second trainer gets.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import socket
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spadekit import SpadekitError
from spadekit.fileio import atomic_write

CHECKPOINT_DIR = "checkpoints"
LOCK_NAME = ".lock"
UNREADABLE_SUFFIX = ".unreadable"
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's checkpoint files, oldest first (temporary and set-aside files excluded)."""
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
    """Write `state` as the checkpoint of `step`, then delete all but the newest `keep_last`.

    A failed write (a full disk) raises `spadekit.fileio.WriteError` and leaves the older checkpoints
    as they were: they are deleted only once the new one is safely on disk."""
    path = checkpoint_path(run_dir, step)
    atomic_write(path, lambda p: torch.save(state, p), what="the checkpoint")
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


def load_checkpoint(path: Path, required: Iterable[str] = ("step",)) -> dict[str, Any]:
    """Read a checkpoint (tensors and plain containers only: nothing in the file is run).

    required: entries the state must have. Raises SpadekitError naming the file for a damaged,
    truncated or foreign file."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"unsupported GLOBAL ([\w.]+)", str(error))
        raise SpadekitError(
            f"{path} holds Python objects that are not tensors or plain containers"
            f"{f' ({found.group(1)})' if found else ''}; refused without running any of it: "
            "spadekit checkpoints hold none, so this file is not one or was altered"
        ) from None
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SpadekitError(f"cannot read checkpoint {path}: {reason} (the file is damaged or truncated)") from None
    if not isinstance(state, dict):
        raise SpadekitError(f"{path} is not a spadekit training checkpoint (it holds a {type(state).__name__}, not a dict)")
    missing = [key for key in required if key not in state]
    if missing:
        raise SpadekitError(f"{path} is not a complete spadekit training checkpoint (no {', '.join(map(repr, missing))} entry)")
    return state


def load_latest(
    run_dir: Path, required: Iterable[str] = ("step",), on_skip: Callable[[Path, SpadekitError], None] | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint of the run, or None when there is none that reads.

    Unreadable files are skipped (never deleted): on_skip(path, error) hears of each; by default a warning."""
    required = tuple(required)
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path, required)
        except SpadekitError as error:
            if on_skip is None:
                warnings.warn(f"skipping unreadable checkpoint: {error}", stacklevel=2)
            else:
                on_skip(path, error)
    return None


def set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint out of the run's list (kept for inspection, never overwritten)."""
    target = path.with_name(path.name + UNREADABLE_SUFFIX)
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{UNREADABLE_SUFFIX}.{n}")
    os.replace(path, target)
    return target


def first_nonfinite(state: dict[str, Any], keys: Iterable[str]) -> str | None:
    """The name of the first tensor holding NaN or Inf among state[key] for key in keys (None: all finite).

    One fused check (a single device sync) when all are finite; the culprit is looked for only otherwise."""
    named = []

    def collect(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() or value.is_complex():
                named.append((prefix, value))
        elif isinstance(value, dict):
            for k, v in value.items():
                collect(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                collect(f"{prefix}.{i}", v)

    for key in keys:
        collect(key, state.get(key))
    if not named:
        return None
    if bool(torch.stack([torch.isfinite(t).all() for _, t in named]).all()):
        return None
    return next(name for name, t in named if not bool(torch.isfinite(t).all()))


# ---- the run lock --------------------------------------------------------------------------------
class RunLock:
    """RUN_DIR/.lock held with flock by the one trainer of a run; `release()` (or the process's end) frees it."""

    def __init__(self, run_dir: Path):
        import fcntl

        self.path = Path(run_dir) / LOCK_NAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise SpadekitError(f"cannot create the run lock {self.path}: {error.strerror or error}; check --out") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(self._fd)
            os.close(self._fd)
            raise SpadekitError(
                f"{self.path.parent} is in use by another trainer ({holder}, holding {self.path}); "
                "wait for it to finish or stop it, or train into another --out"
            ) from None
        try:  # who holds it, for the message a second trainer gets
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # the lock holds without the note (e.g. a full disk, reported by the first real write)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        text = []
    if not text:
        return "a process that is just starting"
    pid, host = text[0], (text[1] if len(text) > 1 else "")
    return f"PID {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


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
