"""Every variant with tiny configurations: shapes, gradients to every parameter, save/reload, determinism."""
from __future__ import annotations

import itertools

import pytest
import torch

from batch_norm import calibrate_batch_norm
from helpers import tiny_model_config
from spadekit import losses
from spadekit.config import ModelConfig
from spadekit.layers.spade import SPADE
from spadekit.layers.spectral_norm import fold_spectral_norm, has_spectral_norm
from spadekit.models import SPADEModel

VARIANTS = [
    # crop sizes keep the latent grid at 2x2 (instance norm needs more than one element)
    dict(upsampling=u, use_vae=v, norm=n, crop_size={"normal": 64, "more": 128, "most": 256}[u])
    for u, v, n in itertools.product(["normal", "more", "most"], [False, True], ["batch", "instance", "syncbatch"])
] + [
    dict(aspect_ratio=2.0, crop_size=128, upsampling="more"),
    dict(aspect_ratio=0.5, crop_size=64),
    dict(crop_size=96),
    dict(dontcare=True, use_instance=False),
    dict(num_scales=3),
]


def _inputs(model: SPADEModel, batch: int = 2):
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (batch, 1, h, w))
    semantic = model.semantic(label, label)
    image = torch.rand(batch, 3, h, w) * 2 - 1
    return semantic, image


@pytest.mark.parametrize("variant", VARIANTS, ids=[",".join(f"{k}={v}" for k, v in d.items()) for d in VARIANTS])
def test_variant_shapes_gradients_roundtrip(variant, tmp_path):
    config = tiny_model_config(**variant)
    model = SPADEModel(config)
    semantic, image = _inputs(model)
    h, w = config.output_size
    assert h * config.aspect_ratio == pytest.approx(w)

    # shapes
    z = model.encode(image) if model.encoder is not None else None
    fake = model.generator(semantic, z)
    assert fake.shape == (2, 3, h, w)
    assert fake.abs().max() <= 1
    feats = model.discriminator(semantic, fake)
    assert len(feats) == config.d_num_scales
    assert all(len(scale) == config.d_num_layers + 1 for scale in feats)
    assert all(scale[-1].shape[1] == 1 for scale in feats)

    # gradients reach every parameter of G, E (generator loss) and D (discriminator loss)
    real_feats = model.discriminator(semantic, image)
    g_loss = losses.hinge_loss(feats, True, False) + losses.feature_matching_loss(feats, real_feats)
    if model.encoder is not None:
        mu, logvar = model.encoder(image)
        g_loss = g_loss + losses.kl_divergence(mu, logvar)
    g_loss.backward()
    for name, p in itertools.chain(model.generator.named_parameters(), (model.encoder.named_parameters() if model.encoder else [])):
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    model.zero_grad()
    # least squares: unlike hinge it never saturates, so a zero gradient means a broken graph
    d_loss = losses.least_squares_loss(model.discriminator(semantic, fake.detach()), False) + losses.least_squares_loss(
        model.discriminator(semantic, image), True
    )
    d_loss.backward()
    for name, p in model.discriminator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches discriminator {name}"

    # save -> reload -> identical outputs (eval mode, fixed z)
    model.eval()
    z = torch.randn(2, config.z_dim) if config.use_vae else None
    with torch.no_grad():
        before = model.generator(semantic, z)
        d_before = model.discriminator(semantic, image)[-1][-1]
    model.save_pretrained(tmp_path / "m")
    again = SPADEModel.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        assert torch.equal(before, again.generator(semantic, z))
        assert torch.equal(d_before, again.discriminator(semantic, image)[-1][-1])


def test_deterministic_for_seed():
    config = tiny_model_config(use_vae=True)
    torch.manual_seed(3)
    a = SPADEModel(config).eval()
    torch.manual_seed(3)
    b = SPADEModel(config).eval()
    semantic, _ = _inputs(a)
    with torch.no_grad():
        torch.manual_seed(7)
        out_a = a.generator(semantic)
        torch.manual_seed(7)
        out_b = b.generator(semantic)
        torch.manual_seed(8)
        out_c = b.generator(semantic)
    assert torch.equal(out_a, out_b)
    assert not torch.allclose(out_a, out_c), "a different seed must give a different image"


