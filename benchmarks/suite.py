"""Speed and memory of inference and training, fast path against a plain eager float32 baseline.

    python benchmarks/suite.py --suite default          # what `make bench` runs
    python benchmarks/suite.py --suite scaling --plot docs/images/perf_scaling.png
    python benchmarks/suite.py --labels 151 --ngf 64 --size 256 --mode train [--checkpointing] [--path fast]
    python benchmarks/suite.py --model default [--compile]
    python benchmarks/suite.py --suite any-size         # the bundled model at 256x256 .. 2048x512 (fp32)
    python benchmarks/suite.py --suite any-size-methods # how one z fills a panorama: grid vs windows
    python benchmarks/suite.py --suite upscale          # upscaler-x4 against bicubic, 256 -> 1024

Each case runs in its own subprocess (so peak memory, read from the OS, belongs to that case alone)
and prints one JSON line: median and minimum seconds per call and peak resident memory. A comparison
prints a table of ratios and, last, one line `{"ratios": [...]}`. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.data.labels import Label, LabelSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # BatchNorm calibration shared with the tests

from batch_norm import calibrate_batch_norm  # noqa: E402  (after the path above)


@dataclass
class Case:
    name: str
    num_labels: int = 151
    ngf: int = 64
    spade_hidden: int = 128
    size: int = 256
    batch: int = 1
    mode: str = "infer"  # infer | train
    path: str = "fast"  # fast | baseline
    use_vae: bool = False
    z_dim: int = 256
    norm: str = "batch"
    model: str | None = None  # a model folder or "default": overrides the numbers above
    repeats: int = 5
    threads: int = 2
    calibrate: bool = True  # infer: BatchNorm statistics from a few train-mode passes first (calibrate_batch_norm)
    checkpointing: bool = False  # train: activation checkpointing of the generator blocks
    compile: bool = False  # infer, fast path: torch.compile'd SPADE elementwise kernels (spadekit.layers.spade.compile_kernels)
    dtype: str = "auto"  # fast path's compute dtype: auto = what the library picks here (bfloat16 only where it is native)


def fast_dtype(case: Case) -> torch.dtype:
    """The fast path's compute dtype: bfloat16 where the CPU runs it natively (AVX-512 BF16 / AMX), else float32
    (emulated bfloat16 is several times slower than float32), unless the case names one."""
    if case.dtype == "auto":
        from spadekit.precision import fast_bf16

        return torch.bfloat16 if fast_bf16(torch.device("cpu")) else torch.float32
    return getattr(torch, case.dtype)


SUITES = {
    "default": [
        Case("ade20k-256-ngf64", num_labels=151, ngf=64, size=256),
        Case("ade20k-256-ngf64-compiled", num_labels=151, ngf=64, size=256, compile=True),
        Case("128-ngf32", num_labels=151, ngf=32, size=128),
        Case("default-model", model="default"),
        Case("default-model-compiled", model="default", compile=True),
        Case("ade20k-256-ngf64", num_labels=151, ngf=64, size=256, mode="train", repeats=5),
        Case("ade20k-256-ngf64-ckpt", num_labels=151, ngf=64, size=256, mode="train", repeats=3, checkpointing=True),
        Case("128-ngf32", num_labels=151, ngf=32, size=128, mode="train", checkpointing=True),
    ],
    "scaling": [Case(f"scale-{s}", ngf=32, size=s, repeats=3) for s in (128, 256, 384, 512)],
}


def build_model(case: Case):
    from spadekit.models import SPADEModel

    if case.model:
        from spadekit.inference import resolve_model_path

        return SPADEModel.from_pretrained(resolve_model_path(case.model))
    labels = LabelSet("bench", [Label(i, f"c{i}", (i % 256, 0, 0)) for i in range(case.num_labels)], None, False)
    return SPADEModel(ModelConfig(
        labels=labels.to_dict(), ngf=case.ngf, crop_size=case.size, use_vae=case.use_vae, z_dim=case.z_dim,
        norm=case.norm, spade_hidden=case.spade_hidden, encoder_ndf=case.ngf, encoder_size=256, encoder_layers=6,
        d_ndf=case.ngf,
    ))


def _label(model, batch: int) -> torch.Tensor:
    """Eight horizontal bands of several classes, the same for every case and path."""
    h, w = model.output_size
    n = model.labels.num_channels
    label = torch.zeros(batch, 1, h, w, dtype=torch.long)
    for i in range(8):
        label[:, :, i * h // 8:(i + 1) * h // 8] = (i * 7) % n
    return label


def run_case(case: Case) -> dict:
    """Time one case in this process."""
    torch.set_num_threads(case.threads)
    torch.manual_seed(0)
    model = build_model(case)
    label = _label(model, case.batch)
    z = torch.randn(case.batch, model.config.z_dim) if model.config.use_vae else None
    if case.mode == "infer":
        if case.calibrate:
            calibrate_batch_norm(model)
        step = _infer_step(model, label, z, case)
    else:
        step = _train_step(model, label, z, case)
    losses = [step()]  # warm-up
    times = []
    for _ in range(case.repeats):
        start = time.perf_counter()
        output = step()
        times.append(time.perf_counter() - start)
        losses.append(output)
    result = {**asdict(case), "median_s": statistics.median(times), "min_s": min(times),
              "peak_rss_mb": _peak_rss_mb()}
    live = _live_peak_mb(step, 2)
    if live is not None:
        result["peak_live_mb"] = live
    if case.mode == "infer":
        result["output_checksum"] = float(output.float().abs().mean())
    else:
        result["losses"] = losses  # per iteration, warm-up first
    return result


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _live_peak_mb(step, calls: int) -> float | None:
    """Peak RSS over `calls` more steps with glibc returning every freed block over 256 KiB to the OS, so
    that it counts live memory, not what the allocator kept after frees (Linux + glibc; else None)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD (fixed from now on)
        libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the peak RSS (VmHWM)
    except (OSError, AttributeError):
        return None
    for _ in range(calls):
        step()
    return _peak_rss_mb()


