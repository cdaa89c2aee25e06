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
