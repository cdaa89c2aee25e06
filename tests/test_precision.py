"""train.precision auto: bf16 only where the hardware runs it natively."""
from __future__ import annotations

import torch

from spadekit import precision
from spadekit.train.config import TrainConfig


def test_auto_follows_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "fast_bf16", lambda device: True)
    assert precision.resolve_training_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "fast_bf16", lambda device: False)
    assert precision.resolve_training_precision("auto", cpu) == "fp32"
    for name in ("fp32", "bf16", "fp16"):
        assert precision.resolve_training_precision(name, cpu) == name


def test_auto_is_a_valid_training_precision():
    config = TrainConfig.from_dict({"train": {"precision": "auto", "steps": 1}})
    assert config.train.precision == "auto"


def test_fast_bf16_answers_on_this_machine():
    assert isinstance(precision.fast_bf16(torch.device("cpu")), bool)


def test_cpu_bf16_is_native_only_with_the_bf16_instructions(tmp_path, monkeypatch):
    """AVX-512 alone emulates bf16 (oneDNN still says 'supported'): auto must then pick float32."""
    cpu = torch.device("cpu")
    plain, native = tmp_path / "plain", tmp_path / "native"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n")
    native.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 amx_tile\n")
    assert precision.cpu_flags(plain) == {"fpu", "sse2", "avx2", "avx512f", "avx512bw", "avx512_vnni"}
    assert precision.cpu_flags(tmp_path / "missing") is None
    real = precision.cpu_flags
    monkeypatch.setattr(precision, "cpu_flags", lambda: real(plain))
    assert precision.fast_bf16(cpu) is False
    assert precision.resolve_training_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: real(native))
    assert precision.fast_bf16(cpu) is True
    assert precision.resolve_training_precision("auto", cpu) == "bf16"
