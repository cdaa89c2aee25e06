"""The data-efficiency recipe options in the trainer: each trains a few steps on the tiny preset with
finite losses, checkpoints, exports a model folder that loads, and the augmentation state resumes exactly."""
from __future__ import annotations

import json

import pytest
import torch

from spadekit import SpadekitError
from spadekit.models import SPADEModel
from spadekit.models.clade import CLADEGenerator
from spadekit.models.oasis import OASISDiscriminator
from spadekit.models.projected import ProjectedDiscriminator
from spadekit.train import checkpoint as ckpt
from spadekit.train.config import PRESET_DIR, load_config
from spadekit.train.loop import train
from test_train_smoke import write_tiny_dataset

TINY = PRESET_DIR / "tiny.yaml"
# 32x32 (batch norm: the latent grid is 1x1) keeps each run to a few seconds
COMMON = ["data.crop_size=32", "data.load_size=32", "model.norm=batch", "model.encoder_size=32", "train.batch_size=2",
          "train.lambda_vgg=0", "train.num_threads=2", "log.log_every=1", "log.sample_every=3", "log.checkpoint_every=3"]
OASIS = ["model.d_arch=oasis", "model.d_num_layers=3", "train.lambda_feat=0", "model.use_vae=false"]

OPTIONS = {
    "diffaug": ["train.diffaug=translation,cutout,color", "train.diffaug_p=0.5"],
    "ada": ["train.diffaug=translation,cutout,color", "train.diffaug_p=0", "train.ada_target=0.6", "train.ada_ramp_images=4"],
    "oasis_labelmix_3d_noise": [*OASIS, "train.labelmix=10", "model.noise_3d=8", "train.fast_path=true"],
    "oasis_with_diffaug": [*OASIS, "train.labelmix=10", "train.diffaug=translation,cutout,color"],
    "projected": ["model.d_arch=projected", "model.d_vgg_layers=relu2_2,relu3_3", "model.d_ndf=8"],
    "clade": ["model.arch=clade", "train.fast_path=true"],
    "clade_dense": ["model.arch=clade", "model.use_vae=false"],
    "color_loss": ["train.lambda_color=10"],
    "color_loss_global": ["train.lambda_color_global=10"],
    "detail_loss": ["train.lambda_detail=30"],
}
NETWORKS = {"oasis_labelmix_3d_noise": OASISDiscriminator, "oasis_with_diffaug": OASISDiscriminator,
            "projected": ProjectedDiscriminator}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data"), count=4)


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_option_trains_checkpoints_and_exports(option, data, tmp_path):
    config = load_config(TINY, [f"data.root={data}", "train.steps=3", *COMMON, *OPTIONS[option]])
    run = tmp_path / "run"
    final = train(config, run)
    records = _records(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        losses = {k: v for k, v in r.items() if k.startswith(("G_", "D_"))}
        assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), r
    if "labelmix" in " ".join(OPTIONS[option]):
        assert all("D_labelmix" in r for r in records)
    if "diffaug" in " ".join(OPTIONS[option]):
        assert all("aug_p" in r for r in records)
    assert all(("G_color" in r) == (option == "color_loss") for r in records)
    assert all(("G_color_global" in r) == (option == "color_loss_global") for r in records)
    # the checkpoint rebuilds the networks; the exported folder loads with its discriminator
    path, state = ckpt.load_latest(run)
    assert state["step"] == 3 and state["augment"] is not None
    model = SPADEModel.from_pretrained(final)
    assert isinstance(model.discriminator, NETWORKS.get(option, type(model.discriminator)))
    assert model.discriminator.state_dict().keys() == state["d"].keys()
    if option.startswith("clade"):
        assert isinstance(model.generator, CLADEGenerator)
    model.eval()
    label = torch.zeros(1, 1, 32, 32, dtype=torch.long)
    with torch.no_grad():
        image = model(model.semantic(label), torch.randn(1, model.config.latent_dim) if model.config.latent_dim else None)
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()


