"""The upscaler: network shapes and gradients, degradations against independent computations, tiling,
save/load, the bundled weights against bicubic on held-out photos, the trainer and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit import SpadekitError
from spadekit.cli import main as cli_main
from spadekit.upscale import Upscaler, UpscalerConfig, bundled_upscaler_path, load_upscaler, upscale_array, upscale_tensor
from spadekit.upscale import degrade as dg
from spadekit.upscale.model import ARCHS
from tool_modules import load_tool

TINY = {"channels": 8, "num_convs": 2}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("scale", [2, 4])
def test_shapes_per_variant(arch, scale):
    model = Upscaler(UpscalerConfig(arch=arch, scale=scale, **TINY))
    out = model(torch.rand(2, 3, 10, 14) * 2 - 1)
    assert out.shape == (2, 3, 10 * scale, 14 * scale)


def test_untrained_model_is_the_bilinear_enlargement():
    model = Upscaler(UpscalerConfig(**TINY))
    x = torch.rand(1, 3, 12, 12) * 2 - 1
    bilinear = torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert (model(x) - bilinear).abs().max() < 0.05


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_gradients_reach_every_parameter(arch):
    model = Upscaler(UpscalerConfig(arch=arch, **TINY))
    with torch.no_grad():
        model.tail.weight.normal_(0, 0.1)  # the near-zero start would let tiny gradients pass for none
    x, target = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    (model(x) - target).abs().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_config_errors_name_the_value():
    with pytest.raises(SpadekitError, match="'unet'"):
        UpscalerConfig(arch="unet")
    with pytest.raises(SpadekitError, match="must be 2 or 4"):
        UpscalerConfig(scale=3)
    with pytest.raises(SpadekitError, match="even num_convs"):
        UpscalerConfig(arch="residual", num_convs=3)


# Degradations on toy inputs ----------------------------------------------------------------------

def _toy(h=16, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_gaussian_kernel_against_the_formula():
    kernel = dg.gaussian_kernel(1.5)
    assert len(kernel) == 2 * 5 + 1 and abs(kernel.sum() - 1) < 1e-6
    x = np.arange(-5, 6)
    assert np.allclose(kernel[5] / kernel[5 + x], np.exp(0.5 * (x / 1.5) ** 2), rtol=1e-5)


def test_blur_of_an_impulse_is_the_outer_product_of_kernels():
    image = np.zeros((21, 21, 3), dtype=np.uint8)
    image[10, 10] = 255
    blurred = dg.gaussian_blur(image, 1.0).astype(np.float64)
    kernel = dg.gaussian_kernel(1.0).astype(np.float64)
    expected = np.zeros((21, 21))
    expected[7:14, 7:14] = 255 * np.outer(kernel, kernel)
    assert np.abs(blurred[..., 0] - expected).max() <= 1.0  # rounding to uint8 twice
    assert (blurred[..., 0] == blurred[..., 2]).all()
    assert (dg.gaussian_blur(image, 0) == image).all()
    flat = np.full((9, 9, 3), 77, dtype=np.uint8)
    assert (dg.gaussian_blur(flat, 2.0) == 77).all()


def test_downscale_resize_and_their_errors():
    flat = np.full((16, 24, 3), 200, dtype=np.uint8)
    assert (dg.bicubic_downscale(flat, 4) == 200).all() and dg.bicubic_downscale(flat, 4).shape == (4, 6, 3)
    # a 2x box shrink is the mean of each 2x2 block
    image = _toy(8, 8)
    box = dg.resize(image, (4, 4), "box").astype(np.float64)
    means = image.astype(np.float64).reshape(4, 2, 4, 2, 3).mean(axis=(1, 3))
    assert np.abs(box - means).max() <= 1.0
    with pytest.raises(SpadekitError, match="multiple of 4"):
        dg.bicubic_downscale(_toy(10, 12), 4)
    with pytest.raises(SpadekitError, match="'nearestish'"):
        dg.resize(image, (4, 4), "nearestish")
    with pytest.raises(SpadekitError, match="uint8 RGB"):
        dg.gaussian_blur(np.zeros((4, 4)), 1.0)


def test_noise_has_the_asked_spread_and_follows_the_seed():
    flat = np.full((64, 64, 3), 128, dtype=np.uint8)
    noisy = dg.add_gaussian_noise(flat, 5.0, np.random.default_rng(1))
    assert abs((noisy.astype(np.float64) - 128).std() - 5.0) < 0.3
    assert (noisy == dg.add_gaussian_noise(flat, 5.0, np.random.default_rng(1))).all()
    gray = dg.add_gaussian_noise(flat, 5.0, np.random.default_rng(1), gray=True)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_jpeg_loses_more_at_low_quality():
    ramp = np.linspace(0, 255, 32)
    image = np.rint(np.stack([ramp[None, :] + 0 * ramp[:, None], ramp[:, None] + 0 * ramp[None, :],
                              (ramp[None, :] + ramp[:, None]) / 2], axis=-1)).astype(np.uint8)
    error = {q: np.abs(dg.jpeg(image, q).astype(np.float64) - image).mean() for q in (20, 95)}
    assert error[95] < error[20] and error[95] < 3
    with pytest.raises(SpadekitError, match="quality"):
        dg.jpeg(image, 0)


def test_degrade_gives_the_small_size_and_a_clean_share():
    image = _toy(32, 48)
    for seed in range(6):
        small = dg.degrade(image, 4, np.random.default_rng(seed))
        assert small.shape == (8, 12, 3) and small.dtype == np.uint8
    assert (dg.degrade(image, 4, np.random.default_rng(0), clean_share=1.0) == dg.bicubic_downscale(image, 4)).all()
    fixed = dg.fixed_degradation(image, 4, seed=3)
    assert fixed.shape == (8, 12, 3) and (fixed == dg.fixed_degradation(image, 4, seed=3)).all()


# Tiling and save/load ----------------------------------------------------------------------------

def _trained_looking(arch="compact"):
    model = Upscaler(UpscalerConfig(arch=arch, **TINY))
    with torch.no_grad():
        model.tail.weight.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_tiles_give_the_whole_image_result(arch):
    model = _trained_looking(arch)
    x = torch.rand(1, 3, 37, 50) * 2 - 1
    with torch.no_grad():
        whole = model(x).clamp(-1, 1)
    tiled = upscale_tensor(model, x, tile_size=16)
    assert tiled.shape == whole.shape and (tiled - whole).abs().max() < 1e-5


def test_upscale_array_2x_and_limits(monkeypatch):
    model = _trained_looking()
    pixels = _toy(12, 10)
    assert upscale_array(model, pixels, 4).shape == (48, 40, 3)
    assert upscale_array(model, pixels, 2).shape == (24, 20, 3)
    from spadekit.upscale import tiles

    monkeypatch.setattr(tiles, "MAX_OUTPUT_PIXELS", 1000)
    with pytest.raises(SpadekitError, match="10x12 image .* over the limit"):
        upscale_array(model, pixels, 4)


def test_save_load_round_trip(tmp_path):
    model = _trained_looking("residual")
    model.save_pretrained(tmp_path / "up", extra={"training": {"photos": ["a.jpg"]}})
    loaded = Upscaler.from_pretrained(tmp_path / "up")
    assert loaded.config == model.config
    x = torch.rand(1, 3, 9, 9) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert json.loads((tmp_path / "up" / "config.json").read_text())["training"]["photos"] == ["a.jpg"]
    with pytest.raises(SpadekitError, match="not an upscaler folder"):
        Upscaler.from_pretrained(tmp_path)
    Upscaler(UpscalerConfig(channels=4, num_convs=2)).save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "up" / "config.json").read_text())
    with pytest.raises(SpadekitError, match="do not match"):
        Upscaler.from_pretrained(tmp_path / "other")


# The bundled weights -----------------------------------------------------------------------------

def test_bundled_upscaler_is_small_and_names_its_training_photos():
    from spadekit.upscale.patches import training_photo_names

    path = bundled_upscaler_path()
    assert path is not None
    assert sum(f.stat().st_size for f in path.iterdir()) < 5_000_000
    trained_on = json.loads((path / "config.json").read_text())["training"]["photos"]
    assert trained_on == training_photo_names()
    heldout = {p.name for p in (Path(path).parents[1] / "assets" / "heldout" / "photos").iterdir()}
    assert heldout and not heldout & set(trained_on)


@pytest.mark.slow  # VGG16 for LPIPS (~10 s)
def test_bundled_upscaler_beats_bicubic_on_heldout_crops():
    from spadekit.eval.diversity import LPIPS
    from spadekit.upscale.evaluate import evaluate_upscaler
    from spadekit.upscale.patches import heldout_crops

    crops = [crop for _, crop in heldout_crops(size=128, per_photo=1)][:2]
    report = evaluate_upscaler(load_upscaler(), crops, LPIPS(), variants=("clean",))["clean"]
    # the full held-out measurement is tools/eval_upscaler.py (docs/upscaling.md); here: clearly better, not blurrier
    assert report["model"]["lpips"] < 0.95 * report["bicubic"]["lpips"], report


# The trainer tool --------------------------------------------------------------------------------

@pytest.mark.slow  # the first Adam imports torch._dynamo (~10 s alone)
def test_trainer_resumes_and_exports(tmp_path):
    train = load_tool("train_upscaler")
    run = tmp_path / "run"
    threads = str(torch.get_num_threads())
    args = ["--out", str(run), "--channels", "4", "--num-convs", "2", "--patch", "8", "--batch", "2", "--threads", threads]
    assert train.main(args + ["--cpu-minutes", "0.01"]) == 0
    first = torch.load(run / "checkpoint.pt", weights_only=True)
    assert train.main(args + ["--cpu-minutes", "0.02"]) == 0
    second = torch.load(run / "checkpoint.pt", weights_only=True)
    assert second["step"] > first["step"] and second["cpu_seconds"] >= 0.6
    assert train.main(["--out", str(run), "--export", str(tmp_path / "export")]) == 0
    exported = load_upscaler(tmp_path / "export")
    assert exported.config.channels == 4
    assert json.loads((tmp_path / "export" / "config.json").read_text())["training"]["steps"] == second["step"]
    # a new run can start from a model folder: its weights, and its training record kept in the new config
    follow = tmp_path / "follow"
    assert train.main(["--out", str(follow), "--channels", "4", "--num-convs", "2", "--patch", "8", "--batch", "2",
                       "--threads", threads, "--cpu-minutes", "0.01", "--init-from", str(tmp_path / "export")]) == 0
    started = torch.load(follow / "checkpoint.pt", weights_only=True)
    assert json.loads(started["options"])["init_from"]["training"]["steps"] == second["step"]
    with pytest.raises(SpadekitError, match="differs from this run's"):
        train.main(["--out", str(tmp_path / "wide"), "--channels", "8", "--num-convs", "2", "--cpu-minutes", "0.01",
                    "--init-from", str(tmp_path / "export")])
    small, photo = train.batch_at(5, 0, 8, 2, 0.4)
    again, _ = train.batch_at(5, 0, 8, 2, 0.4)
    assert small.shape == (2, 3, 8, 8) and photo.shape == (2, 3, 32, 32) and torch.equal(small, again)


# The command -------------------------------------------------------------------------------------

def _cli(argv, capsys):
    code = cli_main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_upscales_2x_and_4x(tmp_path, capsys):
    model = _trained_looking()
    model.save_pretrained(tmp_path / "up")
    source = tmp_path / "small.png"
    Image.fromarray(_toy(24, 20)).convert("RGBA").save(source)
    expected = upscale_array(model, _toy(24, 20), 4)
    for scale in (2, 4):
        out = tmp_path / f"big{scale}.png"
        code, text = _cli(["upscale", str(source), str(out), "--scale", str(scale), "--tile", "16", "--model", str(tmp_path / "up")], capsys)
        assert code == 0, text
        assert Image.open(out).size == (20 * scale, 24 * scale)
    assert (np.asarray(Image.open(tmp_path / "big4.png")) == expected).all()


def test_cli_refuses_bad_files(tmp_path, capsys):
    source = tmp_path / "small.png"
    Image.fromarray(_toy(8, 8)).save(source)
    (tmp_path / "notes.png").write_text("not an image")
    cases = [
        (["upscale", str(tmp_path / "missing.png"), str(tmp_path / "o.png")], "missing.png: no such file"),
        (["upscale", str(tmp_path / "notes.png"), str(tmp_path / "o.png")], "notes.png: not an image file"),
        (["upscale", str(source), str(tmp_path / "o.xyz")], "suffix '.xyz'"),
        (["upscale", str(source), str(tmp_path)], "is a folder"),
        (["upscale", str(source), str(tmp_path / "o.png"), "--model", str(tmp_path)], "not an upscaler folder"),
        (["upscale", str(source), str(tmp_path / "o.png"), "--tile", "4"], "--tile must be at least 16"),
    ]
    for argv, message in cases:
        code, text = _cli(argv, capsys)
        assert code == 2 and message in text and "Traceback" not in text, (argv, text)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow  # the default model and a 256 -> 1024 pass (~5 s)
def test_generate_upscale_writes_the_enlarged_image(tmp_path, capsys):
    from spadekit.landscapes.paintings import paintings_dir

    code, text = _cli(["generate", "default", str(paintings_dir() / "lake.png"), "--out", str(tmp_path), "--upscale", "2",
                       "--dtype", "float32"], capsys)
    assert code == 0, text
    assert Image.open(tmp_path / "lake_seed0_x2.png").size == (512, 512)
