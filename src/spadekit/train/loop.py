"""The training loop: Initialize -> Resume -> Train (G step, D step, EMA) -> Log / Sample / Save -> Export.

    train(load_config("tiny"), "runs/tiny")                        # a fresh run
    train(config, "runs/tiny", resume=True)                        # continue from the newest checkpoint

`train()` reads from top to bottom; the pieces it calls live beside it: `batching` (dataset and
resumable micro-batches), `steps` (the G and D updates, the EMA), `monitor` (progress bar, metrics,
TensorBoard, sample grids), `export` (model folders), `checkpoint` and `distributed`.

What goes wrong ends with one SpadekitError that says what, where, and how to go on (the faults
and their tests: docs/reliability.md): a second trainer on the folder is refused (RUN_DIR/.lock); an
unreadable newest checkpoint is set aside and the newest good one resumed; NaN / Inf losses stop the
run before their update (or skip it, train.skip_nonfinite times) and no checkpoint with a non-finite
weight is written; a full disk, an unreadable training file or a dead data worker stop it with the
newest checkpoint intact.

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
import dataclasses
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spadekit import SpadekitError
from spadekit.augment import DiscriminatorAugment
from spadekit.config import ModelConfig
from spadekit.fileio import WriteError
from spadekit.labels import LabelSet
from spadekit.models import SPADEModel
from spadekit.models.spade_model import load_state, read_weights
from spadekit.precision import fast_bf16, resolve_training_precision
from spadekit.train import checkpoint as ckpt
from spadekit.train import distributed as dist_utils
from spadekit.train.batching import EpochBatches, StepLayout, build_dataset, step_inputs
from spadekit.train.config import TrainConfig, save_config
from spadekit.train.export import export_model
from spadekit.train.monitor import Monitor, fixed_sample_batch, render_samples
from spadekit.train.steps import GeneratorStep, discriminator_step, ema_update, generator_step

# ---- the networks to train ------------------------------------------------------------------------
NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def load_init_weights(model: SPADEModel, folder: str | os.PathLike) -> list[str]:
    """Start a run from a model folder's weights (train.init_from): returns the networks loaded.

    Every parameter must be present with the same shape; normalisation statistics may be missing (a
    model trained with instance norm starting a batch-norm run) and then start fresh. `folder` may be
    a bundled model's name ("default")."""
    from spadekit.inference import BUNDLED_MODELS, resolve_model_path

    folder = resolve_model_path(folder) if str(folder) in BUNDLED_MODELS else Path(folder)
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
        state = read_weights(path)
        if name == "generator":
            state = widened_to(state, net, folder)
        own = net.state_dict()
        for key in own:
            if key not in state and key.rsplit(".", 1)[-1] in NORM_BUFFERS:
                state[key] = own[key]
        load_state(net, state, f"train.init_from {path}", built_from="this run's config",
                   mismatch_hint="; the model folder must have the same architecture and widths as the model section")
        loaded.append(name)
    return loaded


# what must match for a generator's weights to widen to another's min_width
WIDENING_KEEPS = ("labels", "use_instance", "arch", "ngf", "num_upsampling_layers", "crop_size", "aspect_ratio", "use_vae",
                  "z_dim", "norm", "spade_hidden", "spade_kernel", "noise_3d", "spectral_norm")


