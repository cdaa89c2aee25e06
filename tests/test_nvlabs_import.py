"""import-nvlabs on configurations beyond the shipped fixtures, and its error messages.

Reference-format folders are written by export_nvlabs from our own models (reference key names,
legacy spectral-norm keys, options.json / opt.txt), then imported back through the CLI.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from helpers import tiny_model_config
from spadekit.cli import main as cli_main
from spadekit.interop.nvlabs import export_nvlabs, parse_opt_txt
from spadekit.models import SPADEModel

VARIANTS = [
    dict(norm="instance", use_vae=False, upsampling="most", crop_size=256),
    dict(norm="batch", use_vae=False, use_instance=False, dontcare=True),
    dict(norm="syncbatch", use_vae=False, num_scales=3, aspect_ratio=2.0, crop_size=128, upsampling="more"),
]


def _reference_compatible(**variant):
    return dataclasses.replace(tiny_model_config(**variant), spade_hidden=128, use_vae=False)


@pytest.mark.parametrize("variant", VARIANTS, ids=["instance-most", "batch-dontcare-noinst", "3scales-aspect2-more"])
def test_export_then_import_is_identical(variant, tmp_path, capsys):
    torch.manual_seed(0)
    model = SPADEModel(_reference_compatible(**variant)).eval()
    export_nvlabs(model, tmp_path / "ref")
    keys = torch.load(tmp_path / "ref" / "latest_net_G.pth", weights_only=True).keys()
    assert any(k.endswith("weight_orig") for k in keys) and any(k.startswith("head_0.norm_0.mlp_shared") for k in keys)
    assert cli_main(["import-nvlabs", str(tmp_path / "ref"), str(tmp_path / "ours")]) == 0
    again = SPADEModel.from_pretrained(tmp_path / "ours").eval()
    h, w = model.output_size
    label = torch.randint(0, model.labels.num_channels, (1, 1, h, w))
    semantic = model.semantic(label, label)
    image = torch.rand(1, 3, h, w) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.generator(semantic), again.generator(semantic))
        for a, b in zip(model.discriminator(semantic, image), again.discriminator(semantic, image)):
            assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_opt_txt_is_read(tmp_path):
    torch.manual_seed(0)
    model = SPADEModel(_reference_compatible(norm="instance", use_vae=False, with_d=False)).eval()
    export_nvlabs(model, tmp_path / "ref", epoch="20")
    options = json.loads((tmp_path / "ref" / "options.json").read_text())["options"]
    (tmp_path / "ref" / "options.json").unlink()
    lines = ["----------------- Options ---------------"]
    lines += [f"{k:>25}: {v!s:<40}\t[default: x]" for k, v in options.items()]
    (tmp_path / "ref" / "opt.txt").write_text("\n".join(lines) + "\n")
    assert parse_opt_txt((tmp_path / "ref" / "opt.txt").read_text())["norm_G"] == options["norm_G"]
    assert cli_main(["import-nvlabs", str(tmp_path / "ref"), str(tmp_path / "ours")]) == 0
    assert SPADEModel.from_pretrained(tmp_path / "ours").config.norm == "instance"


def test_import_errors_are_clear(tmp_path, capsys):
    torch.manual_seed(0)
    model = SPADEModel(_reference_compatible(norm="batch", use_vae=False)).eval()
    export_nvlabs(model, tmp_path / "ref")
    # a wrong label_nc: the message names the layer, both shapes and the likely option
    path = tmp_path / "ref" / "options.json"
    data = json.loads(path.read_text())
    data["options"]["label_nc"] += 2
    path.write_text(json.dumps(data))
    assert cli_main(["import-nvlabs", str(tmp_path / "ref"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layer fc.weight" in err and "label_nc" in err and "in the checkpoint but" in err and "Traceback" not in err
    # missing generator / missing folder / missing options
    (tmp_path / "empty").mkdir()
    assert cli_main(["import-nvlabs", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "latest_net_G.pth" in capsys.readouterr().err
    assert cli_main(["import-nvlabs", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().err
    path.unlink()
    assert cli_main(["import-nvlabs", str(tmp_path / "ref"), str(tmp_path / "out")]) == 2
    assert "opt.txt" in capsys.readouterr().err
    # a file that is not a checkpoint
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "latest_net_G.pth").write_bytes(b"garbage")
    (tmp_path / "bad" / "options.json").write_text(json.dumps({"options": data["options"]}))
    assert cli_main(["import-nvlabs", str(tmp_path / "bad"), str(tmp_path / "out")]) == 2
    assert "cannot be read" in capsys.readouterr().err
