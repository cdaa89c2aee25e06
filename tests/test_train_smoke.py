"""Smoke test: the tiny preset trains on a tiny folder dataset and the generator overfits one pair."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from helpers import OnNthRead
from spadekit import SpadekitError
from spadekit.cli import main as cli_main
from spadekit.models import SPADEModel
from spadekit.train import checkpoint as ckpt
from spadekit.train.config import PRESET_DIR, load_config
from spadekit.train.loop import train

REPO = Path(__file__).resolve().parents[1]
TINY = PRESET_DIR / "tiny.yaml"
PALETTE = [
    {"name": "sky", "id": 156, "color": "#9ceedd"},
    {"name": "grass", "id": 123, "color": "#7bc800"},
    {"name": "sea", "id": 154, "color": "#9ac6da"},
]
PHOTO_COLORS = {156: (150, 200, 255), 123: (60, 160, 40), 154: (30, 80, 160)}


def write_tiny_dataset(root: Path, count: int = 6, size: int = 64, seed: int = 0) -> Path:
    """A folder dataset (ROOT/images, ROOT/labels with raw COCO ids, ROOT/palette.yaml): sky over grass or sea."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    (root / "palette.yaml").write_text(yaml.safe_dump(PALETTE))
    for i in range(count):
        label = np.full((size, size), 156, np.uint8)
        label[int(rng.integers(size // 3, 2 * size // 3)):] = 123 if i % 2 else 154
        photo = np.zeros((size, size, 3), np.int64)
        for label_id, color in PHOTO_COLORS.items():
            photo[label == label_id] = color
        photo = np.clip(photo + rng.integers(-20, 21, photo.shape), 0, 255).astype(np.uint8)
        Image.fromarray(photo).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(label).save(root / "labels" / f"{i:03d}.png")
    return root


def perceptual_overrides() -> list[str]:
    """Keep the perceptual loss on when the VGG16 cache exists, else turn it off."""
    from spadekit.weights import VGG16_FILE, cache_dir

    return [] if (cache_dir() / VGG16_FILE).is_file() else ["train.lambda_vgg=0"]


def test_tiny_preset_overfits_one_pair(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", count=1)
    config = load_config(TINY, [
        f"data.root={data}", "data.flip=false", "train.batch_size=1", "train.steps=40", "train.lr_g=1e-3",
        "train.lambda_vgg=0", "train.num_threads=2", "log.log_every=5", "log.sample_every=20", "log.checkpoint_every=null",
    ])
    run = tmp_path / "run"
    final = train(config, run)

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(5, 41, 5))
    l1 = [r["G_l1"] for r in records]
    # The generator learns the one photo: reconstruction error falls to well under half.
    assert l1[-1] < 0.5 * l1[0], l1
    assert records[-1]["D_real"] < records[0]["D_real"]  # D learns to tell the real photo
    assert records[-1]["lr_G"] < 1e-3  # linear decay in the second half
    for r in records:
        assert all(np.isfinite(v) for v in r.values() if isinstance(v, float))

    # Samples: a grid row per sample, columns label | real | fake | reconstruction (encoder).
    grid = np.asarray(Image.open(run / "samples" / "step_000040.png"))
    assert grid.shape == (64, 4 * 64, 3)
    assert (run / "samples" / "step_000020.png").is_file()
    # The resolved config is written and reads back the same.
    assert load_config(run / "config.yaml").to_dict() == config.to_dict()
    # The exported model loads and renders the label map it was trained on close to the photo.
    model = SPADEModel.from_pretrained(final)
    assert model.encoder is not None and model.discriminator is not None
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 1  # the end checkpoint

    # export-run: the same model from the newest checkpoint, as a user does mid-training
    assert cli_main(["export-run", str(run), str(tmp_path / "exported")]) == 0
    exported = SPADEModel.from_pretrained(tmp_path / "exported")
    for a, b in zip(model.state_dict().values(), exported.state_dict().values()):
        assert torch.equal(a, b)
    assert cli_main(["export-run", str(tmp_path / "data"), str(tmp_path / "x")]) == 2


def test_tiny_preset_full_recipe_runs(tmp_path):
    """Every loss and option the presets use: VGG, accumulation, D steps per G, ls GAN, no EMA start."""
    data = write_tiny_dataset(tmp_path / "data", count=4)
    config = load_config(TINY, [
        f"data.root={data}", "train.steps=4", "train.batch_size=4", "train.grad_accum=2", "train.d_steps_per_g=2",
        "train.gan_mode=ls", "train.ema_start=2", "train.precision=bf16", "train.num_threads=2",
        "log.log_every=1", "log.checkpoint_every=2", "log.keep_last=1", *perceptual_overrides(),
    ])
    run = tmp_path / "run"
    train(config, run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # G is updated on steps 0 and 2 only (d_steps_per_g 2): its losses appear on those lines.
    assert ["G_gan" in r for r in records] == [True, False, True, False]
    if not perceptual_overrides():
        assert "G_vgg" in records[0]
    assert [p.name for p in (run / "checkpoints").glob("step_*.pt")] == ["step_00000004.pt"]
    try:  # TensorBoard event files when the optional `train` extra is installed
        import tensorboard  # noqa: F401

        assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    except ImportError:
        assert not (run / "tensorboard").exists()
    state = torch.load(run / "checkpoints" / "step_00000004.pt", weights_only=True)
    # 4 pairs, global batch 4: one step per epoch; the 4th step is the whole of epoch 3.
    assert (state["step"], state["epoch"], state["step_in_epoch"]) == (4, 3, 1)


@pytest.mark.parametrize("arch", ["pix2pixhd", "concat"])
def test_baselines_train_by_name(tmp_path, arch):
    """The paper's baselines train with the same trainer (model.arch), lower the loss and export."""
    data = write_tiny_dataset(tmp_path / "data", count=1)
    config = load_config(TINY, [
        f"data.root={data}", "data.flip=false", "train.batch_size=1", "train.steps=30", "train.lr_g=1e-3",
        f"model.arch={arch}", "model.use_vae=false", "model.num_downsample=2", "model.num_res_blocks=2",
        "train.lambda_vgg=0", "train.num_threads=2", "log.log_every=5", "log.sample_every=30", "log.checkpoint_every=null",
    ])
    final = train(config, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["G_l1"] < 0.7 * records[0]["G_l1"], [r["G_l1"] for r in records]
    model = SPADEModel.from_pretrained(final)
    assert model.config.arch == arch
    assert type(model.generator).__name__ == {"pix2pixhd": "Pix2PixHDGenerator", "concat": "ConcatGenerator"}[arch]


def test_baseline_options_are_checked(tmp_path):
    with pytest.raises(SpadekitError, match="model.arch"):
        load_config(TINY, ["model.arch=unet"])
    with pytest.raises(SpadekitError, match="model section: .*use_vae must be false"):
        load_config(TINY, ["model.arch=pix2pixhd", "model.use_vae=true"])


def test_init_from_starts_a_run_from_a_model_folder(tmp_path):
    """train.init_from: a new run (here switching instance -> batch norm) starts from exported weights."""
    data = write_tiny_dataset(tmp_path / "data", count=2)
    common = [f"data.root={data}", "train.batch_size=2", "train.lambda_vgg=0", "train.num_threads=2",
              "log.log_every=1", "log.sample_every=100", "log.checkpoint_every=null"]
    first = train(load_config(TINY, [*common, "train.steps=3"]), tmp_path / "a")
    source = SPADEModel.from_pretrained(first)
    config = load_config(TINY, [*common, "train.steps=1", "model.norm=batch", f"train.init_from={first}", "train.lr_g=0", "train.lr_d=0"])
    second = SPADEModel.from_pretrained(train(config, tmp_path / "b"))
    assert second.config.norm == "batch"
    # learning rates 0: the weights are the source's (spectral-norm power iterations move on; they
    # are buffers), and batch-norm statistics were gathered in training
    params = dict(second.generator.named_parameters())
    for key, value in source.generator.named_parameters():
        assert torch.equal(params[key], value), key
    stats = [v for k, v in second.generator.state_dict().items() if k.endswith("running_var")]
    assert stats and not all(torch.equal(v, torch.ones_like(v)) for v in stats)
    params = dict(second.discriminator.named_parameters())
    for key, value in source.discriminator.named_parameters():
        assert torch.equal(params[key], value), key
    # a folder that does not fit names the layer
    with pytest.raises(SpadekitError, match="init_from"):
        train(load_config(TINY, [*common, "train.steps=1", "model.ngf=8", f"train.init_from={first}"]), tmp_path / "c")
    with pytest.raises(SpadekitError, match="no generator.safetensors"):
        train(load_config(TINY, [*common, "train.steps=1", f"train.init_from={tmp_path}"]), tmp_path / "d")


def test_init_from_takes_a_bundled_models_name():
    """train.init_from=default (the landscapes_photo preset's) loads the bundled generator and encoder."""
    from spadekit.inference import resolve_model_path
    from spadekit.train.loop import load_init_weights

    bundled = SPADEModel.from_pretrained(resolve_model_path("default"))
    fresh = SPADEModel(bundled.config)
    assert not torch.equal(fresh.generator.input.weight, bundled.generator.input.weight)
    assert load_init_weights(fresh, "default") == ["generator", "encoder"]  # no discriminator is shipped
    for part in ("generator", "encoder"):
        mine = dict(getattr(fresh, part).named_parameters())
        for key, value in getattr(bundled, part).named_parameters():
            assert torch.equal(mine[key], value), (part, key)
    assert load_config("landscapes_photo").train.init_from == "default"


def _stop_the_run(item: dict) -> dict:
    """A job scheduler's stop: this process gets SIGTERM while reading a batch."""
    os.kill(os.getpid(), signal.SIGTERM)
    return item


def test_a_stopped_run_returns_its_run_folder_and_resumes_to_the_final_model(tmp_path):
    from spadekit.train.batching import build_dataset

    data = write_tiny_dataset(tmp_path / "data", count=2)
    config = load_config(TINY, [
        f"data.root={data}", "train.batch_size=1", "train.steps=6", "train.lambda_vgg=0", "train.num_threads=2",
        "log.log_every=1", "log.sample_every=100", "log.checkpoint_every=null",
    ])
    run = tmp_path / "run"
    # reads 1-2: the fixed sample batch; 3, 4, ...: one per step; the stop lands in step 2
    stopped = train(config, run, dataset=OnNthRead(build_dataset(config), 4, _stop_the_run))
    assert stopped == run and stopped.is_dir() and not (run / "final").exists()
    assert [step for step, _ in ckpt.list_checkpoints(run)] == [2]
    final = train(config, run, resume=True)
    assert final == run / "final" and SPADEModel.from_pretrained(final).generator is not None