def widened_to(state: dict, generator: nn.Module, folder: Path) -> dict:
    """`state` (the generator of model folder `folder`) widened to `generator` when the folder's model has a
    smaller min_width and is otherwise the same generator (`spadekit.models.widen`); else `state` as it is."""
    path = folder / "config.json"
    if not path.is_file():
        return state
    try:
        theirs = ModelConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, json.JSONDecodeError):
        return state  # load_state then names the mismatch
    ours = generator.config
    same = all(getattr(theirs, f) == getattr(ours, f) for f in WIDENING_KEEPS)
    if theirs.min_width >= ours.min_width or not same:
        return state
    from spadekit.models.widen import widen_generator_state

    return widen_generator_state(state, generator)


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
    """SIGTERM / SIGINT ask the loop to save a checkpoint and stop at the end of the current step.

    quiet_workers(): torch's DataLoader installs a SIGCHLD handler that raises wherever the process is when a
    worker dies (inside an optimiser step, or inside the loader's own exception handling, where it once
    crashed the interpreter); with it off, the loader reports the death from `next()` within seconds.
    The handler found on entry is restored on exit."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        if self._previous and signal.getsignal(signal.SIGCHLD) is not None:  # None: set outside Python, left alone
            self._previous[signal.SIGCHLD] = signal.getsignal(signal.SIGCHLD)
        return self

    def quiet_workers(self) -> None:
        if signal.SIGCHLD in self._previous:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)

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
    info = dist_utils.init(config.train.device)
    # One trainer per run folder: rank 0 holds the lock for all processes, and all of them hear a refusal.
    lock = refusal = None
    if info.is_main:
        try:
            lock = ckpt.RunLock(run_dir)
        except SpadekitError as error:
            refusal = error
    if dist_utils.broadcast_flag(refusal is not None, info):
        raise refusal or SpadekitError(f"{run_dir} is in use by another trainer (rank 0 could not lock {run_dir / ckpt.LOCK_NAME})")
    try:
        return _run(config, run_dir, resume, dataset, info)
    finally:
        if lock is not None:
            lock.release()


# entries a checkpoint needs for an exact resume (older ones may lack "augment" and the fault counters)
RESUME_KEYS = ("step", "epoch", "step_in_epoch", "g", "d", "opt_g", "opt_d", "sched_g", "sched_d",
               "scaler_g", "scaler_d", "noise", "rng")


def _run(config: TrainConfig, run_dir: Path, resume: bool, dataset, info: dist_utils.DistInfo) -> Path:
    """`train` under the run lock: Initialize, Resume, Train, Export."""
    t, log = config.train, config.log

    # Initialize: precision, seeds, threads --------------------------------------------------------
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
    if config.data.skip_bad_files:
        if not hasattr(dataset, "skip_bad_files"):
            raise SpadekitError(f"data.skip_bad_files: this dataset ({type(dataset).__name__}) cannot skip files; turn the option off")
        dataset.skip_bad_files = True  # before the data workers copy the dataset
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
    step = nonfinite_skips = 0
    if resume:
        unreadable: list[tuple[Path, SpadekitError]] = []
        found = ckpt.load_latest(run_dir, RESUME_KEYS, on_skip=lambda path, error: unreadable.append((path, error)))
        if found is None and unreadable:
            raise SpadekitError(
                f"{run_dir}: none of its {len(unreadable)} checkpoint(s) can be read (newest: {unreadable[0][1]}); "
                "nothing was started: restore a checkpoint from a copy, or start a new run in another --out"
            )
        dist_utils.barrier()  # every process has read its checkpoint before rank 0 moves bad ones aside
        if info.is_main:
            for path, error in unreadable:
                kept = ckpt.set_aside(path)
                print(f"note: {error}; skipped and kept as {kept.relative_to(run_dir)}", file=sys.stderr, flush=True)
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
            # The config's learning rates hold on resume (the saved states carry the old ones): lowering them
            # is how a run that diverged goes on. Unchanged, this computes the very rates the scheduler would.
            for sched, lr in ((sched_g, lr_g), (sched_d, lr_d)):
                sched.base_lrs = [lr] * len(sched.optimizer.param_groups)
                for group in sched.optimizer.param_groups:
                    group["initial_lr"], group["lr"] = lr, lr * schedule(sched.last_epoch)
            scaler_g.load_state_dict(state["scaler_g"])
            scaler_d.load_state_dict(state["scaler_d"])
            noise.set_state(state["noise"])
            if state.get("augment") is not None:
                augmenter.load_state_dict(state["augment"])
            ckpt.set_rng_state(state["rng"])
            step = int(state["step"])
            nonfinite_skips = int(state.get("nonfinite_skips", 0))
            batches.seek(int(state["epoch"]), int(state["step_in_epoch"]))
            if info.is_main:
                print(f"resuming {run_dir} from {path.name} (step {step})", flush=True)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    monitor = None

    def wind_up() -> None:
        """On any fault: end the data workers at once (they ignore SIGTERM, so none may outlive the run; seeking
        drops the loader) and close the progress bar, so the error is a line of its own. A dead worker is
        reported by torch's SIGCHLD handler wherever the process is, so it may interrupt this too."""
        for action in (lambda: batches.seek(batches.epoch, batches.step_in_epoch), monitor.close if monitor else None):
            try:
                if action is not None:
                    action()
            except RuntimeError as error:
                if not _worker_died(error):
                    raise

    with _run_faults(run_dir, lambda: step, wind_up):
        if info.is_main:
            save_config(config, run_dir / "config.yaml")
        monitor = Monitor(run_dir, config, step, total_steps, info.is_main)
        # Fixed sample batch: labels, photos and z, kept in the run folder so a resumed run shows the same.
        samples = fixed_sample_batch(run_dir, dataset, config, mconfig, info)

    def note(text: str) -> None:
        if info.is_main:
            monitor.message(f"note: {text}", file=sys.stderr)
        else:
            print(f"note (rank {info.rank}): {text}", file=sys.stderr, flush=True)

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
            "nonfinite_skips": nonfinite_skips, "config": config.to_dict(), "model_config": mconfig.to_dict(),
        }

    def save(reason: str) -> None:
        # Every process checks its own (identical) weights, so all of them stop together.
        trained = {"g": g_step.state_dict(), "d": discriminator.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                   "opt_g": opt_g.state_dict()["state"], "opt_d": opt_d.state_dict()["state"]}
        bad = ckpt.first_nonfinite(trained, trained)
        if bad is not None:
            raise SpadekitError(
                f"step {step}: {bad} holds NaN or Inf, so no checkpoint was written; {_newest(run_dir)}: lower the "
                "learning rates (train.lr_g / train.lr_d) or use train.precision fp32, then continue with --resume"
            )
        if info.is_main:
            path = ckpt.save_checkpoint(run_dir, step, checkpoint_state(), log.keep_last)
            monitor.message(f"step {step}: saved {path.relative_to(run_dir)} ({reason})")
        dist_utils.barrier()

    # Train ----------------------------------------------------------------------------------------
    g_step.train()
    discriminator.train()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    skipped_files: dict[str, int] = {}  # data.skip_bad_files: what was skipped, how often
    last_save_time = time.monotonic()
    last_log_time, last_log_step = time.monotonic(), step
    with _StopRequest() as stop, _run_faults(run_dir, lambda: step, wind_up):
        while step < total_steps:
            try:
                micro_batches = batches.next_step()
            except SpadekitError as error:
                skip = "" if config.data.skip_bad_files else " (or let unreadable files be skipped: data.skip_bad_files=true)"
                raise SpadekitError(
                    f"step {step + 1}: {_worker_message(error)}; {_newest(run_dir)}: replace or remove the file, then continue "
                    f"with --resume{skip}"
                ) from None
            if config.data.num_workers:
                stop.quiet_workers()  # after the loader of an epoch installed its handler
            for reason in (r for batch in micro_batches for r in batch.pop("skipped", ()) if r):
                skipped_files[reason] = skipped_files.get(reason, 0) + 1
                if skipped_files[reason] == 1:
                    note(f"step {step + 1}: skipped an unreadable training pair, {reason} "
                         f"({sum(skipped_files.values())} skip(s) so far)")
            inputs = step_inputs(micro_batches, model, noise, layout, info)
            losses: dict[str, torch.Tensor] = {}
            fakes = []
            finite = True  # both updates check their losses before they apply (one fused check each)
            if step % t.d_steps_per_g == 0:
                fakes, losses, finite = generator_step(g_ddp, g_step, discriminator, vgg, inputs, opt_g, scaler_g, t, layout, device, augmenter)
                if finite and ema is not None:
                    ema_update(ema, g_step, 0.0 if step < t.ema_start else t.ema_decay)
            if finite:
                d_losses, finite = discriminator_step(d_ddp, discriminator, g_step, inputs, fakes, opt_d, scaler_d, t, layout, device, augmenter)
                losses.update(d_losses)
            if not finite:
                bad = [f"{k} = {float(v)}" for k, v in losses.items() if not math.isfinite(float(v))]
                named = f"loss{'es' if len(bad) > 1 else ''} {', '.join(bad)}"
                if nonfinite_skips >= t.skip_nonfinite:
                    used = f" after {nonfinite_skips} skipped step(s), all train.skip_nonfinite allows" if t.skip_nonfinite else ""
                    fp32 = " or use train.precision fp32" if t.precision != "fp32" else ""
                    raise SpadekitError(
                        f"step {step + 1}: {named}{used}; training diverged, the update was not applied and no checkpoint "
                        f"written; {_newest(run_dir)}: lower the learning rates (train.lr_g / train.lr_d){fp32} (or let a few "
                        "such steps be skipped: train.skip_nonfinite=N), then continue with --resume"
                    )
                nonfinite_skips += 1
                note(f"step {step + 1}: {named}: its updates were skipped ({nonfinite_skips} of train.skip_nonfinite "
                     f"{t.skip_nonfinite})")
            else:
                if augmenter.policy:
                    losses["aug_p"] = torch.tensor(augmenter.p)  # the probability this step used
                if augmenter.ada is not None:  # ADA: r_t over all processes' reals
                    sign = dist_utils.all_reduce_mean({"sign": float(losses["D_real_sign"])}, info)["sign"]
                    augmenter.ada.observe(sign, 1, t.batch_size)
                for k, v in losses.items():  # summed on the device, read at log time
                    sums[k] = sums.get(k, 0.0) + v.detach().double()
                count += 1
            sched_g.step()
            sched_d.step()
            step += 1
            monitor.step()

            # Log --------------------------------------------------------------------------------
            if step % log.log_every == 0 or step == total_steps:
                means = dist_utils.all_reduce_mean({k: float(v) / count for k, v in sums.items()}, info)
                now = time.monotonic()
                record = {
                    "step": step, "epoch": batches.epoch, "time": time.time(),
                    "it_per_s": (step - last_log_step) / max(now - last_log_time, 1e-9),
                    "lr_G": opt_g.param_groups[0]["lr"], "lr_D": opt_d.param_groups[0]["lr"],
                    **means,
                }
                if nonfinite_skips:
                    record["nonfinite_skips"] = nonfinite_skips
                if skipped_files:
                    record["skipped_files"] = sum(skipped_files.values())
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

        # Export: the EMA generator (and encoder) with the discriminator, as a model folder -------
        final = run_dir / "final"
        if info.is_main:
            source = ema if ema is not None else g_step
            export_model(mconfig, source.state_dict(), discriminator.state_dict(), final)
            skips = f"; skipped unreadable training pairs {sum(skipped_files.values())} time(s)" if skipped_files else ""
            monitor.message(f"done: {total_steps} steps; model exported to {final}{skips}")
    monitor.close()
    dist_utils.barrier()
    dist_utils.shutdown()
    return final


