"""One model config: derived sizes, config.json round trips, and the nested layout of older folders and checkpoints."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny_labels, tiny_model_config
from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.inference import bundled_model_path
from spadekit.models import SPADEModel


def _nested(config: ModelConfig, encoder: bool, discriminator: bool) -> dict:
    """config.json as versions before the flat layout wrote it (written out field by field, by hand)."""
    labels = tiny_labels()
    semantic = labels.num_channels + int(config.use_instance)
    return {
        "labels": config.labels,
        "use_instance": config.use_instance,
        "generator": {
            "semantic_channels": semantic, "ngf": config.ngf, "num_upsampling_layers": config.num_upsampling_layers,
            "crop_size": config.crop_size, "aspect_ratio": config.aspect_ratio, "use_vae": config.use_vae,
            "z_dim": config.z_dim, "norm": config.norm, "spade_hidden": config.spade_hidden, "spade_kernel": 3,
            "spectral_norm": True, "arch": "spade", "num_downsample": 4, "num_res_blocks": 9,
        },
        "encoder": {"ndf": config.encoder_ndf, "z_dim": config.z_dim, "input_size": 64, "num_layers": 4,
                    "norm": "instance", "spectral_norm": True} if encoder else None,
        "discriminator": {"input_channels": semantic + 3, "ndf": config.d_ndf, "num_scales": config.d_num_scales,
                          "num_layers": config.d_num_layers, "norm": "instance", "spectral_norm": True} if discriminator else None,
        "extra": {},
    }


def test_derived_sizes_are_computed_from_the_fields():
    config = tiny_model_config(n_labels=5, dontcare=True, use_instance=True, crop_size=128, upsampling="more", aspect_ratio=2.0)
    assert config.label_channels == 6 and config.semantic_channels == 7 and config.discriminator_input_channels == 10
    assert config.latent_size == (1, 2) and config.output_size == (64, 128)
    model = SPADEModel(config)
    assert model.generator.blocks["head"].norm_0.shared[0].in_channels == 7
    assert model.discriminator.scales[0].groups[0][0].in_channels == 10
    # the encoder's size and depth: what the trainer derives unless they are given
    auto = ModelConfig(crop_size=128, use_vae=True)
    assert (auto.encoder_input_size, auto.encoder_num_layers) == (128, 5)
    assert (ModelConfig(crop_size=512, use_vae=True).encoder_input_size, ModelConfig().encoder_num_layers) == (256, 6)


def test_config_json_round_trips_and_leaves_out_other_generators_fields(tmp_path):
    torch.manual_seed(0)
    spade = tiny_model_config()
    model = SPADEModel(spade)
    model.save_pretrained(tmp_path / "spade")
    written = json.loads((tmp_path / "spade" / "config.json").read_text())
    assert "num_downsample" not in written and "num_res_blocks" not in written and "generator" not in written
    assert ModelConfig.from_dict(written) == spade
    pix2pixhd = dataclasses.replace(tiny_model_config(use_vae=False), arch="pix2pixhd", num_downsample=2, num_res_blocks=3)
    assert pix2pixhd.to_dict()["num_res_blocks"] == 3 and ModelConfig.from_dict(pix2pixhd.to_dict()) == pix2pixhd
    with pytest.raises(ValueError, match="unknown option"):
        ModelConfig.from_dict({**written, "ngf_typo": 3})


def test_the_bundled_model_folder_in_the_nested_layout_loads(tmp_path):
    # tests/data/nested_config_landscapes.json: the config.json the earlier bundled landscape model shipped
    # (nested layout); the bundled weights have the same architecture, so they must load under it
    bundled = bundled_model_path("default")
    if bundled is None:
        pytest.skip("this installation has no bundled model")
    folder = tmp_path / "nested"
    folder.mkdir()
    for name in ("generator.safetensors", "encoder.safetensors"):
        shutil.copy(bundled / name, folder / name)
    shutil.copy(Path(__file__).parent / "data" / "nested_config_landscapes.json", folder / "config.json")
    nested = json.loads((folder / "config.json").read_text())
    config = ModelConfig.from_dict(nested)
    g, e, d = nested["generator"], nested["encoder"], nested["discriminator"]
    for name in ("ngf", "z_dim", "norm", "spade_hidden", "use_vae", "num_upsampling_layers", "crop_size", "spade_kernel"):
        assert getattr(config, name) == g[name], name
    assert config.semantic_channels == g["semantic_channels"] and config.discriminator_input_channels == d["input_channels"]
    assert (config.encoder_ndf, config.encoder_input_size, config.encoder_num_layers) == (e["ndf"], e["input_size"], e["num_layers"])
    assert (config.d_ndf, config.d_num_scales, config.d_num_layers, config.d_norm) == (d["ndf"], d["num_scales"], d["num_layers"], d["norm"])
    model = SPADEModel.from_pretrained(folder)  # every tensor of the files fits the networks built from it
    assert model.encoder is not None and model.discriminator is None  # the folder ships no discriminator weights


@pytest.mark.parametrize("networks", [(True, True), (False, False)], ids=["all", "generator-only"])
def test_an_older_model_folder_loads_with_identical_outputs(tmp_path, networks):
    torch.manual_seed(0)
    encoder, discriminator = networks
    config = tiny_model_config(use_vae=encoder, use_instance=True)
    model = SPADEModel(config, with_discriminator=discriminator).eval()
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(_nested(config, encoder, discriminator)))
    again = SPADEModel.from_pretrained(tmp_path / "m").eval()
    # the fields of networks the old config did not list keep their defaults
    unset = [f.name for f in dataclasses.fields(ModelConfig)
             if (f.name.startswith("encoder_") and not encoder) or (f.name.startswith("d_") and not discriminator)]
    assert again.config == dataclasses.replace(config, **{name: ModelConfig.__dataclass_fields__[name].default for name in unset})
    assert (again.encoder is not None, again.discriminator is not None) == networks
    label = torch.randint(0, 5, (2, 1, 64, 64))
    z = torch.randn(2, 16) if encoder else None
    with torch.no_grad():
        assert torch.equal(model.generator(model.semantic(label), z), again.generator(again.semantic(label), z))


def test_an_older_config_that_cannot_be_rebuilt_is_a_clear_error(tmp_path):
    config = tiny_model_config(use_vae=True)
    SPADEModel(config).save_pretrained(tmp_path / "m")
    nested = _nested(config, True, True)
    nested["discriminator"]["input_channels"] += 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(nested))
    with pytest.raises(SpadekitError, match=r"config.json.*discriminator.input_channels is 10"):
        SPADEModel.from_pretrained(tmp_path / "m")


def test_an_older_training_checkpoint_exports(tmp_path):
    from spadekit.train import checkpoint as ckpt
    from spadekit.train.export import export_run

    torch.manual_seed(0)
    config = tiny_model_config(use_vae=True)
    model = SPADEModel(config).eval()
    g_state = {f"generator.{k}": v for k, v in model.generator.state_dict().items()}
    g_state.update({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()})
    state = {"step": 7, "g": g_state, "ema": None, "d": model.discriminator.state_dict(),
             "model_config": _nested(config, True, True)}
    ckpt.save_checkpoint(tmp_path / "run", 7, state, keep_last=1)
    step, folder = export_run(tmp_path / "run", tmp_path / "out")
    again = SPADEModel.from_pretrained(folder).eval()
    assert step == 7 and again.config == config
    label = torch.randint(0, 5, (1, 1, 64, 64))
    z = torch.randn(1, 16)
    with torch.no_grad():
        assert torch.equal(model.generator(model.semantic(label), z), again.generator(again.semantic(label), z))


def test_importing_the_models_loads_no_data_train_or_app_code():
    report = "print(sorted(m for m in sys.modules if m.startswith(('spadekit.data', 'spadekit.train', 'spadekit.app'))))"
    for program in (f"import sys, spadekit.models; {report}", f"import sys, spadekit.models, spadekit.inference; {report}"):
        out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout.strip()
        assert out == "[]", (program, out)
