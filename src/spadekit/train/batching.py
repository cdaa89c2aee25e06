"""The training data: the dataset of the data section, and its micro-batches in a resumable order.

A step's global batch is split over `world` processes and `accum` micro-batches. The order is a
function of (seed, epoch, position in the epoch) only, so a resumed run, or a run on N processes,
sees the batches one uninterrupted process would.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import torch

from spadekit import SpadekitError
from spadekit.train import distributed as dist_utils
from spadekit.train.config import TrainConfig


def build_dataset(config: TrainConfig):
    """The training dataset described by the data section (SpadekitError when the folder is wrong)."""
    from spadekit.data.datasets import build_dataset as build
    from spadekit.data.transforms import TransformConfig

    d = config.data
    if not Path(d.root).exists():
        raise SpadekitError(
            f"data.root {d.root} does not exist; point data.root at the dataset folder "
            "(for the landscape model, make it with `spadekit data make-landscapes`)"
        )
    transform = TransformConfig(
        preprocess=d.preprocess, load_size=d.load_size, crop_size=d.crop_size, aspect_ratio=d.aspect_ratio, flip=d.flip,
        color_grading=d.color_grading,
    )
    return build(
        d.dataset, d.root, d.split, label_set=d.labels, instances=d.use_instance, transform=transform,
        seed=config.train.seed, limit=d.limit,
    )


@dataclass
class StepLayout:
    """How a global batch is split: `world` processes x `accum` micro-batches of `micro` samples."""

    global_batch: int
    world: int
    accum: int

    @property
    def micro(self) -> int:
        return self.global_batch // (self.world * self.accum)

    def rows(self, rank: int, m: int) -> torch.Tensor:
        """Global-batch rows of micro-batch m on `rank` (DistributedSampler interleaves ranks)."""
        local = torch.arange(m * self.micro, (m + 1) * self.micro)
        return rank + self.world * local


def _ignore_stop_signals(_worker_id: int) -> None:
    """Data workers leave SIGTERM / Ctrl-C to the training process, which checkpoints and then ends them
    (a job scheduler's SIGTERM, `pkill -f` or a terminal's Ctrl-C reach the workers too; a worker dying of
    it would crash the run before it saves)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class EpochBatches:
    """Micro-batches in a resumable order: position = (epoch, steps done in that epoch)."""

    def __init__(self, dataset, config: TrainConfig, info: dist_utils.DistInfo, layout: StepLayout):
        self.dataset = dataset
        self.config = config
        self.info = info
        self.layout = layout
        self.sampler = dist_utils.ResumableSampler(dataset, info, seed=config.train.seed)
        per_rank = self.sampler.num_samples
        self.steps_per_epoch = per_rank // (layout.micro * layout.accum)
        if self.steps_per_epoch < 1:
            raise SpadekitError(
                f"the dataset has {len(dataset)} pairs, fewer than one global batch of {layout.global_batch}; "
                "lower train.batch_size or add data"
            )
        self.epoch = 0
        self.step_in_epoch = 0
        self._iterator = None

    def seek(self, epoch: int, step_in_epoch: int) -> None:
        self.epoch, self.step_in_epoch = epoch, step_in_epoch
        self._iterator = None

    def _start_epoch(self) -> None:
        self.sampler.set_position(self.epoch, self.step_in_epoch * self.layout.micro * self.layout.accum)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)  # before the workers copy the dataset
        workers = self.config.data.num_workers
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.layout.micro, sampler=self.sampler, drop_last=True,
            num_workers=workers, pin_memory=self.info.device.type == "cuda",
            # Own generator: worker seeds must not consume the global torch RNG.
            generator=torch.Generator().manual_seed(self.config.train.seed * 100003 + self.epoch),
            persistent_workers=False, prefetch_factor=2 if workers else None,
            worker_init_fn=_ignore_stop_signals if workers else None,
        )
        self._iterator = iter(loader)

    def next_step(self) -> list[dict]:
        """The micro-batches of the next step (moving to the next epoch when this one is used up)."""
        if self.step_in_epoch >= self.steps_per_epoch:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self._iterator = None
        if self._iterator is None:
            self._start_epoch()
        batches = [next(self._iterator) for _ in range(self.layout.accum)]
        self.step_in_epoch += 1
        if self.step_in_epoch >= self.steps_per_epoch:
            self._iterator = None  # drop the rest of the epoch (and its workers)
        return batches


def step_inputs(micro_batches: list[dict], model, noise: torch.Generator, layout: StepLayout,
                info: dist_utils.DistInfo) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """(semantic map, real photo, z) per micro-batch on this process's device.

    The noise (VAE or 3D) of the whole global batch is drawn every step whatever the layout, and each
    process takes its rows, so z does not depend on the number of processes or micro-batches.
    """
    gconfig = model.config
    step_noise = torch.randn(layout.global_batch, gconfig.latent_dim, generator=noise) if gconfig.latent_dim else None
    inputs = []
    for m, batch in enumerate(micro_batches):
        real = batch["image"].to(info.device, non_blocking=True)
        label = batch["label"].to(info.device, non_blocking=True)
        instance = batch.get("instance")
        semantic = model.semantic(label, instance.to(info.device) if instance is not None else None)
        if tuple(real.shape[-2:]) != gconfig.output_size:
            raise SpadekitError(
                f"data gives {real.shape[-1]}x{real.shape[-2]} images but the generator makes "
                f"{gconfig.output_size[1]}x{gconfig.output_size[0]}; "
                "set data.crop_size / data.aspect_ratio / data.preprocess to match"
            )
        z = step_noise[layout.rows(info.rank, m)].to(info.device) if step_noise is not None else None
        inputs.append((semantic, real, z))
    return inputs