def test_spade_uses_the_semantic_map():
    """gamma/beta depend on the map: the same activations with two maps give different outputs."""
    layer = SPADE(channels=4, semantic_channels=3, hidden=8, norm="instance")
    x = torch.randn(1, 4, 8, 8)
    a = torch.zeros(1, 3, 8, 8)
    a[:, 0] = 1
    b = torch.zeros(1, 3, 8, 8)
    b[:, 1] = 1
    assert not torch.allclose(layer(x, a), layer(x, b))
    # nearest resize: a map at another size is accepted
    assert layer(x, torch.zeros(1, 3, 32, 32)).shape == x.shape


def test_fold_spectral_norm_keeps_output():
    model = SPADEModel(tiny_model_config()).eval()
    semantic, image = _inputs(model)
    z = torch.randn(2, 16)
    with torch.no_grad():
        before = model.generator(semantic, z)
        assert has_spectral_norm(model.generator)
        fold_spectral_norm(model.generator)
        assert not has_spectral_norm(model.generator)
        after = model.generator(semantic, z)
    torch.testing.assert_close(before, after, atol=1e-6, rtol=1e-5)


def test_latent_grid_matches_reference_rule():
    # sw = crop / 2**n, sh = round(sw / aspect)
    assert ModelConfig(crop_size=256, num_upsampling_layers="more", aspect_ratio=2.0).latent_size == (2, 4)
    assert ModelConfig(crop_size=512, num_upsampling_layers="most", aspect_ratio=1.0).latent_size == (4, 4)
    assert ModelConfig(crop_size=512, num_upsampling_layers="more").output_size == (512, 512)


def test_impossible_generator_sizes_are_refused():
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(crop_size=100)
    with pytest.raises(ValueError, match="1x1 grid"):
        ModelConfig(crop_size=32, norm="instance")
    assert ModelConfig(crop_size=32, norm="batch").output_size == (32, 32)
    with pytest.raises(ValueError, match="no latent input"):
        ModelConfig(arch="pix2pixhd", use_vae=True)


def test_a_config_without_labels_is_a_clear_error():
    from spadekit import SpadekitError

    with pytest.raises(SpadekitError, match="no label set"):
        SPADEModel(ModelConfig())


def test_losses_by_hand():
    pred_real = [[torch.tensor([[0.5, 2.0]])]]
    pred_fake = [[torch.tensor([[-2.0, 0.0]])]]
    # hinge: D real mean(relu(1 - x)) = (0.5 + 0) / 2; D fake mean(relu(1 + x)) = (0 + 1) / 2; G -mean
    assert losses.hinge_loss(pred_real, True).item() == pytest.approx(0.25)
    assert losses.hinge_loss(pred_fake, False).item() == pytest.approx(0.5)
    assert losses.hinge_loss(pred_fake, True, for_discriminator=False).item() == pytest.approx(1.0)
    # least squares
    assert losses.least_squares_loss(pred_real, True).item() == pytest.approx(((0.5 - 1) ** 2 + 1) / 2)
    # KL of a standard normal is 0
    assert losses.kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)).item() == 0
    assert losses.kl_divergence(torch.ones(1, 2), torch.zeros(1, 2), weight=1.0).item() == pytest.approx(1.0)
    # perceptual: weighted L1
    f = [torch.ones(1, 1, 2, 2)] * 2
    r = [torch.zeros(1, 1, 2, 2)] * 2
    assert losses.perceptual_loss(f, r, (0.5, 1.0), weight=2.0).item() == pytest.approx(3.0)


def test_color_loss_compares_local_mean_colours_only():
    real = torch.zeros(1, 3, 16, 16)
    # a +-1 checkerboard has the same 2x2 means as flat grey: detail costs nothing
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0
    assert losses.color_loss(checker.expand(1, 3, 16, 16), real, weight=1.0, cells=8).item() == 0
    # a colour shift of 0.5 in one channel of three: L1 0.5 / 3, times the weight
    fake = real.clone()
    fake[:, 0] += 0.5
    assert losses.color_loss(fake, real, weight=3.0).item() == pytest.approx(0.5)
    # one 8x8 cell of four differs by 1 (cells=2): a quarter of the mean
    fake = real.clone()
    fake[:, :, :8, :8] = 1.0
    assert losses.color_loss(fake, real, weight=1.0, cells=2).item() == pytest.approx(0.25)
    # gradients reach the fake and not the real
    fake = torch.randn(2, 3, 16, 16, requires_grad=True)
    target = torch.randn(2, 3, 16, 16, requires_grad=True)
    losses.color_loss(fake, target).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0 and target.grad is None
    with pytest.raises(ValueError, match="one shape"):
        losses.color_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))


