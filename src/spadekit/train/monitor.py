"""What a run shows while it trains (rank 0 only): progress bar, metrics.jsonl, TensorBoard, sample grids.

The sample grids render one fixed batch (its labels, photos and z are kept in the run folder, so a
resumed run shows the same pairs): a row per pair, columns label | photo | sample | reconstruction.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spadekit.config import ModelConfig
from spadekit.fileio import append_text, atomic_write, atomic_write_text
from spadekit.labels import LabelSet
from spadekit.models import random_latents
from spadekit.train.config import TrainConfig
from spadekit.train.steps import autocast


class Monitor:
    """Rank 0's outputs: progress bar, metrics.jsonl, TensorBoard, sample grids."""

    def __init__(self, run_dir: Path, config: TrainConfig, start: int, total: int, enabled: bool):
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer = None
        self.bar = None
        if not enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True, smoothing=0.1)
        self.metrics_path = run_dir / "metrics.jsonl"
        self._truncate_metrics(start)
        if config.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start + 1)
            except Exception:  # the tensorboard package is an optional extra
                self.writer = None

    def _truncate_metrics(self, start: int) -> None:
        """On resume, drop lines logged after the checkpoint we continue from (they will be redone)."""
        if not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= start:
                    kept.append(line)
            except ValueError:
                pass  # a line cut by a kill
        atomic_write_text(self.metrics_path, "".join(k + "\n" for k in kept), what="the metrics log")

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_text(self.metrics_path, json.dumps(record) + "\n", what="the metrics log")
        losses = {k: v for k, v in record.items() if k.startswith(("G_", "D_"))}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "time") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key if "/" in key else f"train/{key}", value, record["step"])

    def image(self, step: int, grid: np.ndarray) -> Path:
        from PIL import Image

        path = self.run_dir / "samples" / f"step_{step:06d}.png"
        atomic_write(path, lambda p: Image.fromarray(grid).save(p, format="PNG"), what="the sample grid")
        if self.writer is not None:
            self.writer.add_image("samples", grid, step, dataformats="HWC")
        return path

    def message(self, text: str, file=None) -> None:
        """A line above the progress bar, on stdout (file: e.g. sys.stderr for notes of faults)."""
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text, file=file)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def label_colors(labels: LabelSet) -> torch.Tensor:
    """[C, 3] uint8 colours of the label channels (dontcare black)."""
    colors = labels.colors()
    if labels.contain_dontcare:
        colors = np.concatenate([colors, np.zeros((1, 3), np.uint8)])
    return torch.from_numpy(colors)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B,3,H,W] in [-1,1] -> [B,H,W,3] uint8."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def sample_grid(columns: list[np.ndarray]) -> np.ndarray:
    """Columns of [B,H,W,3] images -> one [B*H, n*W, 3] grid (a row per sample)."""
    rows = [np.concatenate([column[i] for column in columns], axis=1) for i in range(columns[0].shape[0])]
    return np.concatenate(rows, axis=0)


def render_samples(net, model, samples: dict, device: torch.device, precision: str) -> np.ndarray:
    """The sample grid of the fixed batch, drawn by `net` (a GeneratorStep, the EMA one when there is one)."""
    takes_z = bool(model.config.latent_dim)  # VAE or 3D noise
    was_training = net.training
    net.eval()
    with torch.no_grad(), autocast(device, precision):
        instance = samples.get("instance")
        semantic = model.semantic(samples["label"].to(device), instance.to(device) if instance is not None else None)
        columns = [samples["colors"], to_uint8(samples["image"])]
        columns.append(to_uint8(net.generator(semantic, samples["z"].to(device) if takes_z else None)))
        if net.encoder is not None:  # style from the photo itself (reconstruction)
            mu, _ = net.encoder(samples["image"].to(device))
            columns.append(to_uint8(net.generator(semantic, mu)))
    net.train(was_training)
    return sample_grid(columns)


def fixed_sample_batch(run_dir: Path, dataset, config: TrainConfig, mconfig: ModelConfig, info) -> dict:
    """The fixed batch the sample grids show: first pairs of the dataset, z from a fixed seed."""
    if not info.is_main:
        return {}
    path = run_dir / "samples" / "fixed_batch.pt"
    if path.exists():
        try:
            batch = torch.load(str(path), map_location="cpu", weights_only=True)
            batch["colors"] = batch["colors"].numpy()
            return batch
        except Exception:
            pass  # rebuilt below
    count = min(config.log.num_samples, len(dataset))
    items = [dataset[i] for i in range(count)]
    batch = {
        "image": torch.stack([it["image"] for it in items]),
        "label": torch.stack([it["label"] for it in items]),
        "z": random_latents(count, mconfig.latent_dim or mconfig.z_dim, config.train.seed + 2),
    }
    if "instance" in items[0]:
        batch["instance"] = torch.stack([it["instance"] for it in items])
    colors = label_colors(LabelSet.from_dict(mconfig.labels))
    batch["colors"] = colors[batch["label"][:, 0]].numpy()
    atomic_write(path, lambda p: torch.save({k: torch.as_tensor(v) for k, v in batch.items()}, p), what="the fixed sample batch")
    batch["colors"] = np.asarray(batch["colors"])
    return batch
