"""Train the 4x upscaler on patches of the labelled landscape training photos, within a CPU-time budget.

    OMP_NUM_THREADS=1 nice -n 5 python tools/train_upscaler.py --out runs/upscaler --cpu-minutes 40
    python tools/train_upscaler.py --out runs/upscaler --export src/spadekit/pretrained/upscaler-x4

Each step draws a batch of patches (spadekit.upscale.patches.training_patch, photo pixels only from
spadekit/assets/landscapes, never the held-out photos), shrinks them 4x with a random degradation
(spadekit.upscale.degrade.degrade), and fits the network to the patch with L1, plus LPIPS after
--lpips-after CPU minutes. The budget is CPU time (user + system of this process, summed over
resumes), so a run under load gets as much training as an idle one; the learning rate decays with
the budget spent (cosine). A checkpoint (RUN/checkpoint.pt: weights, optimiser, step, CPU seconds,
options) is written every --checkpoint-seconds and at the end; rerunning with the same --out resumes
it exactly (batches are drawn from the seed and the step number). --export writes the model folder.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spadekit import SpadekitError
from spadekit.fileio import atomic_write, atomic_write_text
from spadekit.imageio import from_uint8
from spadekit.upscale import BUNDLED_UPSCALER, bundled_upscaler_path, load_upscaler
from spadekit.upscale.degrade import degrade
from spadekit.upscale.losses import upscaler_loss
from spadekit.upscale.model import Upscaler, UpscalerConfig
from spadekit.upscale.patches import training_patch, training_photo_names

CHECKPOINT = "checkpoint.pt"
SCALE = 4


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.jsonl); resumed when it holds a checkpoint")
    parser.add_argument("--arch", default="compact", help="compact or residual")
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--num-convs", type=int, default=12)
    parser.add_argument("--patch", type=int, default=32, help="input patch side (the photo patch is 4x)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--l1-weight", type=float, default=1.0)
    parser.add_argument("--lpips-weight", type=float, default=0.0)
    parser.add_argument("--lpips-after", type=float, default=0.0, help="CPU minutes of L1 alone before LPIPS joins")
    parser.add_argument("--lpips-batch", type=int, default=4, help="batch size once LPIPS has joined")
    parser.add_argument("--lpips-patch", type=int, default=24, help="input patch side once LPIPS has joined")
    parser.add_argument("--clean-share", type=float, default=0.4, help="share of inputs shrunk without degradation")
    parser.add_argument("--cpu-minutes", type=float, default=40.0, help="total CPU-time budget, over all resumes")
    parser.add_argument("--checkpoint-seconds", type=float, default=120.0)
    parser.add_argument("--snapshot-minutes", type=float, default=0.0,
                        help="also write the model folder RUN/snapshots/cpuMMM (CPU seconds / 60, rounded) every this many CPU minutes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", default=None,
                        help="start a new run from another run's checkpoint.pt weights (e.g. an L1 run before LPIPS fine-tuning), "
                             "a model folder, or the bundled upscaler's name (upscaler-x4)")
    parser.add_argument("--export", default=None, help="write the model folder (config.json + model.safetensors) here and stop")
    return parser.parse_args(argv)


OPTIONS = ("arch", "channels", "num_convs", "patch", "batch", "lr", "l1_weight", "lpips_weight", "lpips_after",
           "lpips_batch", "lpips_patch", "clean_share", "cpu_minutes", "seed")


def cpu_seconds() -> float:
    times = __import__("os").times()
    return times.user + times.system


def batch_at(step: int, seed: int, patch: int, batch: int, clean_share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The (input, photo) batch of a step, [B,3,p,p] and [B,3,4p,4p] in [-1,1], drawn from (seed, step) alone."""
    rng = np.random.default_rng([seed, step])
    photos = [training_patch(rng, patch * SCALE) for _ in range(batch)]
    inputs = [degrade(p, SCALE, rng, clean_share) for p in photos]
    return from_uint8(np.stack(inputs)), from_uint8(np.stack(photos))


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda p: torch.save(state, p))