def test_global_color_loss_sees_the_cast_not_the_layout():
    """cells=1 (train.lambda_color_global): only the frame's mean colour counts, so a warm cast is
    penalised in full even where the local (8x8) errors are large and of either sign."""
    real = torch.zeros(1, 3, 16, 16)
    layout = real.clone()
    layout[:, :, :8] = 0.6  # light moved to the top half: the same mean
    layout[:, :, 8:] = -0.6
    assert losses.color_loss(layout, real, weight=1.0, cells=1).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.color_loss(layout, real, weight=1.0, cells=8).item() == pytest.approx(0.6)
    cast = layout.clone()
    cast[:, 0] += 0.1  # warmer: red up, blue down
    cast[:, 2] -= 0.1
    assert losses.color_loss(cast, real, weight=3.0, cells=1).item() == pytest.approx(0.2)
    # the gradient of the global term is the same everywhere in a channel: a pure cast
    fake = cast.clone().requires_grad_(True)
    losses.color_loss(fake, real, weight=1.0, cells=1).backward()
    assert torch.allclose(fake.grad[0, 0], fake.grad[0, 0, 0, 0].expand(16, 16)) and fake.grad[0, 0, 0, 0] > 0
    assert fake.grad[0, 2, 0, 0] < 0


def test_detail_loss_asks_for_the_amount_of_texture_not_its_place():
    """train.lambda_detail: local |Laplacian| energies are compared, so a texture shifted by one
    pixel costs nothing, while a flat (blurred) fake pays the texture's full energy."""
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2.0 - 1.0).expand(1, 3, 32, 32)
    shifted = torch.roll(checker, 1, dims=-1)
    assert losses.detail_loss(shifted, checker, weight=1.0, cells=4, octaves=1).item() == pytest.approx(0.0, abs=1e-6)
    flat = torch.zeros_like(checker)
    # a +-1 checkerboard: |Laplacian| of the grey level is 8 at every inner pixel; one octave, weight 2
    assert losses.detail_loss(flat, checker, weight=2.0, cells=4, octaves=1).item() == pytest.approx(16.0)
    # at half size the checkerboard averages to flat grey: the second octave adds nothing, the mean halves
    assert losses.detail_loss(flat, checker, weight=2.0, cells=4, octaves=2).item() == pytest.approx(8.0)
    # noise of twice the photo's energy costs as much as none: more detail is not free
    noisy = checker * 2.0
    assert losses.detail_loss(noisy, checker, weight=1.0, cells=4, octaves=1).item() == pytest.approx(8.0)
    # gradients reach the fake and not the real, and point the blurred fake towards more contrast
    fake = (0.5 * checker).clone().requires_grad_(True)
    target = checker.clone().requires_grad_(True)
    losses.detail_loss(fake, target, weight=1.0, cells=4, octaves=2).backward()
    assert target.grad is None and fake.grad.abs().sum() > 0
    step = fake.detach() - 0.1 * fake.grad.sign()
    assert losses.detail_loss(step, checker, 1.0, 4, 2) < losses.detail_loss(fake.detach(), checker, 1.0, 4, 2)
    with pytest.raises(ValueError, match="one shape"):
        losses.detail_loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="3 octaves need images of at least 12 pixels, got \\(11, 32\\)"):
        losses.detail_loss(torch.zeros(1, 3, 11, 32), torch.zeros(1, 3, 11, 32), octaves=3)


def test_float16_storage_halves_the_folder_and_reloads_as_float32_close_to_the_original(tmp_path):
    torch.manual_seed(0)
    model = SPADEModel(tiny_model_config(use_vae=True, norm="batch")).eval()
    calibrate_batch_norm(model)  # running statistics that match the activations, as a trained model has
    full = model.save_pretrained(tmp_path / "fp32")
    half = model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    for name in ("generator", "encoder", "discriminator"):
        size32, size16 = (full / f"{name}.safetensors").stat().st_size, (half / f"{name}.safetensors").stat().st_size
        assert size16 < 0.55 * size32, (name, size16, size32)
    reloaded = SPADEModel.from_pretrained(half).eval()
    assert all(p.dtype == torch.float32 for p in reloaded.parameters())
    semantic, _ = _inputs(model)
    z = torch.randn(2, model.config.z_dim)
    with torch.no_grad():
        a, b = model.generator(semantic, z), reloaded.generator(semantic, z)
    psnr = 10 * torch.log10(4 / (a - b).pow(2).mean())
    assert psnr > 40, float(psnr)
    assert not torch.equal(a, b)  # the weights really were rounded
