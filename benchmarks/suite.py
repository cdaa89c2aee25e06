"""Speed and memory of inference and training, fast path against a plain eager float32 baseline.

    python benchmarks/suite.py --suite default          # what `make bench` runs
    python benchmarks/suite.py --suite scaling --plot docs/images/perf_scaling.png
    python benchmarks/suite.py --labels 151 --ngf 64 --size 256 --mode train [--checkpointing] [--path fast]
    python benchmarks/suite.py --model default [--compile]

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
    fast = optimize_for_inference(model.generator, torch.bfloat16)
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
        return (torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=not case.checkpointing) if fast
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
        row = {"case": case.name, "mode": case.mode, "size": case.size, "ngf": case.ngf, "checkpointing": case.checkpointing}
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
    lines = [f"{'case':<27}{'mode':<7}{'baseline s':>11}{'fast s':>9}{'speedup':>9}{'mem ratio':>10}{'live mem':>9}  tracking"]
    for r in rows:
        if "speedup" not in r:
            lines.append(f"{r['case']:<27}{r['mode']:<7}  failed (see the JSON lines above)")
            continue
        track = (f"PSNR {r['psnr_db']:.1f} dB" if "psnr_db" in r
                 else f"loss diff G {100 * r['g_loss_rel_diff']:.2f}% D {100 * r['d_loss_rel_diff']:.2f}%")
        lines.append(f"{r['case']:<27}{r['mode']:<7}{r['baseline_s']:>11.3f}{r['fast_s']:>9.3f}{r['speedup']:>8.2f}x"
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/suite.py", description="time inference / training: fast path vs plain float32 baseline")
    parser.add_argument("--suite", default=None, help=f"a named suite ({', '.join(SUITES)}) instead of one case")
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
    parser.add_argument("--plot", default=None, help="write time against pixels (both paths) as a PNG image here")
    parser.add_argument("--run-case", default=None, help=argparse.SUPPRESS)  # one case as JSON, in this process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_case:
        print(json.dumps(run_case(Case(**json.loads(args.run_case)))))
        return 0
    if args.suite:
        if args.suite not in SUITES:
            raise SpadekitError(f"unknown suite {args.suite!r}; known: {', '.join(SUITES)}")
        cases = SUITES[args.suite]
    else:
        cases = [Case(args.model or f"{args.size}-ngf{args.ngf}", num_labels=args.labels, ngf=args.ngf,
                      spade_hidden=args.spade_hidden, size=args.size, batch=args.batch, mode=args.mode,
                      model=args.model, repeats=args.repeats, threads=args.threads,
                      checkpointing=args.checkpointing, compile=args.compile)]
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