def initial_weights(model: Upscaler, source: str) -> dict:
    """Load a new run's starting weights from another run's checkpoint.pt, a model folder or the bundled
    upscaler's name; returns what the model's config records about them."""
    if str(source) == BUNDLED_UPSCALER or Path(source).is_dir():
        start = load_upscaler(source)
        if start.config != model.config:
            raise SpadekitError(f"--init-from {source}: its network ({start.config}) differs from this run's ({model.config}); "
                                f"pass the same --arch, --channels and --num-convs")
        model.load_state_dict(start.state_dict())
        folder = bundled_upscaler_path() if str(source) == BUNDLED_UPSCALER else Path(source)
        training = json.loads((folder / "config.json").read_text()).get("training", {})
        return {"model": str(source), "training": training}
    path = Path(source)
    if not path.is_file():
        raise SpadekitError(f"--init-from {source}: no such checkpoint file or model folder")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    return {"checkpoint": str(source), "steps": int(checkpoint["step"]),
            "cpu_minutes": round(float(checkpoint["cpu_seconds"]) / 60, 1), "options": json.loads(checkpoint["options"])}


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    options = {k: getattr(args, k) for k in OPTIONS}

    # Initialize: a fresh model, or the run's checkpoint (its options win, but the budget may grow)
    checkpoint_path = out / CHECKPOINT
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True) if checkpoint_path.is_file() else None
    if state is not None:
        saved = json.loads(state["options"])
        changed = sorted(k for k in OPTIONS if k != "cpu_minutes" and saved[k] != options[k] and not args.export)
        if changed:
            print(f"note: resuming {checkpoint_path} with its own options; ignoring --{', --'.join(c.replace('_', '-') for c in changed)}")
        options = {**saved, "cpu_minutes": options["cpu_minutes"]}
        if args.init_from and saved.get("init_from", {}).get("checkpoint") != str(args.init_from):
            print(f"note: {checkpoint_path} exists; resuming it and ignoring --init-from")
    elif args.export:
        raise SpadekitError(f"{checkpoint_path}: no checkpoint to export; train first with --out {out}")
    config = UpscalerConfig(arch=options["arch"], channels=options["channels"], num_convs=options["num_convs"], scale=SCALE)
    torch.manual_seed(options["seed"])
    model = Upscaler(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=options["lr"], betas=(0.9, 0.99))
    step, spent = 0, 0.0
    if state is None and args.init_from:
        options["init_from"] = initial_weights(model, args.init_from)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, spent = int(state["step"]), float(state["cpu_seconds"])

    def export(folder) -> None:
        extra = {"training": {"photos": training_photo_names(), "photo_folder": "spadekit/assets/landscapes/photos",
                              "steps": step, "cpu_minutes": round(spent / 60, 1),
                              **{k: options[k] for k in OPTIONS if k not in ("arch", "channels", "num_convs", "cpu_minutes")},
                              **({"init_from": options["init_from"]} if "init_from" in options else {})}}
        model.save_pretrained(folder, extra=extra)

    if args.export:
        export(args.export)
        print(f"wrote {args.export} (step {step}, {spent / 60:.1f} CPU minutes)")
        return 0

    lpips = None
    if options["lpips_weight"]:
        from spadekit.eval.diversity import LPIPS

        lpips = LPIPS()
    budget = options["cpu_minutes"] * 60
    start, last_save = cpu_seconds() - spent, time.monotonic()
    log_path = out / "log.jsonl"
    out.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:
        save_checkpoint(checkpoint_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                                          "cpu_seconds": cpu_seconds() - start, "options": json.dumps(options)})

    # Train: until the CPU budget is spent
    from tqdm import tqdm

    bar = tqdm(total=round(budget), initial=round(min(spent, budget)), unit="cpu-s", desc="train-upscaler", file=sys.stderr)
    model.train()
    log_lines = []
    while (spent := cpu_seconds() - start) < budget:
        progress = spent / budget
        for group in optimizer.param_groups:
            group["lr"] = options["lr"] * 0.5 * (1 + math.cos(math.pi * progress))
        # LPIPS (a VGG16 pass forward and back, ~15x the network's cost) joins late, on smaller batches
        with_lpips = bool(options["lpips_weight"]) and spent >= options["lpips_after"] * 60
        patch, size = (options["lpips_patch"], options["lpips_batch"]) if with_lpips else (options["patch"], options["batch"])
        small, photo = batch_at(step, options["seed"], patch, size, options["clean_share"])
        lpips_weight = options["lpips_weight"] if with_lpips else 0.0
        loss, terms = upscaler_loss(model(small), photo, lpips, options["l1_weight"], lpips_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(round(cpu_seconds() - start) - bar.n)
        bar.set_postfix(step=step, **{k: f"{v:.4f}" for k, v in terms.items()})
        log_lines.append(json.dumps({"step": step, "cpu_seconds": round(cpu_seconds() - start, 1), **terms}))

        if args.snapshot_minutes and int(spent / (60 * args.snapshot_minutes)) < int((cpu_seconds() - start) / (60 * args.snapshot_minutes)):
            spent = cpu_seconds() - start
            export(out / "snapshots" / f"cpu{round(spent / 60):03d}")

        # Save: every --checkpoint-seconds of wall time
        if time.monotonic() - last_save >= args.checkpoint_seconds:
            checkpoint()
            with open(log_path, "a") as handle:
                handle.write("\n".join(log_lines) + "\n")
            log_lines, last_save = [], time.monotonic()
    checkpoint()
    if log_lines:
        with open(log_path, "a") as handle:
            handle.write("\n".join(log_lines) + "\n")
    bar.close()
    atomic_write_text(out / "done.json", json.dumps({"step": step, "cpu_seconds": cpu_seconds() - start}) + "\n")
    print(f"trained {step} steps in {(cpu_seconds() - start) / 60:.1f} CPU minutes; checkpoint {checkpoint_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpadekitError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