def _infer_step(model, label, z, case: Case):
    model.eval()
    if case.path == "baseline":
        def step():
            with torch.no_grad():
                semantic = model.semantic(label)  # one-hot built per call, as the reference does
                return model.generator(semantic, z)
        return step
    from spadekit.layers.spade import compile_kernels
    from spadekit.models import optimize_for_inference
    from spadekit.runtime_memory import keep_freed_memory

    keep_freed_memory()
    fast = optimize_for_inference(model.generator, fast_dtype(case))
    if case.compile and not compile_kernels():
        raise RuntimeError("torch.compile failed here (is a C++ compiler installed?); run without --compile")

    def step():
        with torch.inference_mode():
            return fast(model.label_maps(label), z).float()
    return step


def _train_step(model, label, z, case: Case):
    """One full iteration as the trainer runs it: G step (hinge + feature matching + perceptual, D frozen),
    then D step (hinge on fake and real in one batch, the G step's fake detached)."""
    from spadekit import losses
    from spadekit.layers.lookup import LabelMaps
    from spadekit.models.vgg import VGGFeatures

    model.train()
    generator, discriminator = model.generator, model.discriminator
    vgg = VGGFeatures("vgg16", random_init=True)
    h, w = model.output_size
    real = torch.rand(label.shape[0], 3, h, w) * 2 - 1
    fast = case.path == "fast"
    low_precision = fast and fast_dtype(case) == torch.bfloat16
    generator.activation_checkpointing = fast and case.checkpointing
    # fused Adam: one kernel per parameter instead of ~8 passes over it (same update, less time and memory)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.0, 0.9), fused=fast or None)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=4e-4, betas=(0.0, 0.9), fused=fast or None)
    if fast:
        from spadekit.layers.spectral_norm import use_fast_spectral_norm
        from spadekit.runtime_memory import keep_freed_memory

        keep_freed_memory()
        use_fast_spectral_norm(model)
        # weights stay in the default layout (activations are channels_last): measured as fast as channels_last
        # weights, which fused Adam copies to contiguous and back every step
        real = real.contiguous(memory_format=torch.channels_last)

    def ctx():
        # as the trainer: no cast cache with checkpointing (it would keep a bf16 copy of every weight alive
        # through the step); without, each weight is cast once per context instead of once per use
        return (torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=not case.checkpointing) if low_precision
                else contextlib.nullcontext())

    def generate(semantic):
        return generator(LabelMaps.from_semantic(semantic, model.use_instance) if fast else semantic, z)

    def step():
        semantic = model.semantic(label)
        if fast:
            semantic = semantic.contiguous(memory_format=torch.channels_last)
        # G step
        opt_g.zero_grad(set_to_none=True)
        discriminator.requires_grad_(False)
        with ctx():
            fake = generate(semantic)
            pred_fake = discriminator(semantic, fake)
            with torch.no_grad():
                pred_real = discriminator(semantic, real)
            fake_features = vgg(fake)
            with torch.no_grad():
                real_features = vgg(real)
        pred_fake = [[f.float() for f in scale] for scale in pred_fake]
        pred_real = [[f.float() for f in scale] for scale in pred_real]
        g_gan = losses.hinge_loss(pred_fake, True, False)
        g_feat = losses.feature_matching_loss(pred_fake, pred_real)
        g_vgg = losses.perceptual_loss([f.float() for f in fake_features], [r.float() for r in real_features])
        (g_gan + g_feat + g_vgg).backward()
        opt_g.step()
        if fast:
            opt_g.zero_grad(set_to_none=True)  # G's gradients are not needed in the D step
        discriminator.requires_grad_(True)
        # D step
        opt_d.zero_grad(set_to_none=True)
        fake = fake.detach().float()
        with ctx():
            outputs = discriminator(torch.cat([semantic, semantic]), torch.cat([fake, real]))
        d_fake = losses.hinge_loss([[f.float()[:len(real)] for f in scale] for scale in outputs], False)
        d_real = losses.hinge_loss([[f.float()[len(real):] for f in scale] for scale in outputs], True)
        (d_fake + d_real).backward()
        opt_d.step()
        return {"G_gan": float(g_gan), "G_feat": float(g_feat), "G_vgg": float(g_vgg), "D_fake": float(d_fake), "D_real": float(d_real)}
    return step


