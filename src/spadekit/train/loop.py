"""The training loop: Initialize -> Resume -> Train (G step, D step, EMA) -> Log / Sample / Save -> Export.

    train(load_config("tiny"), "runs/tiny")                        # a fresh run
    train(config, "runs/tiny", resume=True)                        # continue from the newest checkpoint

`train()` reads from top to bottom; the pieces it calls live beside it: `batching` (dataset and
resumable micro-batches), `steps` (the G and D updates, the EMA), `monitor` (progress bar, metrics,
TensorBoard, sample grids), `export` (model folders), `checkpoint` and `distributed`.

One step = one global batch (split over processes and over `grad_accum` micro-batches). D is
updated every step, G every `d_steps_per_g` steps; the D step reuses the (detached) fakes of the G
step. All randomness of a step comes from seeded generators whose states are checkpointed: data
order (sampler seed + epoch), augmentation (the dataset's rng([seed, epoch, index])), and the VAE
noise (drawn for the whole global batch, each process taking its rows), so a resumed run, or a run
on N processes, computes what one uninterrupted process would.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spadekit import SpadekitError
from spadekit.augment import DiscriminatorAugment
from spadekit.labels import LabelSet
from spadekit.models import SPADEModel
from spadekit.models.spade_model import load_state
from spadekit.precision import fast_bf16, resolve_training_precision
from spadekit.train import checkpoint as ckpt
from spadekit.train import distributed as dist_utils
from spadekit.train.batching import EpochBatches, StepLayout, build_dataset, step_inputs
from spadekit.train.config import TrainConfig, save_config
from spadekit.train.export import export_model
from spadekit.train.export import export_run as export_run  # `spadekit export-run` imports it from here
from spadekit.train.monitor import Monitor, fixed_sample_batch, render_samples
from spadekit.train.steps import GeneratorStep, discriminator_step, ema_update, generator_step

# ---- the networks to train ------------------------------------------------------------------------
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


# ---- schedule and stop requests -------------------------------------------------------------------
def lr_factor(step: int, total: int, decay_start: float) -> float:
    """1 for the first decay_start of training, then linear to 0 at `total`."""
    start = int(round(decay_start * total))
    if step < start or total <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (total - start))


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


# ---- the loop -------------------------------------------------------------------------------------
def train(config: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, dataset=None) -> Path:
    """Train (or continue) a run in `run_dir`; returns the folder of the exported final model
    (RUN_DIR/final), or RUN_DIR itself when a stop request (SIGTERM, Ctrl-C) ended the run early:
    its newest checkpoint is then where `train(..., resume=True)` continues.

    dataset: a ready dataset (tests); default: the one the data section describes.
    """
    run_dir = Path(run_dir)
    t, log = config.train, config.log

    # Initialize: processes, seeds, threads --------------------------------------------------------
    info = dist_utils.init(t.device)
    precision = resolve_training_precision(t.precision, info.device)
    if precision == "bf16" and not fast_bf16(info.device) and info.is_main:
        print(f"note: train.precision bf16 is emulated on this {info.device.type} (no native bf16): expect steps "
              "several times slower than fp32; train.precision auto picks the fast one", file=sys.stderr)
    if precision != t.precision:
        t = dataclasses.replace(t, precision=precision)
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
    random.seed(t.seed)

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
    mconfig = config.model_config(labels, use_instance)
    model = SPADEModel(mconfig)
    for net in (model.generator, model.encoder, model.discriminator):
        if net is not None:
            init_weights(net, 0.02)
    if t.init_from and not (resume and ckpt.list_checkpoints(run_dir)):
        loaded = load_init_weights(model, t.init_from)
        if info.is_main:
            print(f"initialised {', '.join(loaded)} from {t.init_from}", flush=True)
    if t.fast_path:  # spectral norm's gradient in three passes over each weight instead of about eight
        from spadekit.layers.spectral_norm import use_fast_spectral_norm
        from spadekit.runtime_memory import keep_freed_memory

        use_fast_spectral_norm(model)
        keep_freed_memory()  # large tensors reuse heap memory instead of faulting in fresh pages per step
    device = info.device
    model.generator.activation_checkpointing = t.activation_checkpointing  # an attribute: checkpoints are unchanged
    g_step = GeneratorStep(model.generator, model.encoder, t.fast_path, use_instance).to(device)
    discriminator = model.discriminator.to(device)
    ema = copy.deepcopy(g_step).eval().requires_grad_(False) if t.ema_decay is not None else None
    # norm "syncbatch": batch statistics over all processes; "batch": over each process's own batch
    g_step.generator = dist_utils.maybe_sync_batchnorm(g_step.generator, mconfig.norm, info)
    if g_step.encoder is not None:
        g_step.encoder = dist_utils.maybe_sync_batchnorm(g_step.encoder, mconfig.encoder_norm, info)
    discriminator = dist_utils.maybe_sync_batchnorm(discriminator, mconfig.d_norm, info)
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
    noise = torch.Generator().manual_seed(t.seed + 1)  # VAE / 3D noise for the global batch
    # what D sees: augmentation (t.diffaug, ADA) and LabelMix masks, from their own seeded generator
    # (one seed for every process, so a resumed run draws what it would have)
    augmenter = DiscriminatorAugment(t.diffaug, t.diffaug_p, t.ada_target, t.ada_ramp_images, seed=t.seed + 3)

    # Resume -------------------------------------------------------------------------------------
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
            if state.get("augment") is not None:
                augmenter.load_state_dict(state["augment"])
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
    samples = fixed_sample_batch(run_dir, dataset, config, mconfig, info)

    def checkpoint_state() -> dict[str, Any]:
        return {
            "step": step, "epoch": batches.epoch, "step_in_epoch": batches.step_in_epoch,
            "total_steps": total_steps, "world_size": info.world_size,
            "g": g_step.state_dict(), "d": discriminator.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(),
            "scaler_g": scaler_g.state_dict(), "scaler_d": scaler_d.state_dict(),
            "noise": noise.get_state(), "rng": ckpt.rng_state(), "augment": augmenter.state_dict(),
            "config": config.to_dict(), "model_config": mconfig.to_dict(),
        }

    def save(reason: str) -> None:
        if info.is_main:
            path = ckpt.save_checkpoint(run_dir, step, checkpoint_state(), log.keep_last)
            monitor.message(f"step {step}: saved {path.relative_to(run_dir)} ({reason})")
        dist_utils.barrier()

    # Train ----------------------------------------------------------------------------------------
    g_step.train()
    discriminator.train()
    sums: dict[str, float] = {}
    count = 0
    last_save_time = time.monotonic()
    last_log_time, last_log_step = time.monotonic(), step
    with _StopRequest() as stop:
        while step < total_steps:
            inputs = step_inputs(batches.next_step(), model, noise, layout, info)
            losses: dict[str, torch.Tensor] = {}
            fakes = []
            if step % t.d_steps_per_g == 0:
                fakes, losses = generator_step(g_ddp, g_step, discriminator, vgg, inputs, opt_g, scaler_g, t, layout, device, augmenter)
                if ema is not None:
                    ema_update(ema, g_step, 0.0 if step < t.ema_start else t.ema_decay)
            losses.update(discriminator_step(d_ddp, discriminator, g_step, inputs, fakes, opt_d, scaler_d, t, layout, device, augmenter))
            if augmenter.policy:
                losses["aug_p"] = torch.tensor(augmenter.p)  # the probability this step used
            if augmenter.ada is not None:  # ADA: r_t over all processes' reals
                sign = dist_utils.all_reduce_mean({"sign": float(losses["D_real_sign"])}, info)["sign"]
                augmenter.ada.observe(sign, 1, t.batch_size)
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
            if info.is_main and (step % log.sample_every == 0 or step == total_steps):
                monitor.image(step, render_samples(ema if ema is not None else g_step, model, samples, device, t.precision))

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
                return run_dir

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
