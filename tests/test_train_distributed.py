"""torchrun with 2 CPU processes (gloo) gives the result of one process with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny_model_config
from spadekit.models import SPADEModel
from spadekit.train.distributed import DistInfo, GlooSyncBatchNorm, maybe_sync_batchnorm
from test_train_smoke import TINY, perceptual_overrides, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]


def _overrides(data: Path) -> list[str]:
    # adam_eps: with the default 1e-8, Adam turns gradients that are zero up to rounding (biases just
    # before a norm layer) into full +-lr steps of random sign, so two exact-in-maths runs drift apart.
    # syncbatch: the SPADE norms become SyncBatchNorm under 2 processes (batch stats over both).
    return [
        "--config", str(TINY), f"data.root={data}", "model.norm=syncbatch", "train.steps=3", "train.batch_size=4",
        "train.grad_accum=2", "train.num_threads=1", "train.adam_eps=1e-4", "log.log_every=1", "log.checkpoint_every=1",
        "log.keep_last=3", *perceptual_overrides(),
    ]


def _run(prefix: list[str], args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(prefix + ["-m", "spadekit.cli", "train", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_match_one(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", count=8)
    single, double = tmp_path / "single", tmp_path / "double"
    _run([sys.executable], _overrides(data) + ["--out", str(single)])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _run(torchrun, _overrides(data) + ["--out", str(double)])

    # Only rank 0 wrote: one metrics line per step, one set of checkpoints.
    lines = (double / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    assert torch.load(double / "checkpoints" / "step_00000003.pt", weights_only=True)["world_size"] == 2

    # The same global batch, noise and losses up to float reduction order. Steps then drift apart
    # slowly: this tiny 64x64 model (2x2 latent grid, weights initialised at gain 0.02, norm layers
    # after every conv) magnifies rounding differences ~1000x per step, so weights are compared
    # after step 1 and losses over the first two steps.
    ones = [json.loads(text) for text in (single / "metrics.jsonl").read_text().splitlines()]
    twos = [json.loads(text) for text in lines]
    for step in (0, 1):
        for key in ("G_gan", "G_feat", "G_vgg", "G_kld", "G_l1", "D_fake", "D_real"):
            if key in ones[step]:
                a, b = ones[step][key], twos[step][key]
                assert abs(a - b) <= (1e-5 if step == 0 else 1e-3) * max(1.0, abs(a)), (step + 1, key, a, b)
    for name in ("g", "d"):
        start = torch.load(single / "checkpoints" / "step_00000001.pt", weights_only=True)[name]
        later = torch.load(single / "checkpoints" / "step_00000003.pt", weights_only=True)[name]
        two = torch.load(double / "checkpoints" / "step_00000001.pt", weights_only=True)[name]
        keys = [k for k in start if start[k].is_floating_point()]
        moved = sum((later[k] - start[k]).abs().sum().item() for k in keys)
        apart = sum((start[k] - two[k]).abs().sum().item() for k in keys)
        # After one step the runs differ by a tiny fraction of what two more steps of training move.
        assert moved > 0 and apart < 1e-4 * moved, (name, apart, moved)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_only_syncbatch_norms_are_synchronised_and_only_with_several_processes(device):
    """norm "syncbatch": SyncBatchNorm when world size > 1, plain BatchNorm otherwise; "batch" stays per process."""
    synchronised = GlooSyncBatchNorm if device == "cpu" else torch.nn.SyncBatchNorm
    two, one = DistInfo(world_size=2, device=torch.device(device)), DistInfo(world_size=1, device=torch.device(device))
    for norm, world, expected in (("syncbatch", two, True), ("syncbatch", one, False), ("batch", two, False)):
        generator = SPADEModel(tiny_model_config(norm=norm)).generator
        batch_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules())
        assert batch_norms > 0
        converted = maybe_sync_batchnorm(generator, norm, world)
        kinds = [type(m) for m in converted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert len(kinds) == batch_norms, (norm, world.world_size)
        assert all((k is synchronised) == expected for k in kinds), (norm, world.world_size, kinds)