def run_in_subprocess(case: Case) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--run-case", json.dumps(asdict(case))],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {**asdict(case), "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(cases: list[Case], paths=("baseline", "fast")) -> list[dict]:
    """Every case on both paths, side by side; returns one row per case with ratios (and PSNR / loss tracking)."""
    from tqdm import tqdm

    rows = []
    for case in tqdm(cases, desc="bench", unit="case"):
        results = {p: run_in_subprocess(replace(case, path=p)) for p in paths}
        for result in results.values():
            print(json.dumps(result), flush=True)
        base, fast = results["baseline"], results["fast"]
        row = {"case": case.name, "mode": case.mode, "size": case.size, "ngf": case.ngf, "checkpointing": case.checkpointing,
               "fast_dtype": str(fast_dtype(case)).removeprefix("torch.")}
        if "error" not in base and "error" not in fast:
            row.update(baseline_s=base["median_s"], fast_s=fast["median_s"], speedup=base["median_s"] / fast["median_s"],
                       baseline_mb=base["peak_rss_mb"], fast_mb=fast["peak_rss_mb"], memory_ratio=fast["peak_rss_mb"] / base["peak_rss_mb"])
            if "peak_live_mb" in base and "peak_live_mb" in fast:
                row.update(baseline_live_mb=base["peak_live_mb"], fast_live_mb=fast["peak_live_mb"],
                           live_memory_ratio=fast["peak_live_mb"] / base["peak_live_mb"])
            if case.mode == "infer":
                row["psnr_db"] = psnr_fast_vs_float32(case)
            else:
                row.update(loss_tracking(base["losses"], fast["losses"]))
        rows.append(row)
    return rows


def loss_tracking(baseline: list[dict], fast: list[dict]) -> dict:
    """Largest relative difference, over the iterations, of the total G and D losses (fast vs float32)."""
    def rel(keys):
        return max(abs(sum(f[k] for k in keys) - sum(b[k] for k in keys)) / max(abs(sum(b[k] for k in keys)), 1e-6)
                   for b, f in zip(baseline, fast))
    return {"g_loss_rel_diff": rel(("G_gan", "G_feat", "G_vgg")), "d_loss_rel_diff": rel(("D_fake", "D_real"))}


def format_table(rows: list[dict]) -> str:
    lines = [f"{'case':<27}{'mode':<7}{'fast dtype':>11}{'baseline s':>11}{'fast s':>9}{'speedup':>9}{'mem ratio':>10}{'live mem':>9}  tracking"]
    for r in rows:
        if "speedup" not in r:
            lines.append(f"{r['case']:<27}{r['mode']:<7}  failed (see the JSON lines above)")
            continue
        track = (f"PSNR {r['psnr_db']:.1f} dB" if "psnr_db" in r
                 else f"loss diff G {100 * r['g_loss_rel_diff']:.2f}% D {100 * r['d_loss_rel_diff']:.2f}%")
        lines.append(f"{r['case']:<27}{r['mode']:<7}{r['fast_dtype']:>11}{r['baseline_s']:>11.3f}{r['fast_s']:>9.3f}{r['speedup']:>8.2f}x"
                     f"{r['memory_ratio']:>10.2f}{r.get('live_memory_ratio', float('nan')):>9.2f}  {track}")
    return "\n".join(lines)


