"""The training loop: Initialize -> Train (D step, G step, EMA) -> Log / Sample / Save, top to bottom.

    train(load_config("configs/tiny.yaml"), "runs/tiny")           # a fresh run
    train(config, "runs/tiny", resume=True)                        # continue from the newest checkpoint

One step = one global batch (split over processes and over `grad_accum` micro-batches). D is
updated every step, G every `d_steps_per_g` steps; the D step reuses the (detached) fakes of the G
step. All randomness of a step comes from seeded generators whose states are checkpointed: data
order (sampler seed + epoch), augmentation (the dataset's rng([seed, epoch, index])), and the VAE
noise (drawn for the whole global batch, each process taking its rows), so a resumed run, or a run
on N processes, computes what one uninterrupted process would.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spadekit import SpadekitError
from spadekit.config import DiscriminatorConfig, EncoderConfig, GeneratorConfig, SPADEModelConfig
from spadekit.data.labels import LabelSet
from spadekit.losses import feature_matching_loss, gan_loss, kl_divergence, perceptual_loss
from spadekit.models import SPADEModel
from spadekit.models.spade_model import load_state
from spadekit.train import checkpoint as ckpt
from spadekit.train import distributed as dist_utils
from spadekit.train.config import TrainConfig, save_config


# ---- building blocks ------------------------------------------------------------------------------
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


def model_config(config: TrainConfig, labels: LabelSet, use_instance: bool) -> SPADEModelConfig:
    """The SPADEModelConfig of the networks to train."""
    m, d = config.model, config.data
    semantic_channels = labels.num_channels + int(use_instance)
    encoder = None
    if m.use_vae:
        input_size = min(256, d.crop_size)
        layers = m.encoder_layers
        if layers is None:  # stride-2 convs down to a 4x4 grid (6 at 256, the paper's encoder)
            layers = 1
            while layers < 6 and input_size % 2 ** (layers + 1) == 0 and input_size // 2 ** (layers + 1) >= 4:
                layers += 1
        encoder = EncoderConfig(ndf=m.encoder_ndf, z_dim=m.z_dim, input_size=input_size, num_layers=layers, spectral_norm=m.spectral_norm)
    try:
        return SPADEModelConfig(
            labels=labels.to_dict(),
            use_instance=bool(use_instance),
            generator=GeneratorConfig(
                semantic_channels=semantic_channels, ngf=m.ngf, num_upsampling_layers=m.num_upsampling_layers,
                crop_size=d.crop_size, aspect_ratio=d.aspect_ratio, use_vae=m.use_vae, z_dim=m.z_dim, norm=m.norm,
                spade_hidden=m.spade_hidden, spectral_norm=m.spectral_norm, arch=m.arch,
                num_downsample=m.num_downsample, num_res_blocks=m.num_res_blocks,
            ),
            encoder=encoder,
            discriminator=DiscriminatorConfig(
                input_channels=semantic_channels + 3, ndf=m.d_ndf, num_scales=m.d_num_scales,
                num_layers=m.d_num_layers, norm=m.d_norm, spectral_norm=m.spectral_norm,
            ),
        )
    except ValueError as error:
        raise SpadekitError(f"model section: {error}") from None


NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def load_init_weights(model: SPADEModel, folder: str | os.PathLike) -> list[str]:
    """Start a run from a model folder's weights (train.init_from): returns the networks loaded.

    Every parameter must be present with the same shape; normalisation statistics may be missing (a
    model trained with instance norm starting a batch-norm run) and then start fresh."""
    from safetensors.torch import load_file

    folder = Path(folder)
    loaded = []
    for name in ("generator", "encoder", "discriminator"):
        net, path = getattr(model, name), folder / f"{name}.safetensors"
        if net is None or not path.is_file():
            if net is not None and name != "discriminator":
                raise SpadekitError(
                    f"train.init_from: {folder} has no {name}.safetensors, which this config's model needs; "
                    "give a model folder (e.g. from `spadekit export-run`)"
                )
            continue
        state = load_file(path)
        own = net.state_dict()
        for key in own:
            if key not in state and key.rsplit(".", 1)[-1] in NORM_BUFFERS:
                state[key] = own[key]
        load_state(net, state, f"train.init_from {path}", built_from="this run's config",
                   mismatch_hint="; the model folder must have the same architecture and widths as the model section")
        loaded.append(name)
    return loaded


def init_weights(module: nn.Module, gain: float) -> None:
    """Xavier-normal init with a small gain for convs and linears (the paper's init), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = getattr(m, "weight_orig", None)
            weight = weight if weight is not None else m.weight
            nn.init.xavier_normal_(weight.data, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias.data)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.zeros_(m.bias.data)


class GeneratorStep(nn.Module):
    """Generator (+ encoder) as one module, so a single DDP wrapper and optimiser cover both.

    forward(semantic, image, noise) -> (fake, mu, logvar): with an encoder, z = mu + noise * std of
    E(image); with use_vae and no image, z = noise; without the VAE the map alone drives G.
    has_edge: with fast_path, whether the semantic map's last channel is the instance edge.
    fast_path: run G through `spadekit.fast.semantic_forward` (lookup SPADE convs, same parameters).
    """

    def __init__(self, generator: nn.Module, encoder: nn.Module | None, fast_path: bool = False, has_edge: bool = False):
        super().__init__()
        self.generator = generator
        self.encoder = encoder
        self.fast_path, self.has_edge = fast_path, has_edge

    def forward(self, semantic, image=None, noise=None):
        mu = logvar = None
        z = noise
        if self.encoder is not None and image is not None:
            mu, logvar = self.encoder(image)
            z = noise * torch.exp(0.5 * logvar) + mu
        if self.fast_path and self.training:
            from spadekit.fast import semantic_forward

            return semantic_forward(self.generator, semantic, z, self.has_edge), mu, logvar
        return self.generator(semantic, z), mu, logvar


def export_model(mconfig: SPADEModelConfig, generator_step_state: dict, discriminator_state: dict | None, out: Path,
                 dtype: torch.dtype | None = None) -> Path:
    """Write a model folder from GeneratorStep weights (generator.* / encoder.*) and the discriminator's."""
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
    dtype: store the weights in this dtype (torch.float16 halves the folder; loading gives float32)."""
    latest = ckpt.load_latest(Path(run_dir))
    if latest is None:
        raise SpadekitError(f"{run_dir}: no readable checkpoint to export (train first, or check the folder)")
    _, state = latest
    mconfig = SPADEModelConfig.from_dict(state["model_config"])
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["g"]
    return int(state["step"]), export_model(mconfig, weights, state["d"], Path(out), dtype=dtype)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers (spectral-norm u/v, BN stats) copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def lr_factor(step: int, total: int, decay_start: float) -> float:
    """1 for the first decay_start of training, then linear to 0 at `total`."""
    start = int(round(decay_start * total))
    if step < start or total <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (total - start))


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
        ckpt.atomic_write_text(self.metrics_path, "".join(k + "\n" for k in kept))

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        losses = {k: v for k, v in record.items() if k.startswith(("G_", "D_"))}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "time") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key if "/" in key else f"train/{key}", value, record["step"])

    def image(self, step: int, grid: np.ndarray) -> Path:
        from PIL import Image

        path = self.run_dir / "samples" / f"step_{step:06d}.png"
        ckpt.atomic_write(path, lambda p: Image.fromarray(grid).save(p, format="PNG"))
        if self.writer is not None:
            self.writer.add_image("samples", grid, step, dataformats="HWC")
        return path

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class _StopRequest:
    """SIGTERM / SIGINT ask the loop to save a checkpoint and stop at the end of the current step."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second signal: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def autocast(device: torch.device, precision: str, cache: bool = True):
    """cache=False: no cast cache (with activation checkpointing it would keep a low-precision copy of every weight)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


# ---- the loop -------------------------------------------------------------------------------------
def train(config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, dataset=None) -> Path:
    """Train (or continue) a run in `run_dir`; returns the folder of the exported final model.

    dataset: a ready dataset (tests); default: the one the data section describes.
    """
    run_dir = Path(run_dir)
    t, log = config.train, config.log

    # Initialize: processes, seeds, threads --------------------------------------------------------
    info = dist_utils.init(t.device)
    if t.precision == "fp16" and info.device.type != "cuda":
        raise SpadekitError("train.precision fp16 needs a CUDA GPU; use bf16 (or fp32) on a CPU")
    if t.batch_size % (info.world_size * t.grad_accum):
        raise SpadekitError(
            f"train.batch_size {t.batch_size} must be divisible by processes x grad_accum = {info.world_size} x {t.grad_accum}"
        )
    if t.num_threads is not None:
        torch.set_num_threads(t.num_threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(t.seed)
    np.random.seed(t.seed % 2**32)
    import random as _random

    _random.seed(t.seed)

    existing = ckpt.list_checkpoints(run_dir)
    if existing and not resume:
        raise SpadekitError(
            f"{run_dir} already holds checkpoints (newest: {existing[-1][1].name}); "
            "pass --resume to continue that run, or choose another --out"
        )

    # Initialize: data ---------------------------------------------------------------------------
    if dataset is None:
        dataset = build_dataset(config)
    labels: LabelSet = dataset.label_set
    use_instance = bool(getattr(dataset, "use_instances", False))
    layout = StepLayout(t.batch_size, info.world_size, t.grad_accum)
    batches = EpochBatches(dataset, config, info, layout)
    total_steps = t.steps if t.steps is not None else t.epochs * batches.steps_per_epoch

    # Initialize: networks, EMA, losses, optimisers ------------------------------------------------
    mconfig = model_config(config, labels, use_instance)
    model = SPADEModel(mconfig)
    for net in (model.generator, model.encoder, model.discriminator):
        if net is not None:
            init_weights(net, 0.02)
    if t.init_from and not (resume and ckpt.list_checkpoints(run_dir)):
        loaded = load_init_weights(model, t.init_from)
        if info.is_main:
            print(f"initialised {', '.join(loaded)} from {t.init_from}", flush=True)
    if t.fast_path:  # spectral norm's gradient in three passes over each weight instead of about eight
        from spadekit.fast import keep_freed_memory, use_fast_spectral_norm

        use_fast_spectral_norm(model)
        keep_freed_memory()  # large tensors reuse heap memory instead of faulting in fresh pages per step
    device = info.device
    model.generator.activation_checkpointing = t.activation_checkpointing  # an attribute: checkpoints are unchanged
    g_step = GeneratorStep(model.generator, model.encoder, t.fast_path, use_instance).to(device)
    discriminator = model.discriminator.to(device)
    ema = copy.deepcopy(g_step).eval().requires_grad_(False) if t.ema_decay is not None else None
    g_step = dist_utils.maybe_sync_batchnorm(g_step, info)
    discriminator = dist_utils.maybe_sync_batchnorm(discriminator, info)
    g_ddp = dist_utils.wrap(g_step, info)
    d_ddp = dist_utils.wrap(discriminator, info)

    vgg = None
    if t.lambda_vgg > 0:
        from spadekit.models.vgg import VGGFeatures

        vgg = VGGFeatures(t.perceptual_arch, t.perceptual_weights).to(device)

    lr_g, lr_d = t.learning_rates
    fused = True if t.fast_path else None  # one kernel per parameter: the same update, faster, fewer temporaries
    opt_g = torch.optim.Adam(g_step.parameters(), lr=lr_g, betas=t.betas, eps=t.adam_eps, fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=t.betas, eps=t.adam_eps, fused=fused)
    schedule = lambda step: lr_factor(step, total_steps, t.decay_start)  # noqa: E731
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, schedule)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, schedule)
    use_scaler = t.precision == "fp16"
    scaler_g = torch.amp.GradScaler(device.type, enabled=use_scaler)
    scaler_d = torch.amp.GradScaler(device.type, enabled=use_scaler)
    noise = torch.Generator().manual_seed(t.seed + 1)  # VAE noise for the global batch

    # Initialize: resume -------------------------------------------------------------------------
    step = 0
    if resume:
        found = ckpt.load_latest(run_dir)
        if found is not None:
            path, state = found
            try:
                g_step.load_state_dict(state["g"])
                discriminator.load_state_dict(state["d"])
                if ema is not None and state.get("ema") is not None:
                    ema.load_state_dict(state["ema"])
                opt_g.load_state_dict(state["opt_g"])
                opt_d.load_state_dict(state["opt_d"])
            except (RuntimeError, KeyError, ValueError) as error:
                raise SpadekitError(
                    f"{path} does not fit the networks of this config ({str(error).splitlines()[0]}); "
                    f"resume with the run's own config ({run_dir / 'config.yaml'})"
                ) from None
            sched_g.load_state_dict(state["sched_g"])
            sched_d.load_state_dict(state["sched_d"])
            scaler_g.load_state_dict(state["scaler_g"])
            scaler_d.load_state_dict(state["scaler_d"])
            noise.set_state(state["noise"])
            ckpt.set_rng_state(state["rng"])
            step = int(state["step"])
            batches.seek(int(state["epoch"]), int(state["step_in_epoch"]))
            if info.is_main:
                print(f"resuming {run_dir} from {path.name} (step {step})", flush=True)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    monitor = Monitor(run_dir, config, step, total_steps, info.is_main)

    # Fixed sample batch: labels, photos and z, kept in the run folder so a resumed run shows the same.
    samples = _sample_batch(run_dir, dataset, config, mconfig, info)

    def checkpoint_state() -> dict[str, Any]:
        return {
            "step": step, "epoch": batches.epoch, "step_in_epoch": batches.step_in_epoch,
            "total_steps": total_steps, "world_size": info.world_size,
            "g": g_step.state_dict(), "d": discriminator.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(),
            "scaler_g": scaler_g.state_dict(), "scaler_d": scaler_d.state_dict(),
            "noise": noise.get_state(), "rng": ckpt.rng_state(),
            "config": config.to_dict(), "model_config": mconfig.to_dict(),
        }

    def save(reason: str) -> None:
        if info.is_main:
            path = ckpt.save_checkpoint(run_dir, step, checkpoint_state(), log.keep_last)
            monitor.message(f"step {step}: saved {path.relative_to(run_dir)} ({reason})")
        dist_utils.barrier()

    def render_samples() -> None:
        if not info.is_main:
            return
        net = ema if ema is not None else g_step
        was_training = net.training
        net.eval()
        with torch.no_grad(), autocast(device, t.precision):
            instance = samples.get("instance")
            semantic = model.semantic(samples["label"].to(device), instance.to(device) if instance is not None else None)
            columns = [samples["colors"], to_uint8(samples["image"])]
            columns.append(to_uint8(net.generator(semantic, samples["z"].to(device) if mconfig.generator.use_vae else None)))
            if net.encoder is not None:  # style from the photo itself (reconstruction)
                mu, _ = net.encoder(samples["image"].to(device))
                columns.append(to_uint8(net.generator(semantic, mu)))
        net.train(was_training)
        monitor.image(step, sample_grid(columns))

    # Train ----------------------------------------------------------------------------------------
    g_step.train()
    discriminator.train()
    sums: dict[str, float] = {}
    count = 0
    last_save_time = time.monotonic()
    last_log_time, last_log_step = time.monotonic(), step
    z_dim = mconfig.generator.z_dim
    with _StopRequest() as stop:
        while step < total_steps:
            micro_batches = batches.next_step()
            # The noise of the whole global batch, drawn every step whatever the layout.
            step_noise = torch.randn(layout.global_batch, z_dim, generator=noise) if mconfig.generator.use_vae else None
            inputs = []
            for m, batch in enumerate(micro_batches):
                real = batch["image"].to(device, non_blocking=True)
                label = batch["label"].to(device, non_blocking=True)
                instance = batch.get("instance")
                semantic = model.semantic(label, instance.to(device) if instance is not None else None)
                if tuple(real.shape[-2:]) != mconfig.generator.output_size:
                    raise SpadekitError(
                        f"data gives {real.shape[-1]}x{real.shape[-2]} images but the generator makes "
                        f"{mconfig.generator.output_size[1]}x{mconfig.generator.output_size[0]}; "
                        "set data.crop_size / data.aspect_ratio / data.preprocess to match"
                    )
                z = step_noise[layout.rows(info.rank, m)].to(device) if step_noise is not None else None
                inputs.append((semantic, real, z))
            losses: dict[str, torch.Tensor] = {}

            # G step: GAN + feature matching + perceptual + KL, D frozen.
            fakes = []
            if step % t.d_steps_per_g == 0:
                opt_g.zero_grad(set_to_none=True)
                discriminator.requires_grad_(False)
                for m, (semantic, real, z) in enumerate(inputs):
                    sync = m == len(inputs) - 1
                    with (contextlib.nullcontext() if sync or g_ddp is g_step else g_ddp.no_sync()):
                        with autocast(device, t.precision, cache=not t.activation_checkpointing):
                            fake, mu, logvar = g_ddp(semantic, real if g_step.encoder is not None else None, z)
                            pred_fake = discriminator(semantic, fake)
                            with torch.no_grad():
                                pred_real = discriminator(semantic, real)
                        fake = fake.float()
                        pred_fake = [[f.float() for f in scale] for scale in pred_fake]
                        pred_real = [[f.float() for f in scale] for scale in pred_real]
                        parts = {"G_gan": gan_loss(t.gan_mode, pred_fake, True, for_discriminator=False)}
                        if t.lambda_feat > 0:
                            parts["G_feat"] = feature_matching_loss(pred_fake, pred_real, t.lambda_feat)
                        if vgg is not None:
                            parts["G_vgg"] = _perceptual(vgg, fake, real, t, device)
                        if mu is not None and t.lambda_kld > 0:
                            # KL summed over the global batch, whatever the split into micro-batches and processes.
                            parts["G_kld"] = kl_divergence(mu.float(), logvar.float(), t.lambda_kld) * (layout.accum * layout.world)
                        loss = sum(parts.values())
                        scaler_g.scale(loss / layout.accum).backward()
                    fakes.append(fake.detach())
                    for k, v in parts.items():
                        losses[k] = losses.get(k, 0.0) + v.detach() / layout.accum
                    losses["G_l1"] = losses.get("G_l1", 0.0) + F.l1_loss(fake.detach(), real) / layout.accum
                discriminator.requires_grad_(True)
                scaler_g.step(opt_g)
                scaler_g.update()
                opt_g.zero_grad(set_to_none=True)  # G's gradients are not needed in the D step: free them
                if ema is not None:
                    ema_update(ema, g_step, 0.0 if step < t.ema_start else t.ema_decay)

            # D step: real vs (detached) fake in one batch.
            opt_d.zero_grad(set_to_none=True)
            for m, (semantic, real, z) in enumerate(inputs):
                if fakes:
                    fake = fakes[m]
                else:
                    with torch.no_grad(), autocast(device, t.precision):
                        fake = g_step(semantic, real if g_step.encoder is not None else None, z)[0].float()
                sync = m == len(inputs) - 1
                with (contextlib.nullcontext() if sync or d_ddp is discriminator else d_ddp.no_sync()):
                    with autocast(device, t.precision):
                        outputs = d_ddp(torch.cat([semantic, semantic]), torch.cat([fake, real]))
                    pred_fake = [[f.float()[: len(real)] for f in scale] for scale in outputs]
                    pred_real = [[f.float()[len(real):] for f in scale] for scale in outputs]
                    parts = {
                        "D_fake": gan_loss(t.gan_mode, pred_fake, False),
                        "D_real": gan_loss(t.gan_mode, pred_real, True),
                    }
                    scaler_d.scale(sum(parts.values()) / layout.accum).backward()
                for k, v in parts.items():
                    losses[k] = losses.get(k, 0.0) + v.detach() / layout.accum
            scaler_d.step(opt_d)
            scaler_d.update()
            sched_g.step()
            sched_d.step()
            step += 1
            monitor.step()

            for k, v in losses.items():
                value = float(v)
                if not math.isfinite(value):
                    raise SpadekitError(
                        f"step {step}: loss {k} is {value}; training diverged (lower the learning rates, "
                        "use precision fp32, or resume from an earlier checkpoint)"
                    )
                sums[k] = sums.get(k, 0.0) + value
            count += 1

            # Log --------------------------------------------------------------------------------
            if step % log.log_every == 0 or step == total_steps:
                means = dist_utils.all_reduce_mean({k: v / count for k, v in sums.items()}, info)
                now = time.monotonic()
                record = {
                    "step": step, "epoch": batches.epoch, "time": time.time(),
                    "it_per_s": (step - last_log_step) / max(now - last_log_time, 1e-9),
                    "lr_G": opt_g.param_groups[0]["lr"], "lr_D": opt_d.param_groups[0]["lr"],
                    **means,
                }
                monitor.log(record)
                sums, count = {}, 0
                last_log_time, last_log_step = now, step

            # Sample -----------------------------------------------------------------------------
            if step % log.sample_every == 0 or step == total_steps:
                render_samples()

            # Save -------------------------------------------------------------------------------
            due = log.checkpoint_every is not None and step % log.checkpoint_every == 0
            timed = log.checkpoint_seconds is not None and time.monotonic() - last_save_time >= log.checkpoint_seconds
            stopping = dist_utils.broadcast_flag(stop.requested, info)
            if step == total_steps or dist_utils.broadcast_flag(due or timed, info) or stopping:
                save("stop requested" if stopping else "end" if step == total_steps else "periodic")
                last_save_time = time.monotonic()
            if stopping:
                monitor.message(f"stopped at step {step}; continue with --resume")
                monitor.close()
                dist_utils.shutdown()
                return run_dir / "final"

    # Export: the EMA generator (and encoder) with the discriminator, as a model folder -----------
    final = run_dir / "final"
    if info.is_main:
        source = ema if ema is not None else g_step
        export_model(mconfig, source.state_dict(), discriminator.state_dict(), final)
        monitor.message(f"done: {total_steps} steps; model exported to {final}")
    monitor.close()
    dist_utils.barrier()
    dist_utils.shutdown()
    return final


def _perceptual(vgg: nn.Module, fake: torch.Tensor, real: torch.Tensor, t, device) -> torch.Tensor:
    if t.perceptual_size is not None and fake.shape[-1] != t.perceptual_size:
        size = (max(1, round(t.perceptual_size * fake.shape[-2] / fake.shape[-1])), t.perceptual_size)
        fake = F.interpolate(fake, size=size, mode="bilinear", align_corners=False, antialias=True)
        real = F.interpolate(real, size=size, mode="bilinear", align_corners=False, antialias=True)
    with autocast(device, t.precision):
        fake_features = vgg(fake)
        with torch.no_grad():
            real_features = vgg(real)
    return perceptual_loss([f.float() for f in fake_features], [r.float() for r in real_features], weight=t.lambda_vgg)


def _sample_batch(run_dir: Path, dataset, config: TrainConfig, mconfig: SPADEModelConfig, info) -> dict:
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
        "z": torch.randn(count, mconfig.generator.z_dim, generator=torch.Generator().manual_seed(config.train.seed + 2)),
    }
    if "instance" in items[0]:
        batch["instance"] = torch.stack([it["instance"] for it in items])
    colors = label_colors(LabelSet.from_dict(mconfig.labels))
    batch["colors"] = colors[batch["label"][:, 0]].numpy()
    ckpt.atomic_write(path, lambda p: torch.save({k: torch.as_tensor(v) for k, v in batch.items()}, p))
    batch["colors"] = np.asarray(batch["colors"])
    return batch