# ---- faults ---------------------------------------------------------------------------------------
def _newest(run_dir: Path) -> str:
    saved = ckpt.list_checkpoints(run_dir)
    return f"the newest checkpoint {saved[-1][1].name} (step {saved[-1][0]}) is intact" if saved else "no checkpoint was written yet"


def _worker_message(error: SpadekitError) -> str:
    """The message of a SpadekitError raised in a data worker: the DataLoader re-raises it with the worker's
    traceback in front, which a user does not need."""
    text, marker = str(error), "SpadekitError: "
    if text.startswith("Caught ") and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


def _release_loader_frames(error: BaseException | None) -> None:
    """Clear the DataLoader's own frames from an error's tracebacks (and those of the errors it replaced): they
    hold the loader, which must shut its workers down now, not when the caller lets go of the error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_globals.get("__name__", "").startswith("torch.utils.data"):
                try:
                    tb.tb_frame.clear()
                except RuntimeError:  # still running
                    pass
            tb = tb.tb_next
        error = error.__context__ or error.__cause__


def _worker_died(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and str(error).startswith("DataLoader worker")


@contextlib.contextmanager
def _run_faults(run_dir: Path, current_step: Callable[[], int], cleanup: Callable[[], None]):
    """A run file that cannot be written (a full disk) or a data worker that died ends the run with one message
    naming the step, what failed and the newest checkpoint, which stays intact. On any error `cleanup()` runs
    first (the error's traceback would keep the run's data workers alive)."""
    try:
        yield
    except BaseException as error:
        _release_loader_frames(error)
        cleanup()
        if isinstance(error, WriteError):
            fix = "free space" if error.disk_full else "fix the folder"
            raise SpadekitError(
                f"step {current_step()}: cannot write {error.what} {error.path}: {error.reason}; {_newest(run_dir)}: {fix}, "
                "then continue with --resume"
            ) from None
        if _worker_died(error):
            reason = str(error).strip().splitlines()[0].rstrip(". ")
            raise SpadekitError(
                f"step {current_step() + 1}: a data-loading worker process died ({reason}); {_newest(run_dir)}: continue "
                "with --resume (if the system ran out of memory, lower data.num_workers)"
            ) from None
        raise