def psnr_fast_vs_float32(case: Case) -> float:
    """PSNR (dB) of the fast path's image against the float32 baseline's, same weights and input."""
    torch.manual_seed(0)
    model = build_model(case)
    label = _label(model, 1)
    z = torch.randn(1, model.config.z_dim) if model.config.use_vae else None
    if case.calibrate:
        calibrate_batch_norm(model)
    reference = _infer_step(model, label, z, replace(case, path="baseline"))()
    fast = _infer_step(model, label, z, replace(case, path="fast"))()
    mse = float(((fast - reference) / 2).pow(2).mean())  # images in [-1, 1] -> [0, 1]
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


# ---- Any size: the bundled model at sizes other than its training size --------------------------------

ANY_SIZES = [(256, 256), (512, 512), (1024, 256), (1024, 512), (2048, 512)]  # (width, height)


def _painting_at(name: str, width: int, height: int):
    """A starter painting (256x256 raw ids) nearest-resized to width x height."""
    import numpy as np
    from PIL import Image

    from spadekit.landscapes.paintings import load_painting

    return np.asarray(Image.fromarray(load_painting(name).astype(np.uint8)).resize((width, height), Image.NEAREST)).astype(np.int64)


def run_any_size(width: int, height: int, repeats: int = 3, threads: int = 2) -> dict:
    """Seconds per image (median of `repeats`, after a warm-up) and peak RSS of `Pipeline.run` at one size, fp32."""
    from spadekit.inference import Pipeline

    torch.set_num_threads(threads)
    pipe = Pipeline.from_pretrained("default", dtype="float32")
    ids = _painting_at("mountains", width, height)
    loaded_mb = _peak_rss_mb()
    pipe.run(ids, seed=0, size=(width, height))  # warm-up
    times, cpu = [], []
    for k in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        pipe.run(ids, seed=k, size=(width, height))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)  # less sensitive than wall time to other work on the cores
    return {"width": width, "height": height, "median_s": statistics.median(times), "min_s": min(times),
            "cpu_s": statistics.median(cpu), "peak_rss_mb": _peak_rss_mb(), "loaded_rss_mb": loaded_mb}