@pytest.mark.slow
def test_ada_moves_p_and_a_resumed_run_matches_an_uninterrupted_one(data, tmp_path):
    # no learning-rate decay, so a run of 4 steps and one of 6 agree on their first 4
    options = [f"data.root={data}", *COMMON, "log.checkpoint_every=4", "train.decay_start=1", *OPTIONS["ada"]]
    whole = tmp_path / "whole"
    train(load_config(TINY, [*options, "train.steps=6"]), whole)
    records = _records(whole)
    p = [r["aug_p"] for r in records]
    # ADA reads sign(D(real)) over 4 batches (8 images), then moves p by 8 / 4 images, clipped to [0, 1]
    r_t = sum(r["D_real_sign"] for r in records[:4]) / 4
    assert p[:4] == [0.0] * 4 and p[4] == (1.0 if r_t > 0.6 else 0.0)

    parted = tmp_path / "parted"
    train(load_config(TINY, [*options, "train.steps=4"]), parted)
    train(load_config(TINY, [*options, "train.steps=6"]), parted, resume=True)
    a, b = records, _records(parted)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b):
        for key in ("G_gan", "D_fake", "D_real", "D_real_sign", "aug_p"):
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-7), (x["step"], key)


def test_recipe_options_are_checked():
    with pytest.raises(SpadekitError, match="train.diffaug.*'rotate'"):
        load_config(TINY, ["train.diffaug=translation,rotate"])
    with pytest.raises(SpadekitError, match="train.ada_target.*policy"):
        load_config(TINY, ["train.ada_target=0.6"])
    with pytest.raises(SpadekitError, match="train.labelmix.*oasis"):
        load_config(TINY, ["train.labelmix=10"])
    with pytest.raises(SpadekitError, match="train.lambda_feat"):
        load_config(TINY, ["model.d_arch=oasis"])
    with pytest.raises(SpadekitError, match="model.d_arch"):
        load_config(TINY, ["model.d_arch=stylegan"])
    with pytest.raises(SpadekitError, match="train.lambda_color"):
        load_config(TINY, ["train.lambda_color=-1"])
    with pytest.raises(SpadekitError, match="train.lambda_color_global"):
        load_config(TINY, ["train.lambda_color_global=-1"])
    with pytest.raises(SpadekitError, match="train.lambda_detail"):
        load_config(TINY, ["train.lambda_detail=-1"])
    with pytest.raises(SpadekitError, match="noise_3d.*VAE"):
        load_config(TINY, ["model.noise_3d=8"])  # the tiny preset has use_vae on
    with pytest.raises(SpadekitError, match="noise_3d.*spade"):
        load_config(TINY, ["model.noise_3d=8", "model.use_vae=false", "model.arch=clade"])


# what each comparison preset changes against recipe_a_base: (section, option)
ARMS = {
    "recipe_b_diffaug": {("train", k) for k in ("diffaug", "diffaug_p", "ada_target")},  # ada_ramp_images: the default
    "recipe_c_oasis": {("model", "use_vae"), ("model", "noise_3d"), ("model", "d_arch"), ("model", "d_num_layers"),
                       ("train", "lambda_feat"), ("train", "lambda_vgg"), ("train", "labelmix")},
    "recipe_d_projected": {("model", "d_arch"), ("model", "d_vgg_layers"), ("model", "d_channel_mixing")},
    "recipe_e_clade": {("model", "arch")},
    "recipe_f_ngf32": {("model", "ngf")},
}


def _changed(a: dict, b: dict) -> set:
    return {(s, k) for s in a for k in set(a[s]) | set(b[s]) if a[s].get(k, "absent") != b[s].get(k, "absent")}


def test_recipe_presets_differ_from_the_base_only_in_their_option():
    base = load_config("recipe_a_base").to_dict()
    # the base is the landscapes preset at 128x128
    assert _changed(load_config("landscapes").to_dict(), base) == {("data", "load_size"), ("data", "crop_size")}
    assert (base["data"]["crop_size"], base["train"]["batch_size"], base["train"]["fast_path"]) == (128, 4, True)
    for name, options in ARMS.items():
        assert _changed(base, load_config(name).to_dict()) == options, name
