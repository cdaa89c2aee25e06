"""The Table-3 reproduction configs (docs/reproduction.md) load and compare generators of equal size."""
from __future__ import annotations

import pytest

from spadekit.data.labels import get_label_set
from spadekit.models import GENERATORS
from spadekit.train.config import PRESET_DIR, load_config

ARCHS = ("spade", "pix2pixhd", "concat")


def _load(arch: str):
    return load_config(PRESET_DIR / f"repro_{arch}.yaml")


def _generator_parameters(arch: str) -> int:
    config = _load(arch)
    mconfig = config.model_config(get_label_set(config.data.labels), use_instance=False)
    generator = GENERATORS[mconfig.arch](mconfig)
    return sum(p.numel() for p in generator.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_config_picks_its_generator_and_shares_the_recipe(arch):
    config, reference = _load(arch), _load("spade")
    assert config.model.arch == arch
    assert not config.model.use_vae
    # Everything but the generator's shape is the same in the three configs.
    generator_keys = {"arch", "ngf", "spade_hidden", "num_downsample", "num_res_blocks"}
    model = {k: v for k, v in vars(config.model).items() if k not in generator_keys}
    assert model == {k: v for k, v in vars(reference.model).items() if k not in generator_keys}
    assert config.data == reference.data
    assert config.train == reference.train


def test_generators_have_nearly_equal_parameter_counts():
    counts = {arch: _generator_parameters(arch) for arch in ARCHS}
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts
