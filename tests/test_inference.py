"""Pipeline, generate CLI, label editing, ONNX export, and clear errors on bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny_model_config
from spadekit import SpadekitError
from spadekit.cli import main as cli_main
from spadekit.inference import Pipeline, load_label_map, replace_label
from spadekit.models import SPADEModel


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    SPADEModel(tiny_model_config(norm="instance", use_instance=False, with_d=False)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipe(model_dir):
    return Pipeline.from_pretrained(model_dir)


def _ids(pipe, h=64, w=64):
    ids = np.zeros((h, w), dtype=np.int64)
    ids[h // 2:] = 1
    ids[:, : w // 3] = 2
    return ids


def test_seeds_styles_and_replacement_change_the_image(pipe, tmp_path):
    ids = _ids(pipe)
    a, b = pipe(ids, seed=0, num_images=2)
    again = pipe(ids, seed=1)[0]
    # image k of seed s is image 0 of seed s+k (up to float rounding between batch sizes)
    assert np.abs(np.asarray(b, dtype=int) - np.asarray(again, dtype=int)).max() <= 1
    assert not np.array_equal(np.asarray(a), np.asarray(b)), "different seeds must differ"
    # a style image steers the output
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 2] = 255
    s1 = np.asarray(pipe(ids, style_image=red)[0], dtype=float)
    s2 = np.asarray(pipe(ids, style_image=blue)[0], dtype=float)
    assert np.abs(s1 - s2).mean() > 0.1
    steps = pipe.interpolate_styles(ids, red, blue, steps=3)
    assert len(steps) == 3 and not np.array_equal(np.asarray(steps[0]), np.asarray(steps[2]))
    # replacing a class changes the image where it was
    edited = replace_label(ids, pipe.labels, "c1", "c3")
    assert (edited == 3).sum() == (ids == 1).sum() and not (edited == 1).any()
    out_a = np.asarray(pipe(ids, seed=0)[0], dtype=float)
    out_b = np.asarray(pipe(edited, seed=0)[0], dtype=float)
    # (a random model mixes regions through instance norm; locality is tested on the trained default model)
    assert np.abs(out_a - out_b)[ids == 1].mean() > 1.0


def test_label_map_inputs(pipe, tmp_path):
    ids = _ids(pipe)
    colours = pipe.labels.colorize(ids)
    Image.fromarray(colours).save(tmp_path / "colour.png")
    Image.fromarray(ids.astype(np.uint8)).save(tmp_path / "ids.png")
    assert np.array_equal(load_label_map(tmp_path / "colour.png", pipe.labels), ids)
    assert np.array_equal(load_label_map(tmp_path / "ids.png", pipe.labels), ids)
    assert np.array_equal(load_label_map(colours, pipe.labels), ids)
    assert np.array_equal(load_label_map(Image.fromarray(ids.astype(np.uint8)), pipe.labels), ids)
    # batched internally: more images than the batch size
    assert len(pipe(ids, num_images=5, size=32)) == 5
    multiple = pipe.size_multiple
    assert pipe(ids, size=(2 * multiple, multiple))[0].size == (2 * multiple, multiple)  # (width, height), as PIL


def test_bad_inputs_have_clear_messages(pipe, tmp_path):
    ids = _ids(pipe)
    bad = ids.copy()
    bad[0, 0] = 42
    with pytest.raises(SpadekitError, match=r"\[42\]"):
        pipe(bad)
    colours = pipe.labels.colorize(ids)
    colours[0, 0] = (1, 2, 3)
    with pytest.raises(SpadekitError, match="#010203"):
        pipe(colours)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(SpadekitError, match="junk.png"):
        pipe(tmp_path / "junk.png")
    with pytest.raises(SpadekitError, match="no such file"):
        pipe(tmp_path / "missing.png")
    with pytest.raises(SpadekitError, match="strict"):
        pipe(_ids(pipe, 32, 48), strict=True)
    result = pipe.run(_ids(pipe, 32, 48))
    assert result.images[0].size == (64, 64)
    assert [n for n in result.notes if "resized from 48x32 to 64x64" in n]
    assert pipe.run(ids).notes == []  # notes belong to their call, not to the pipeline
    with pytest.raises(SpadekitError, match="unknown label name 'lava'"):
        replace_label(ids, pipe.labels, "lava", "c1")
    with pytest.raises(SpadekitError, match="not found"):
        Pipeline.from_pretrained(tmp_path / "nope")


def test_generate_cli(model_dir, tmp_path, capsys):
    maps = tmp_path / "maps"
    maps.mkdir()
    ids = _ids(None)
    for name in ("a", "b"):
        Image.fromarray(ids.astype(np.uint8)).save(maps / f"{name}.png")
    out = tmp_path / "out"
    code = cli_main(["generate", str(model_dir), str(maps), "--out", str(out), "--num", "2", "--seed", "5",
                     "--replace", "c1=c3", "--contact-sheet", "--dtype", "float32"])
    assert code == 0
    assert "note:" not in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_seed5.png", "a_seed6.png", "b_seed5.png", "b_seed6.png", "contact_sheet.png"]
    # errors: exit status 2, a message, no traceback
    capsys.readouterr()
    assert cli_main(["generate", str(model_dir), str(maps), "--out", str(out), "--replace", "c1=lava"]) == 2
    err = capsys.readouterr().err
    assert "lava" in err and "Traceback" not in err
    assert cli_main(["generate", "no-such-model", str(maps), "--out", str(out)]) == 2
    assert "no-such-model" in capsys.readouterr().err
    # the notes of the generation path reach the user
    Image.fromarray(_ids(None, 32, 48).astype(np.uint8)).save(maps / "small.png")
    assert cli_main(["generate", str(model_dir), str(maps / "small.png"), "--out", str(out), "--dtype", "float32"]) == 0
    assert "note: label map resized from 48x32 to 64x64" in capsys.readouterr().out


@pytest.mark.parametrize("use_vae", [True, False])
def test_onnx_matches_pytorch(tmp_path, use_vae):
    import onnxruntime as ort  # installed by `make test` (dev extra)

    torch.manual_seed(0)
    model = SPADEModel(tiny_model_config(norm="instance", use_vae=use_vae, with_d=False)).eval()
    model.save_pretrained(tmp_path / "m")
    assert cli_main(["export-onnx", str(tmp_path / "m"), str(tmp_path / "g.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "g.onnx"))
    label = torch.randint(0, 5, (3, 1, 64, 64))
    semantic = model.semantic(label, label)
    feed = {"semantic": semantic.numpy()}
    z = None
    if use_vae:
        z = torch.randn(3, 16)
        feed["z"] = z.numpy()
    onnx_out = session.run(None, feed)[0]
    with torch.no_grad():
        torch_out = model.generator(semantic, z).numpy()
    assert onnx_out.shape == (3, 3, 64, 64)  # dynamic batch (exported with 2)
    np.testing.assert_allclose(onnx_out, torch_out, atol=2e-4)


def test_fast_and_plain_pipelines_agree(model_dir):
    fast = Pipeline.from_pretrained(model_dir)
    plain = Pipeline.from_pretrained(model_dir, fast=False)
    assert fast.fast and not plain.fast
    assert fast.model.generator.blocks["head"].lookup_tables is not None
    assert plain.model.generator.blocks["head"].lookup_tables is None
    ids = _ids(fast)
    a = np.asarray(fast(ids, seed=3, num_images=2)[1], dtype=float)
    b = np.asarray(plain(ids, seed=3, num_images=2)[1], dtype=float)
    assert np.abs(a - b).max() <= 1  # uint8 rounding only
    # the dense-map entry point (evaluation's) runs the same path
    channels = fast.prepare_channels(ids)
    z = fast.latents(2, 3)
    torch.testing.assert_close(fast.generate(fast.model.semantic(channels), z), fast.generate_from_channels(channels, z), atol=0, rtol=0)


def test_bfloat16_pipeline_stores_fast_weights_in_bf16_and_stays_close(model_dir):
    bf16 = Pipeline.from_pretrained(model_dir, dtype="bfloat16")
    assert bf16.model.generator.to_rgb.weight.dtype == torch.bfloat16
    fp32 = Pipeline.from_pretrained(model_dir)
    ids = _ids(fp32)
    a = np.asarray(fp32(ids, seed=1)[0], dtype=float)
    b = np.asarray(bf16(ids, seed=1)[0], dtype=float)
    psnr = 10 * np.log10(255.0 ** 2 / max(((a - b) ** 2).mean(), 1e-12))
    assert psnr > 30, psnr


def test_pipeline_leaves_the_model_it_is_given_as_it_was():
    from spadekit.layers.spectral_norm import has_spectral_norm

    torch.manual_seed(0)
    model = SPADEModel(tiny_model_config(norm="batch", use_instance=True)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for fast in (True, False):
        pipe = Pipeline(model, dtype="bfloat16", fast=fast)
        assert pipe.model is not model and pipe.model.discriminator is None
        pipe(_ids(pipe), seed=0)
    assert model.training and model.discriminator is not None and has_spectral_norm(model.generator)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("arch", ["pix2pixhd", "concat"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_baselines_run_through_the_one_pipeline(arch, dtype):
    torch.manual_seed(0)
    config = tiny_model_config(norm="instance", use_instance=False, use_vae=False)
    config.arch, config.num_downsample, config.num_res_blocks = arch, 2, 2
    model = SPADEModel(config).eval()
    fast, plain = Pipeline(model, dtype=dtype), Pipeline(model, dtype=dtype, fast=False)
    ids = _ids(fast)
    a = np.asarray(fast(ids)[0], dtype=float)
    b = np.asarray(plain(ids)[0], dtype=float)
    assert a.shape == (64, 64, 3) and np.abs(a - b).mean() < (0.5 if dtype == "float32" else 3.0)
