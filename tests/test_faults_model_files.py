"""Model folders and checkpoints that are damaged, altered or not ours: refused with a message naming the
file, and nothing in them ever runs (a pickle that would write a marker file when unpickled proves it)."""
from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch

from helpers import tiny_model_config
from spadekit import SpadekitError
from spadekit.models import SPADEModel
from spadekit.train import checkpoint as ckpt
from spadekit.train.export import export_run
from spadekit.train.loop import load_init_weights


class _WritesAMarker:
    """Unpickling this calls Path.touch(marker): if the marker exists, the file's code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def folder(tmp_path) -> Path:
    torch.manual_seed(0)
    return SPADEModel(tiny_model_config(use_vae=True)).save_pretrained(tmp_path / "model")


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + size]), raw[8 + size:]


def _write_header(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _conv_weight(header: dict) -> str:
    return next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 4 and v["shape"][0] != v["shape"][1])


def test_a_tampered_safetensors_header_is_refused_naming_the_file(folder):
    path = folder / "generator.safetensors"
    header, data = _header(path)
    key = _conv_weight(header)
    start, end = header[key]["data_offsets"]
    header[key]["data_offsets"] = [start, end + 10**9]  # points past the end of the file
    _write_header(path, header, data)
    with pytest.raises(SpadekitError, match=r"generator\.safetensors is not a valid safetensors file.*altered"):
        SPADEModel.from_pretrained(folder)


def test_a_consistent_header_with_another_shape_is_refused_naming_the_layer(folder):
    path = folder / "generator.safetensors"
    header, data = _header(path)
    key = _conv_weight(header)
    out_ch, in_ch, kh, kw = header[key]["shape"]
    header[key]["shape"] = [in_ch, out_ch, kh, kw]  # same bytes, other meaning
    _write_header(path, header, data)
    with pytest.raises(SpadekitError, match=rf"generator\.safetensors: layer {key} has shape \({in_ch}, {out_ch}"):
        SPADEModel.from_pretrained(folder)


def test_truncated_and_missing_files_are_refused(folder):
    encoder = folder / "encoder.safetensors"
    encoder.write_bytes(encoder.read_bytes()[:-100])
    with pytest.raises(SpadekitError, match=r"encoder\.safetensors is not a valid safetensors file"):
        SPADEModel.from_pretrained(folder)
    (folder / "generator.safetensors").unlink()
    with pytest.raises(SpadekitError, match=r"generator\.safetensors is missing"):
        SPADEModel.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(SpadekitError, match=r"config\.json: not a valid spadekit model config"):
        SPADEModel.from_pretrained(folder)
    (folder / "config.json").unlink()
    with pytest.raises(SpadekitError, match=r"no config\.json here"):
        SPADEModel.from_pretrained(folder)


def test_a_pickle_is_never_loaded_as_weights(folder, tmp_path):
    marker = tmp_path / "code-ran"
    payload = {"weights": _WritesAMarker(marker)}
    pickle.loads(pickle.dumps(payload))  # the payload does what it says when unpickled ...
    assert marker.exists()
    marker.unlink()

    # ... but as a model file, under the safetensors name or beside a missing one, it is refused unread
    (folder / "encoder.safetensors").write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(SpadekitError, match=r"encoder\.safetensors is a pickle"):
        load_init_weights(SPADEModel(tiny_model_config(use_vae=True)), folder)  # train.init_from
    torch.save(payload, folder / "generator.safetensors")
    with pytest.raises(SpadekitError, match=r"generator\.safetensors is a pickle.*refused without loading it"):
        SPADEModel.from_pretrained(folder)
    (folder / "generator.safetensors").rename(folder / "generator.pt")
    with pytest.raises(SpadekitError, match=r"generator\.safetensors is missing.*generator\.pt, a pickle"):
        SPADEModel.from_pretrained(folder)
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_checkpoint_holding_code_is_refused_by_resume_and_export(tmp_path, zip_format):
    marker = tmp_path / "code-ran"
    run = tmp_path / "run"
    path = ckpt.checkpoint_path(run, 1)
    path.parent.mkdir(parents=True)
    payload = {"step": 1, "g": {}, "d": {}, "model_config": {}, "x": _WritesAMarker(marker)}
    if zip_format:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(SpadekitError, match=r"step_00000001\.pt holds Python objects .*refused without running"):
        ckpt.load_checkpoint(path)
    with pytest.raises(SpadekitError, match=r"no readable checkpoint to export"):
        export_run(run, tmp_path / "out")
    assert not marker.exists() and path.is_file()  # refused, never deleted
