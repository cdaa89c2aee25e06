"""The fast inference path computes what the plain generator computes (parity fixtures included)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spadekit.data.semantic import instance_edges
from spadekit.fast import FastGenerator
from spadekit.interop.nvlabs import import_nvlabs
from spadekit.models import SPADEModel

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_model_config  # noqa: E402
from test_nvlabs_parity import CASES  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fast_path_matches_reference_fixtures(case):
    options = json.loads((case / "options.json").read_text())["options"]
    inputs = dict(np.load(case / "inputs.npz"))
    expected = dict(np.load(case / "expected.npz"))
    model = import_nvlabs(case).eval()
    label = torch.from_numpy(inputs["label"])  # raw values are channel indices here (dontcare = label_nc)
    edge = None if options.get("no_instance") else instance_edges(torch.from_numpy(inputs["instance"]))
    fast = FastGenerator(model.generator, model.labels.num_channels, edge is not None)
    z = torch.from_numpy(inputs["z"]) if "z" in inputs else None
    with torch.inference_mode():
        out = fast(label, edge, z)
    np.testing.assert_allclose(out.numpy(), expected["G_eval_out"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", [
    dict(use_vae=False, upsampling="more", crop_size=128, norm="instance"),
    dict(use_vae=True, use_instance=False, norm="batch", dontcare=True),
])
def test_fast_path_matches_plain_generator(variant):
    model = SPADEModel(tiny_model_config(**variant)).eval()
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (2, 1, h, w))
    semantic = model.semantic(label, label)
    edge = semantic[:, -1:] if model.use_instance else None
    z = torch.randn(2, 16)
    fast = FastGenerator(model.generator, model.labels.num_channels, model.use_instance)
    with torch.inference_mode():
        torch.testing.assert_close(fast(label, edge, z), model.generator(semantic, z), atol=1e-4, rtol=1e-4)
