"""Checkpoints: atomic writes, keep-last-K, corrupt files skipped, and exact resume after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from spadekit.fileio import atomic_write
from spadekit.train import checkpoint as ckpt
from test_train_smoke import TINY, perceptual_overrides, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
STEPS = 16  # 2N


# ---- checkpoint files ---------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "checkpoints" / "step_00000001.pt"
    atomic_write(path, lambda p: torch.save({"step": 1}, p))

    def crash(p):
        Path(p).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, crash)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_keep_last_and_corrupt_newest_is_skipped(tmp_path):
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((2,), float(step))}, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]
    # A kill during a write leaves at most a temporary file, which is ignored and cleaned up later.
    (tmp_path / "checkpoints" / ".step_00000005.pt.abc.tmp").write_bytes(b"partial")
    ckpt.checkpoint_path(tmp_path, 4).write_bytes(b"garbage")  # e.g. a disk error
    with pytest.warns(UserWarning, match="step_00000004"):
        path, state = ckpt.load_latest(tmp_path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.full((2,), 3.0))
    ckpt.save_checkpoint(tmp_path, 5, {"step": 5}, keep_last=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000004.pt", "step_00000005.pt"]


def test_rng_state_round_trip():
    import random

    state = ckpt.rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    torch.save(state, "/dev/null")  # only tensors and plain containers
    ckpt.set_rng_state(state)
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(3), expected[2])


# ---- killing real runs --------------------------------------------------------------------------
def _command(data: Path, run: Path, resume: bool) -> list[str]:
    args = [
        sys.executable, "-m", "spadekit.cli", "train", "--config", str(TINY), f"data.root={data}",
        f"train.steps={STEPS}", "train.deterministic=true", "train.num_threads=1",
        "log.checkpoint_every=1", "log.keep_last=3", "log.log_every=2", "log.sample_every=8", *perceptual_overrides(),
        "--out", str(run),
    ]
    return args + (["--resume"] if resume else [])


def _start(data, run, resume=False) -> subprocess.Popen:
    return subprocess.Popen(_command(data, run, resume), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(data, run, resume=False) -> None:
    process = _start(data, run, resume)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]


def _assert_same_run(reference: Path, run: Path) -> None:
    for name in ("generator", "encoder", "discriminator"):
        a, b = load_file(reference / "final" / f"{name}.safetensors"), load_file(run / "final" / f"{name}.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs"
    a = torch.load(ckpt.checkpoint_path(reference, STEPS), weights_only=True)
    b = torch.load(ckpt.checkpoint_path(run, STEPS), weights_only=True)
    assert b["step"] == a["step"] == STEPS and (b["epoch"], b["step_in_epoch"]) == (a["epoch"], a["step_in_epoch"])
    for key in ("g", "d", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"checkpoint {key}.{name} differs"
    for key in ("opt_g", "opt_d"):
        for index, slots in a[key]["state"].items():
            for slot, value in slots.items():
                assert torch.equal(value, b[key]["state"][index][slot]), f"{key} state {index}.{slot} differs"
    assert torch.equal(a["noise"], b["noise"])
    # metrics.jsonl: lines logged after the checkpoint a run resumed from were dropped and redone.
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(2, STEPS + 1, 2))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    data = write_tiny_dataset(root / "data")
    _finish(data, root / "run")
    return data, root / "run"


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"training ended before {path.name}: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(uninterrupted, tmp_path):
    data, reference = uninterrupted
    run = tmp_path / "run"
    process = _start(data, run)
    _wait_for(ckpt.checkpoint_path(run, STEPS // 2), process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (run / "final").exists()  # killed mid-run
    newest = ckpt.list_checkpoints(run)[-1][0]
    assert STEPS // 2 <= newest < STEPS
    _finish(data, run, resume=True)
    _assert_same_run(reference, run)


@pytest.mark.slow
def test_random_kills_still_finish_with_valid_checkpoints(uninterrupted, tmp_path):
    """Four SIGKILLs at random moments: one during start-up, three a random fraction of a step after a
    random checkpoint appeared (inside a step, a checkpoint write or a sample grid). The moments are tied to
    the run's progress, not to wall time, so a fast machine cannot finish the run before a kill lands."""
    data, reference = uninterrupted
    run = tmp_path / "run"
    rng = np.random.default_rng(1234)
    targets = [int(rng.integers(2, 5)), int(rng.integers(6, 9)), int(rng.integers(10, 12))]  # ends >= 5 steps away
    process = _start(data, run)
    time.sleep(float(rng.uniform(0.05, 0.5)))  # start-up: imports, data, model
    assert process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    for target in targets:
        process = _start(data, run, resume=True)
        _wait_for(ckpt.checkpoint_path(run, target), process)
        time.sleep(float(rng.uniform(0.0, 0.05)))
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        for _, path in ckpt.list_checkpoints(run):  # whatever survived is complete
            assert ckpt.load_checkpoint(path)["step"] >= 1
        assert ckpt.list_checkpoints(run)[-1][0] < STEPS
    _finish(data, run, resume=True)
    saved = ckpt.list_checkpoints(run)
    assert saved[-1][0] == STEPS and len(saved) <= 3
    assert not list((run / "checkpoints").glob("*.tmp"))
    _assert_same_run(reference, run)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_to_the_process_group_checkpoints_and_stops(tmp_path, sig):
    """A scheduler's SIGTERM or a terminal's Ctrl-C reaches the data workers too: the run still stops cleanly."""
    data = write_tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    command = _command(data, run, False)
    command[command.index("--out"):command.index("--out")] = ["data.num_workers=1", "train.steps=200", "log.checkpoint_every=100"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(run / "metrics.jsonl", process)  # a couple of steps done, workers running
    os.killpg(process.pid, sig)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    assert "stopped at step" in out + err and "DataLoader worker" not in err
    step, path = ckpt.list_checkpoints(run)[-1]
    assert 2 <= step < 200 and ckpt.load_checkpoint(path)["step"] == step
