"""Training config: YAML presets, dotted overrides, and clear errors for bad keys and values."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from spadekit import SpadekitError
from spadekit.labels import get_label_set
from spadekit.train.config import FROM_DATA, PRESET_DIR, TrainConfig, load_config, parse_override
from spadekit.train.loop import lr_factor

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted(PRESET_DIR.glob("*.yaml"))


def test_all_presets_load_and_build_a_model_config():
    names = {p.stem for p in PRESETS}
    assert {"ade20k", "ade20k_outdoor", "coco_stuff", "cityscapes", "landscapes", "tiny"} <= names
    for path in PRESETS:
        config = load_config(path)
        labels = get_label_set(config.data.labels or "landscapes")
        mconfig = config.model_config(labels, bool(config.data.use_instance))
        assert mconfig.output_size[1] == config.data.crop_size, path
        assert mconfig.semantic_channels == labels.num_channels + int(bool(config.data.use_instance)), path
        assert {k: v for k, v in vars(mconfig).items() if k not in FROM_DATA} == {k: v for k, v in vars(config.model).items() if k not in FROM_DATA}


def test_the_model_section_is_the_model_config(tmp_path):
    """The YAML model section is spadekit.config.ModelConfig: same names; what the data decides is refused
    there with the data option to set; a saved run config (and an older one) reads back the same."""
    from spadekit.config import ModelConfig
    from spadekit.train.config import save_config

    config = load_config(PRESET_DIR / "tiny.yaml", ["model.arch=spade", "model.encoder_norm=none", "data.crop_size=128"])
    assert isinstance(config.model, ModelConfig) and config.model.encoder_norm == "none"
    mconfig = config.model_config(get_label_set("landscapes"), use_instance=True)
    assert (mconfig.crop_size, mconfig.use_instance, mconfig.encoder_input_size) == (128, True, 128)
    for key, where in (("crop_size", "data.crop_size"), ("labels", "data.labels"), ("use_instance", "data.use_instance")):
        with pytest.raises(SpadekitError, match=f"model.{key} comes from the data; set {where}"):
            load_config(PRESET_DIR / "tiny.yaml", [f"model.{key}=1"])
    with pytest.raises(SpadekitError, match="model section: num_upsampling_layers"):
        load_config(PRESET_DIR / "tiny.yaml", ["model.num_upsampling_layers=lots"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert "num_res_blocks" not in (tmp_path / "config.yaml").read_text()  # a pix2pixhd option, not this model's
    # an older run's config.yaml: the model section of before (every key kept its name)
    old = {"arch": "spade", "ngf": 4, "spade_hidden": 8, "norm": "instance", "num_downsample": 4, "num_res_blocks": 9,
           "num_upsampling_layers": "normal", "use_vae": True, "z_dim": 16, "encoder_ndf": 4, "encoder_layers": None,
           "d_ndf": 8, "d_num_scales": 2, "d_num_layers": 3, "d_norm": "instance", "spectral_norm": True}
    older = TrainConfig.from_dict({**config.to_dict(), "model": old})
    assert older.model == dataclasses.replace(config.model, encoder_norm="instance")


def test_paper_presets_match_the_paper():
    city = load_config(PRESET_DIR / "cityscapes.yaml")
    assert (city.data.crop_size, city.data.aspect_ratio, city.model.num_upsampling_layers) == (512, 2.0, "more")
    assert city.train.batch_size == 16 and city.data.use_instance
    ade = load_config(PRESET_DIR / "ade20k.yaml")
    assert ade.train.learning_rates == (1e-4, 4e-4) and ade.train.betas == (0.0, 0.9)
    assert ade.model.ngf == 64 and ade.model.spade_hidden == 128 and ade.train.gan_mode == "hinge"
    landscapes = load_config(PRESET_DIR / "landscapes.yaml")
    assert landscapes.model.use_vae and landscapes.train.ema_decay and landscapes.train.precision == "auto"
    assert landscapes.log.checkpoint_seconds is not None and landscapes.log.checkpoint_seconds <= 300


def test_overrides_are_typed():
    config = load_config(PRESET_DIR / "tiny.yaml", ["train.batch_size=3", "train.lr_g=1e-3", "train.ema_decay=null",
                                                         "data.flip=false", "log.checkpoint_seconds=60"])
    assert config.train.batch_size == 3 and config.train.lr_g == 1e-3 and config.train.ema_decay is None
    assert config.data.flip is False and config.log.checkpoint_seconds == 60.0
    assert parse_override("data.root=a=b") == (["data", "root"], "a=b")
    ttur_off = load_config(PRESET_DIR / "tiny.yaml", ["train.ttur=false"]).train
    assert ttur_off.learning_rates == (2e-4, 2e-4) and ttur_off.betas == (0.5, 0.999)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batch_sise=2", "train.batch_sise"),
        ("optim.lr=1", "unknown section 'optim'"),
        ("train.batch_size=two", "train.batch_size: expected int"),
        ("train.precision=fp8", "train.precision must be one of"),
        ("train.gan_mode=wgan", "train.gan_mode"),
        ("data.flip=maybe", "data.flip: expected bool"),
        ("batch_size=2", "section.key"),
        ("train.batch_size", "section.key=value"),
        ("train.decay_start=2", "train.decay_start"),
        ("train.grad_accum=3", "divisible by train.grad_accum"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(SpadekitError, match=message.replace("(", r"\(")):
        load_config(PRESET_DIR / "tiny.yaml", [override])


def test_unknown_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  ngf: 8\n  spade_hiden: 16\n")
    with pytest.raises(SpadekitError, match=r"model\.spade_hiden"):
        load_config(path)
    with pytest.raises(SpadekitError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(SpadekitError, match="train.steps"):
        TrainConfig.from_dict({"train": {"steps": None, "epochs": None}})


def test_lr_schedule_constant_then_linear():
    assert [lr_factor(s, 10, 0.5) for s in (0, 4, 5, 6, 9)] == [1.0, 1.0, 1.0, 0.8, 0.19999999999999996]
    assert lr_factor(9, 10, 1.0) == 1.0


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "spadekit.cli", "train", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_errors_without_traceback(tmp_path):
    result = _cli("--config", "tiny", "train.bach_size=2", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "error:" in result.stderr and "train.bach_size" in result.stderr
    assert "Traceback" not in result.stderr
    result = _cli("--config", "tiny", f"data.root={tmp_path / 'nowhere'}", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "nowhere" in result.stderr and "Traceback" not in result.stderr
    result = _cli("--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "--config" in result.stderr