def any_size_table(repeats: int = 3, threads: int = 2) -> list[dict]:
    """Every size of ANY_SIZES in its own process; per-pixel time and memory as ratios to 256x256."""
    rows = []
    for width, height in ANY_SIZES:
        spec = json.dumps({"width": width, "height": height, "repeats": repeats, "threads": threads})
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--run-any-size", spec], capture_output=True, text=True)
        if out.returncode != 0:
            raise SpadekitError(f"any-size case {width}x{height} failed: {out.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    base_pixels = base["width"] * base["height"]
    for row in rows:
        pixels = row["width"] * row["height"] / base_pixels
        row["pixels_ratio"] = pixels
        row["time_per_pixel_ratio"] = row["median_s"] / base["median_s"] / pixels
        row["cpu_per_pixel_ratio"] = row["cpu_s"] / base["cpu_s"] / pixels
        # what generating added on top of the loaded model and torch
        row["activation_mb"] = row["peak_rss_mb"] - row["loaded_rss_mb"]
        row["memory_per_pixel_ratio"] = row["activation_mb"] / (base["activation_mb"] * pixels)
    return rows


def format_any_size(rows: list[dict]) -> str:
    lines = ["| size | pixels (x 256x256) | s / image | CPU s / image | time per pixel (x 256x256) | CPU time per pixel (x 256x256) "
             "| peak RSS MB | generating MB | memory per pixel (x 256x256) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['width']}x{r['height']} | {r['pixels_ratio']:.0f} | {r['median_s']:.2f} | {r['cpu_s']:.2f} | "
                     f"{r['time_per_pixel_ratio']:.2f} | {r['cpu_per_pixel_ratio']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['activation_mb']:.0f} | {r['memory_per_pixel_ratio']:.2f} |")
    return "\n".join(lines)


def windows_generate(pipe, channels: torch.Tensor, seed: int, one_z: bool = False) -> torch.Tensor:
    """The alternative to growing the latent grid: overlapping windows of the training size (stride half a
    window) generated separately and blended with a Hann weight (which sums to one where two overlap).
    Window k uses seed + k (one_z: all use seed, so windows over the same map are copies)."""
    th, tw = pipe.size
    h, w = channels.shape[-2:]

    def starts(total, size):
        points = list(range(0, total - size + 1, size // 2))
        return points if points[-1] == total - size else points + [total - size]

    def hann(size):
        return torch.sin(torch.pi * (torch.arange(size) + 0.5) / size) ** 2

    weight = hann(th)[:, None] * hann(tw)[None, :]
    total = torch.zeros(1, 3, h, w)
    norm = torch.zeros(1, 1, h, w)
    k = 0
    for y in starts(h, th):
        for x in starts(w, tw):
            z = pipe.latents(1, seed if one_z else seed + k)
            window = pipe.generate_from_channels(channels[..., y:y + th, x:x + tw], z)
            total[..., y:y + th, x:x + tw] += window * weight
            norm[..., y:y + th, x:x + tw] += weight
            k += 1
    return total / norm


def segment_in_squares(segmenter, image: torch.Tensor) -> torch.Tensor:
    """Labels [1,H,W] of an image [1,3,H,W] read in H x H squares (the last one flush right), each as the
    segmenter reads a square output: a wide image is not squeezed into the segmenter's input width."""
    h, w = image.shape[-2:]
    labels = torch.zeros(1, h, w, dtype=torch.long)
    for x in list(range(0, w - h + 1, h)) + ([w - h] if w % h else []):
        labels[..., x:x + h] = segmenter.predict(image[..., x:x + h])
    return labels


def seam_scores(image: torch.Tensor, period: int) -> dict:
    """Where windows of width 2*period at stride `period` would leave traces, on one image [1,3,H,W]:
    jump: mean |x-gradient| at the window borders (x = k*period) over its mean elsewhere (1: no edge there);
    blur: sharpness (mean |gradient|) in 16-px bands around the points where two windows blend equally
    (x = k*period + period/2) over that in bands around window centres (1: no cross-fade softening)."""
    gray = image.float().mean(1)[0]
    dx = (gray[:, 1:] - gray[:, :-1]).abs().mean(0)  # dx[i]: between columns i and i+1
    dy = (gray[1:] - gray[:-1]).abs().mean(0)
    w = gray.shape[-1]
    borders = [x - 1 for x in range(period, w, period)]
    others = [i for i in range(w - 1) if i not in borders]
    sharp = dx + dy[:w - 1]  # per column

    def band(centres):
        return torch.cat([sharp[max(0, c - 8):c + 8] for c in centres]).mean()

    blend = [x for x in range(period // 2, w - period // 2, period)][1:]
    centres = [x for x in range(period, w - period, period)]
    return {"jump": float(dx[borders].mean() / dx[others].mean()), "blur": float(band(blend) / band(centres))}


def tiles_generate(pipe, channels: torch.Tensor, seed: int, variation: float = 0.5) -> torch.Tensor:
    """Another way to grow the latent grid: tiles of the trained grid side by side, tile k from its own
    z_k = sqrt(1 - v**2) z + v eps_k (eps_k from seed + 1000 + k: the style kept, the detail varied),
    cross-faded over two cells at each tile border. The generator's own latent_grid is swapped for the call."""
    import types

    import torch.nn.functional as F

    generator = pipe.model.generator
    z = pipe.latents(1, seed)

    def latent_grid(self, z, grid):
        sh, sw = self.latent_size
        count = 1 + max(0, -(-(grid[1] - sw) // (sw - 2)))  # each further tile adds sw - 2 cells
        zs = [z] + [(1 - variation ** 2) ** 0.5 * z + variation * pipe.latents(1, seed + 1000 + k) for k in range(1, count)]
        tiles = [self.input(zk.to(self.input.weight.dtype)).unflatten(1, (16 * self.config.ngf, sh, sw)) for zk in zs]
        row = tiles[0]
        for tile in tiles[1:]:
            fade = torch.linspace(0, 1, 4, dtype=row.dtype)  # two cells either side of the border
            blended = row[..., -2:] * (1 - fade[:2]) + tile[..., :2] * fade[:2]
            row = torch.cat([row[..., :-2], blended, tile[..., 2:]], dim=-1)
        row = row[..., :grid[1]]
        return row if row.shape[-2] == grid[0] else F.interpolate(row, size=tuple(grid), mode="bilinear", align_corners=False)

    generator.latent_grid = types.MethodType(latent_grid, generator)
    try:
        return pipe.generate_from_channels(channels, z)
    finally:
        del generator.latent_grid


def stretched_grid_generate(pipe, channels: torch.Tensor, seed: int) -> torch.Tensor:
    """The earlier rule of `SPADEGenerator.latent_grid`: the trained grid resized bilinearly to the whole
    larger grid (textures stretched by the full aspect factor). Swapped in for the call."""
    import types

    import torch.nn.functional as F

    generator = pipe.model.generator

    def latent_grid(self, z, grid):
        x = self.input(z.to(self.input.weight.dtype)).unflatten(1, (16 * self.config.ngf, *self.latent_size))
        return x if tuple(grid) == tuple(self.latent_size) else F.interpolate(x, size=tuple(grid), mode="bilinear", align_corners=False)

    generator.latent_grid = types.MethodType(latent_grid, generator)
    try:
        return pipe.generate_from_channels(channels, pipe.latents(1, seed))
    finally:
        del generator.latent_grid


def texture_anisotropy(image: torch.Tensor, channels: torch.Tensor) -> float:
    """Mean |x-gradient| over mean |y-gradient| of an image [1,3,H,W] inside label regions (pixels whose
    right and lower neighbours have the same label): below the square output's value, textures are
    smoother along the width, i.e. stretched."""
    gray = image.float().mean(1)[0]
    label = channels[0, 0]
    dx = (gray[:-1, 1:] - gray[:-1, :-1]).abs()
    dy = (gray[1:, :-1] - gray[:-1, :-1]).abs()
    inside = (label[:-1, 1:] == label[:-1, :-1]) & (label[1:, :-1] == label[:-1, :-1])
    return float(dx[inside].mean() / dy[inside].mean())


def detail_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean |a - b| of two images [1,3,H,W] after removing each one's mean colour: how much their content
    differs, not their overall tint (two seeds of a multimodal model differ mostly in tint)."""
    return float(((a - a.mean((-2, -1), keepdim=True)) - (b - b.mean((-2, -1), keepdim=True))).abs().mean())


def any_size_methods(paintings: list[str] | None = None, seed: int = 0, threads: int = 2) -> list[dict]:
    """How one z fills a 1024x256 panorama, per method, over the starter paintings (fp32):
    grid: the shipped way (the latent grid grows with the map, `SPADEGenerator.latent_grid`);
    stretched-grid: the earlier rule, the trained grid resized bilinearly to the whole grid;
    windows: overlapping 256x256 windows, one z each, Hann-blended; windows-one-z: the same with one z;
    tiles: the trained grid tiled, a varied z per tile (`tiles_generate`).
    Per method: mIoU of the bundled real-photo segmenter at 1024x256 (read in 256 squares) over that at
    256x256 on the same paintings; seam scores (`seam_scores`, period 128: the windows' stride); LPIPS
    mean |difference| and `detail_difference` between the quarters of an output from a map with the
    painting in every quarter, over those between two seeds at 256x256 (1: as different as two images;
    0: copies); `texture_anisotropy` over the square output's (1: textures as round as at 256x256);
    seconds per image."""
    import torch.nn.functional as F

    from spadekit.commands.eval import default_segmenter
    from spadekit.eval.diversity import LPIPS
    from spadekit.eval.segmentation import confusion_matrix, load_segmenter, mean_iou
    from spadekit.inference import Pipeline, resolve_model_path
    from spadekit.landscapes.paintings import load_painting, painting_specs

    torch.set_num_threads(threads)
    pipe = Pipeline.from_pretrained("default", dtype="float32")
    segmenter = load_segmenter(default_segmenter(resolve_model_path("default")))
    lpips = LPIPS()
    names = paintings or [spec["name"] for spec in painting_specs()]
    n = pipe.labels.num_channels

    methods = {
        "grid": lambda channels, s: pipe.generate_from_channels(channels, pipe.latents(1, s)),
        "stretched-grid": lambda channels, s: stretched_grid_generate(pipe, channels, s),
        "windows": lambda channels, s: windows_generate(pipe, channels, s),
        "windows-one-z": lambda channels, s: windows_generate(pipe, channels, s, one_z=True),
        "tiles": lambda channels, s: tiles_generate(pipe, channels, s),
    }
    square_conf = torch.zeros(n, n, dtype=torch.long).numpy()
    conf = {m: square_conf.copy() for m in methods}
    seams = {m: [] for m in methods}
    quarters = {m: [] for m in methods}
    seconds = {m: [] for m in methods}
    texture = {m: [] for m in methods}
    seed_lpips, seed_pixels, seed_detail = [], [], []
    for name in names:
        square = pipe.prepare_channels(load_painting(name))
        wide = F.interpolate(square.float(), size=(256, 1024), mode="nearest").long()
        tiled = square.repeat(1, 1, 1, 4)
        pair = pipe.generate_from_channels(square, pipe.latents(2, seed))
        square_conf += confusion_matrix(square[:, 0], segmenter.predict(pair[:1]), n)
        square_texture = texture_anisotropy(pair[:1], square)
        seed_lpips.append(float(lpips(pair[:1], pair[1:])))
        seed_pixels.append(float((pair[0] - pair[1]).abs().mean()))
        seed_detail.append(detail_difference(pair[:1], pair[1:]))
        for method, generate in methods.items():
            start = time.perf_counter()
            image = generate(wide, seed)
            seconds[method].append(time.perf_counter() - start)
            conf[method] += confusion_matrix(wide[:, 0], segment_in_squares(segmenter, image), n)
            seams[method].append(seam_scores(image, 128))
            texture[method].append(texture_anisotropy(image, wide) / square_texture)
            parts = generate(tiled, seed).split(256, dim=-1)
            pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
            quarters[method].append((statistics.mean(float(lpips(parts[i], parts[j])) for i, j in pairs),
                                     statistics.mean(float((parts[i] - parts[j]).abs().mean()) for i, j in pairs),
                                     statistics.mean(detail_difference(parts[i], parts[j]) for i, j in pairs)))
    square_miou = mean_iou(square_conf)
    rows = []
    for method in methods:
        rows.append({
            "method": method, "miou_256": square_miou, "miou_1024x256": mean_iou(conf[method]),
            "miou_ratio": mean_iou(conf[method]) / square_miou,
            "seam_jump": statistics.mean(x["jump"] for x in seams[method]),
            "seam_blur": statistics.mean(x["blur"] for x in seams[method]),
            "quarters_lpips_ratio": statistics.mean(q[0] for q in quarters[method]) / statistics.mean(seed_lpips),
            "quarters_pixel_ratio": statistics.mean(q[1] for q in quarters[method]) / statistics.mean(seed_pixels),
            "quarters_detail_ratio": statistics.mean(q[2] for q in quarters[method]) / statistics.mean(seed_detail),
            "texture_anisotropy_ratio": statistics.mean(texture[method]),
            "seconds": statistics.median(seconds[method]),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def format_any_size_methods(rows: list[dict]) -> str:
    lines = ["| method | mIoU 1024x256 / 256x256 | seam jump | seam blur | quarters LPIPS (x two seeds) "
             "| quarters pixels (x two seeds) | quarters detail (x two seeds) | texture x/y (x 256x256) | s / image |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['miou_1024x256']:.3f} / {r['miou_256']:.3f} = {r['miou_ratio']:.2f} | {r['seam_jump']:.2f} | "
                     f"{r['seam_blur']:.2f} | {r['quarters_lpips_ratio']:.2f} | {r['quarters_pixel_ratio']:.2f} | "
                     f"{r['quarters_detail_ratio']:.2f} | {r['texture_anisotropy_ratio']:.2f} | {r['seconds']:.2f} |")
    return "\n".join(lines)


# ---- Upscaling: the bundled upscaler-x4 against PIL's bicubic, 256 -> 1024 ------------------------------

UPSCALE_METHODS = ("bicubic", "upscaler-x4")


def run_upscale(method: str, size: int = 256, repeats: int = 5, threads: int = 2) -> dict:
    """Seconds (median of `repeats`, after a warm-up) to enlarge a size x size crop of a held-out photo 4x
    with `method`: PIL's bicubic (the baseline) or the bundled upscaler through `spadekit upscale`'s path."""
    from PIL import Image

    from spadekit.upscale import load_upscaler, upscale_image
    from spadekit.upscale.patches import heldout_crops

    torch.set_num_threads(threads)
    image = Image.fromarray(heldout_crops(size, per_photo=1)[0][1])
    if method == "bicubic":
        def step():
            return image.resize((4 * size, 4 * size), Image.BICUBIC)
    else:
        model = load_upscaler(method)

        def step():
            return upscale_image(model, image, 4)
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - start)
    return {"method": method, "size": size, "out_size": list(result.size), "threads": threads,
            "median_s": statistics.median(times), "min_s": min(times), "peak_rss_mb": _peak_rss_mb()}


def upscale_table(repeats: int = 5, threads: int = 2) -> list[dict]:
    """Each method of UPSCALE_METHODS in its own process; time as a ratio to bicubic's."""
    rows = []
    for method in UPSCALE_METHODS:
        spec = json.dumps({"method": method, "repeats": repeats, "threads": threads})
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--run-upscale", spec], capture_output=True, text=True)
        if out.returncode != 0:
            raise SpadekitError(f"upscale case {method} failed: {out.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row["time_ratio"] = row["median_s"] / rows[0]["median_s"]
    return rows


def format_upscale(rows: list[dict]) -> str:
    lines = ["| 256 -> 1024 | s / image (median) | x bicubic | peak RSS MB |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['median_s']:.3f} | {r['time_ratio']:.0f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/suite.py", description="time inference / training: fast path vs plain float32 baseline")
    parser.add_argument("--suite", default=None,
                        help=f"a named suite ({', '.join(SUITES)}, any-size, any-size-methods, upscale) instead of one case")
    parser.add_argument("--model", default=None, help="a model folder or 'default' (overrides the size options)")
    parser.add_argument("--labels", type=int, default=151, help="label channels")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--spade-hidden", type=int, default=128)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--mode", choices=["infer", "train"], default="infer")
    parser.add_argument("--path", choices=["fast", "baseline", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per case (default 2)")
    parser.add_argument("--checkpointing", action="store_true", help="train mode: activation checkpointing on the fast path")
    parser.add_argument("--compile", action="store_true", help="infer mode: torch.compile the fast path's SPADE kernels")
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                        help="the fast path's compute dtype (default auto: bfloat16 only where this CPU runs it natively)")
    parser.add_argument("--plot", default=None, help="write time against pixels (both paths) as a PNG image here")
    parser.add_argument("--run-case", default=None, help=argparse.SUPPRESS)  # one case as JSON, in this process
    parser.add_argument("--paintings", default=None, help="any-size-methods: comma-separated starter paintings (default: all)")
    parser.add_argument("--run-any-size", default=None, help=argparse.SUPPRESS)  # one any-size case as JSON
    parser.add_argument("--run-upscale", default=None, help=argparse.SUPPRESS)  # one upscale case as JSON
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_case:
        print(json.dumps(run_case(Case(**json.loads(args.run_case)))))
        return 0
    if args.run_any_size:
        print(json.dumps(run_any_size(**json.loads(args.run_any_size))))
        return 0
    if args.run_upscale:
        print(json.dumps(run_upscale(**json.loads(args.run_upscale))))
        return 0
    if args.suite == "upscale":
        rows = upscale_table(repeats=args.repeats, threads=args.threads)
        print()
        print(format_upscale(rows))
        print(json.dumps({"upscale": rows}))
        return 0
    if args.suite == "any-size":
        rows = any_size_table(repeats=min(args.repeats, 3), threads=args.threads)
        print()
        print(format_any_size(rows))
        print(json.dumps({"any_size": rows}))
        return 0
    if args.suite == "any-size-methods":
        rows = any_size_methods(args.paintings.split(",") if args.paintings else None, threads=args.threads)
        print()
        print(format_any_size_methods(rows))
        print(json.dumps({"any_size_methods": rows}))
        return 0
    if args.suite:
        if args.suite not in SUITES:
            raise SpadekitError(f"unknown suite {args.suite!r}; known: {', '.join(SUITES)}")
        cases = [replace(case, dtype=args.dtype) for case in SUITES[args.suite]]
    else:
        cases = [Case(args.model or f"{args.size}-ngf{args.ngf}", num_labels=args.labels, ngf=args.ngf,
                      spade_hidden=args.spade_hidden, size=args.size, batch=args.batch, mode=args.mode,
                      model=args.model, repeats=args.repeats, threads=args.threads,
                      checkpointing=args.checkpointing, compile=args.compile, dtype=args.dtype)]
    if args.path != "both":
        for case in cases:
            print(json.dumps(run_in_subprocess(replace(case, path=args.path))))
        return 0
    rows = compare(cases)
    print()
    print(format_table(rows))
    if args.plot:
        from scaling_plot import plot_scaling

        print(f"plot: {plot_scaling(rows, args.plot)}")
    print(json.dumps({"ratios": rows}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpadekitError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
