"""Speed and memory of inference and training, fast path against a plain eager float32 baseline.

Each case runs in its own subprocess (so peak memory, read from the OS, belongs to that case alone)
and prints one JSON line: median and minimum seconds per call and peak resident memory.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch

from spadekit.config import DiscriminatorConfig, EncoderConfig, GeneratorConfig, SPADEModelConfig
from spadekit.data.labels import Label, LabelSet


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


SUITES = {
    "default": [
        Case("ade20k-256-ngf64", num_labels=151, ngf=64, size=256),
        Case("128-ngf32", num_labels=151, ngf=32, size=128),
        Case("ade20k-256-ngf64", num_labels=151, ngf=64, size=256, mode="train", repeats=3),
        Case("128-ngf32", num_labels=151, ngf=32, size=128, mode="train"),
    ],
    "scaling": [Case(f"scale-{s}", ngf=32, size=s, repeats=3) for s in (128, 256, 384, 512)],
}


def build_model(case: Case):
    from spadekit.models import SPADEModel

    if case.model:
        from spadekit.inference import resolve_model_path

        return SPADEModel.from_pretrained(resolve_model_path(case.model))
    labels = LabelSet("bench", [Label(i, f"c{i}", (i % 256, 0, 0)) for i in range(case.num_labels)], None, False)
    sem = labels.num_channels
    return SPADEModel(SPADEModelConfig(
        labels=labels.to_dict(), use_instance=False,
        generator=GeneratorConfig(semantic_channels=sem, ngf=case.ngf, crop_size=case.size, use_vae=case.use_vae,
                                  z_dim=case.z_dim, norm=case.norm, spade_hidden=case.spade_hidden),
        encoder=EncoderConfig(ndf=case.ngf, z_dim=case.z_dim) if case.use_vae else None,
        discriminator=DiscriminatorConfig(input_channels=sem + 3, ndf=case.ngf),
    ))


def _label(model, batch: int) -> torch.Tensor:
    h, w = model.output_size
    label = torch.zeros(batch, 1, h, w, dtype=torch.long)
    n = model.labels.num_channels
    for i in range(8):  # horizontal bands of several classes
        label[:, :, i * h // 8:(i + 1) * h // 8] = (i * 7) % n
    return label


def run_case(case: Case) -> dict:
    """Time one case in this process."""
    torch.set_num_threads(case.threads)
    torch.manual_seed(0)
    model = build_model(case)
    label = _label(model, case.batch)
    z = torch.randn(case.batch, model.config.generator.z_dim) if model.config.generator.use_vae else None
    if case.mode == "infer":
        step = _infer_step(model, label, z, case.path)
    else:
        step = _train_step(model, label, z, case.path)
    step()  # warm-up
    times = []
    for _ in range(case.repeats):
        start = time.perf_counter()
        output = step()
        times.append(time.perf_counter() - start)
    result = {**asdict(case), "median_s": statistics.median(times), "min_s": min(times),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if case.mode == "infer":
        result["output_checksum"] = float(output.float().abs().mean())
    else:
        result["losses"] = output
    return result


def _infer_step(model, label, z, path):
    model.eval()
    if path == "baseline":
        semantic = None

        def step():
            nonlocal semantic
            with torch.no_grad():
                semantic = model.semantic(label)  # one-hot built per call, as the reference does
                return model.generator(semantic, z)
        return step
    from spadekit.fast import FastGenerator

    fast = FastGenerator(model.generator, model.labels.num_channels, model.use_instance).to(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return fast(label, None, z).float()
    return step


def _train_step(model, label, z, path):
    """One full iteration: D step (real/fake hinge) and G step (hinge + feature matching + perceptual)."""
    from spadekit import losses
    from spadekit.models.vgg import VGGFeatures

    model.train()
    vgg = VGGFeatures("vgg16", random_init=True)
    h, w = model.output_size
    real = torch.rand(label.shape[0], 3, h, w) * 2 - 1
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=1e-4, betas=(0, 0.9))
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=4e-4, betas=(0, 0.9))
    fast = path == "fast"
    if fast:
        model.to(memory_format=torch.channels_last)
        real = real.contiguous(memory_format=torch.channels_last)

    def ctx():
        return torch.autocast("cpu", dtype=torch.bfloat16) if fast else torch.autocast("cpu", enabled=False)

    def step():
        semantic = model.semantic(label)
        with ctx():
            with torch.no_grad():
                fake = model.generator(semantic, z)
            d_loss = losses.hinge_loss(model.discriminator(semantic, fake.detach()), False) + losses.hinge_loss(model.discriminator(semantic, real), True)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        with ctx():
            fake = model.generator(semantic, z)
            fake_feats = model.discriminator(semantic, fake)
            with torch.no_grad():
                real_feats = model.discriminator(semantic, real)
            g_loss = (losses.hinge_loss(fake_feats, True, False) + losses.feature_matching_loss(fake_feats, real_feats)
                      + losses.perceptual_loss(vgg(fake), vgg(real)))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return {"g": float(g_loss), "d": float(d_loss)}
    return step


def run_in_subprocess(case: Case) -> dict:
    out = subprocess.run([sys.executable, "-m", "spadekit.bench", json.dumps(asdict(case))], capture_output=True, text=True)
    if out.returncode != 0:
        return {**asdict(case), "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(cases: list[Case], paths=("baseline", "fast")) -> list[dict]:
    """Every case on both paths, side by side; returns one row per case with ratios."""
    from tqdm import tqdm

    rows = []
    for case in tqdm(cases, desc="bench", unit="case"):
        results = {p: run_in_subprocess(Case(**{**asdict(case), "path": p})) for p in paths}
        for result in results.values():
            print(json.dumps(result), flush=True)
        base, fast = results["baseline"], results["fast"]
        row = {"case": case.name, "mode": case.mode, "size": case.size, "ngf": case.ngf}
        if "error" not in base and "error" not in fast:
            row.update(baseline_s=base["median_s"], fast_s=fast["median_s"], speedup=base["median_s"] / fast["median_s"],
                       baseline_mb=base["peak_rss_mb"], fast_mb=fast["peak_rss_mb"], memory_ratio=fast["peak_rss_mb"] / base["peak_rss_mb"])
        rows.append(row)
    return rows


def psnr_fast_vs_float32(case: Case) -> float:
    """PSNR (dB) of the fast path's image against the float32 baseline's, same weights and input."""
    torch.manual_seed(0)
    model = build_model(case).eval()
    label = _label(model, 1)
    z = torch.randn(1, model.config.generator.z_dim) if model.config.generator.use_vae else None
    reference = _infer_step(model, label, z, "baseline")()
    fast = _infer_step(model, label, z, "fast")()
    mse = float(((fast - reference) / 2).pow(2).mean())  # images in [-1, 1] -> [0, 1]
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


if __name__ == "__main__":
    print(json.dumps(run_case(Case(**json.loads(sys.argv[1])))))
