"""Faults of a training run, caused for real: a damaged newest checkpoint, losses that explode, a training
file that goes bad mid-run. Each must end with one clear message and the last good checkpoint intact."""
from __future__ import annotations

import json
import math
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from helpers import OnNthRead
from spadekit import SpadekitError
from spadekit.train import checkpoint as ckpt
from spadekit.train.config import load_config
from spadekit.train.loop import train
from test_train_smoke import TINY, write_tiny_dataset


def tiny_config(data: Path, *overrides: str):
    """The tiny preset at its cheapest: batch 1, no perceptual loss, a checkpoint every step, no LR decay
    (so runs of different lengths agree on their common steps)."""
    return load_config(TINY, [
        f"data.root={data}", "train.batch_size=1", "train.lambda_vgg=0", "train.num_threads=1", "train.decay_start=1",
        "train.deterministic=true", "log.log_every=1", "log.sample_every=1000", "log.checkpoint_every=1",
        "log.checkpoint_seconds=null", "log.keep_last=10", "log.num_samples=1", "log.tensorboard=false", *overrides,
    ])


def finite_tensors(state) -> bool:
    """Every floating tensor of a (nested) checkpoint is finite: an independent walk of the state."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(finite_tensors(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(finite_tensors(v) for v in state)
    return True


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory) -> tuple[Path, Path]:
    """(data, run): a run of 3 steps with a checkpoint after each; tests work on copies of the run."""
    root = tmp_path_factory.mktemp("three_steps")
    data = write_tiny_dataset(root / "data", count=2)
    train(tiny_config(data, "train.steps=3"), root / "run")
    return data, root / "run"


@pytest.fixture
def run_of_three(three_steps, tmp_path) -> tuple[Path, Path]:
    data, run = three_steps
    shutil.copytree(run, tmp_path / "run")
    return data, tmp_path / "run"


# ---- corrupt checkpoints --------------------------------------------------------------------------
def test_a_truncated_newest_checkpoint_is_set_aside_and_the_one_before_resumed(run_of_three, capsys):
    data, run = run_of_three
    config = tiny_config(data, "train.steps=3")
    newest = ckpt.checkpoint_path(run, 3)
    reference = torch.load(newest, weights_only=True)  # what the uninterrupted run saved at step 3
    damaged = newest.read_bytes()[: newest.stat().st_size // 2]
    newest.write_bytes(damaged)  # a crash of the disk, not of our write (that one is atomic)

    train(config, run, resume=True)
    err = capsys.readouterr()
    assert "note: cannot read checkpoint" in err.err and "step_00000003.pt" in err.err
    assert "from step_00000002.pt (step 2)" in err.out
    # kept for inspection under another name, byte for byte; step 3 redone from step 2 gives the same state
    assert (run / "checkpoints" / "step_00000003.pt.unreadable").read_bytes() == damaged
    redone = torch.load(newest, weights_only=True)
    for key in ("g", "d", "ema"):
        for name, value in reference[key].items():
            assert torch.equal(value, redone[key][name]), f"{key}.{name}"

    # none readable: a clear error, nothing started, nothing changed
    for _, path in ckpt.list_checkpoints(run):
        path.write_bytes(b"\0" * 64)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    with pytest.raises(SpadekitError, match=r"none of its 3 checkpoint\(s\) can be read.*nothing was started"):
        train(config, run, resume=True)
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before


# ---- non-finite losses ----------------------------------------------------------------------------
def test_an_exploding_learning_rate_stops_the_run_before_any_bad_checkpoint(run_of_three, capsys):
    data, run = run_of_three
    good = {p.name: p.read_bytes() for _, p in ckpt.list_checkpoints(run)}
    # Adam moves each weight by about the learning rate: weights of 1e20 overflow float32 in the next forward
    exploding = tiny_config(data, "train.steps=40", "train.lr_g=1e20", "train.lr_d=1e20")
    with pytest.raises(SpadekitError, match=r"^step (\d+): loss(es)? \w+ = (nan|inf|-inf).*training diverged") as failure:
        train(exploding, run, resume=True)
    failed_at = int(failure.value.args[0].split(":")[0].split()[1])
    saved = ckpt.list_checkpoints(run)
    # every checkpoint there is finite, the newest is from before the failing step, and the good ones are untouched
    assert saved[-1][0] < failed_at < 40
    assert all(finite_tensors(ckpt.load_checkpoint(path)) for _, path in saved)
    assert all(good[name] == (run / "checkpoints" / name).read_bytes() for name in good)
    assert f"the newest checkpoint {saved[-1][1].name}" in str(failure.value)

    # a bounded number of skips: two notes, then the third non-finite step stops the run
    capsys.readouterr()
    with pytest.raises(SpadekitError, match=r"after 2 skipped step\(s\)"):
        train(tiny_config(data, "train.steps=40", "train.lr_g=1e20", "train.lr_d=1e20", "train.skip_nonfinite=2"), run, resume=True)
    assert capsys.readouterr().err.count("its updates were skipped") == 2
    assert all(finite_tensors(ckpt.load_checkpoint(path)) for _, path in ckpt.list_checkpoints(run))


def test_a_non_finite_weight_is_never_checkpointed(run_of_three, monkeypatch):
    """The EMA weights enter no loss, so only the check before a save can see them go bad: here the EMA update
    of step 5 leaves an Inf in one weight (a test double for a numerical fault there)."""
    from spadekit.train import loop

    calls = []

    def faulty_ema_update(ema, model, decay):
        loop_ema_update(ema, model, decay)
        calls.append(1)
        if len(calls) == 2:
            next(ema.parameters()).data.view(-1)[0] = float("inf")

    loop_ema_update = loop.ema_update
    monkeypatch.setattr(loop, "ema_update", faulty_ema_update)
    data, run = run_of_three
    with pytest.raises(SpadekitError, match=r"^step 5: ema\.\S+ holds NaN or Inf, so no checkpoint was written; "
                                            r"the newest checkpoint step_00000004\.pt \(step 4\) is intact"):
        train(tiny_config(data, "train.steps=10"), run, resume=True)
    assert [step for step, _ in ckpt.list_checkpoints(run)] == [1, 2, 3, 4]
    assert all(finite_tensors(ckpt.load_checkpoint(path)) for _, path in ckpt.list_checkpoints(run))


def _nan_photo(item: dict) -> dict:
    """A transient non-finite input (one read per step at batch size 1; a resumed run reads its fixed
    sample batch from the run folder)."""
    return {**item, "image": torch.full_like(item["image"], float("nan"))}


def test_a_skipped_nonfinite_step_applies_no_update(run_of_three, capsys):
    from spadekit.train.batching import build_dataset

    data, run = run_of_three
    config = tiny_config(data, "train.steps=5", "train.skip_nonfinite=1")
    train(config, run, resume=True, dataset=OnNthRead(build_dataset(config), 1, _nan_photo))  # step 4's photo
    assert "step 4: loss" in capsys.readouterr().err
    states = {step: ckpt.load_checkpoint(path) for step, path in ckpt.list_checkpoints(run)}
    assert sorted(states) == [1, 2, 3, 4, 5] and all(finite_tensors(s) for s in states.values())
    buffers = ("_u", "_v", "running_mean", "running_var", "num_batches_tracked")  # spectral norm's power iteration, BN stats
    for key in ("g", "d", "ema"):  # parameters: step 4 changed nothing, step 5 trained again
        params = [name for name in states[3][key] if not name.endswith(buffers)]
        assert all(torch.equal(states[3][key][n], states[4][key][n]) for n in params), key
        assert not all(torch.equal(states[4][key][n], states[5][key][n]) for n in params), key
    assert states[4]["opt_g"]["state"][0]["step"] == states[3]["opt_g"]["state"][0]["step"] == 3
    assert states[5]["nonfinite_skips"] == 1
    logged = records(run)
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5] and logged[-1]["nonfinite_skips"] == 1
    assert all(math.isfinite(v) for r in logged for k, v in r.items() if k.startswith(("G_", "D_")))


# ---- a training file that goes bad mid-run --------------------------------------------------------
def _damage_after(run: Path, step: int, victim: Path) -> threading.Thread:
    """Truncate `victim` once the run has written its checkpoint of `step` (the run is then well under way)."""
    def watch():
        deadline = time.monotonic() + 120
        while not ckpt.checkpoint_path(run, step).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        victim.write_bytes(victim.read_bytes()[:40])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("workers", [0, 1])
def test_a_photo_truncated_mid_run_stops_it_naming_the_file(tmp_path, workers):
    data = write_tiny_dataset(tmp_path / "data", count=3)
    run = tmp_path / "run"
    victim = data / "images" / "001.png"
    watcher = _damage_after(run, 2, victim)
    with pytest.raises(SpadekitError) as failure:
        train(tiny_config(data, "train.steps=200", f"data.num_workers={workers}"), run)
    watcher.join()
    message = str(failure.value)
    assert str(victim) in message and "data.skip_bad_files" in message
    assert "Traceback" not in message and "DataLoader" not in message and "\n" not in message
    failed_at = int(message.split(":")[0].split()[1])
    newest, path = ckpt.list_checkpoints(run)[-1]
    assert 2 <= newest < failed_at and ckpt.load_checkpoint(path)["step"] == newest
    assert f"{path.name} (step {newest}) is intact" in message


def test_skip_bad_files_counts_the_skipped_pair_and_finishes(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", count=3)
    run = tmp_path / "run"
    victim = data / "images" / "002.png"
    watcher = _damage_after(run, 1, victim)
    final = train(tiny_config(data, "train.steps=9", "data.skip_bad_files=true"), run)
    watcher.join()
    out, err = capsys.readouterr()
    assert (final / "generator.safetensors").is_file()
    notes = [line for line in err.splitlines() if "skipped an unreadable training pair" in line]
    assert len(notes) == 1 and str(victim) in notes[0]  # one note per file, however often it comes round
    skipped = records(run)[-1]["skipped_files"]
    # 3 pairs, one step each: every epoch after the damage reads it once
    assert 2 <= skipped <= 9 // 3
    assert f"skipped unreadable training pairs {skipped} time(s)" in out
