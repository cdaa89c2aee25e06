"""Faults between processes, caused with real ones: a second trainer on a run folder, a trainer killed while
holding it, a data-loading worker that dies. Subprocess trainers: marked slow."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spadekit.cli import main as cli_main
from spadekit.train import checkpoint as ckpt
from test_train_smoke import TINY, write_tiny_dataset

REPO = Path(__file__).resolve().parents[1]
CHEAP = ["train.batch_size=1", "train.lambda_vgg=0", "train.num_threads=1", "log.log_every=1", "log.sample_every=1000",
         "log.num_samples=1", "log.checkpoint_seconds=null", "log.tensorboard=false"]


def _start_trainer(data: Path, run: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "spadekit.cli", "train", "--config", str(TINY), f"data.root={data}", *CHEAP, *overrides,
               "--out", str(run)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_until_training(run: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Until the trainer has logged a step and written a checkpoint."""
    deadline = time.monotonic() + timeout
    while not ckpt.list_checkpoints(run):
        assert process.poll() is None, f"the trainer ended early: {process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "the trainer did not start training"
        time.sleep(0.05)


def _resume_command(data: Path, run: Path, steps: int) -> list[str]:
    return ["train", "--config", str(TINY), f"data.root={data}", *CHEAP, f"train.steps={steps}", "--out", str(run), "--resume"]


@pytest.mark.slow
def test_a_second_trainer_is_refused_at_once_and_a_killed_one_does_not_block(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", count=2)
    run = tmp_path / "run"
    first = _start_trainer(data, run, "train.steps=100000", "log.checkpoint_every=1")
    try:
        _wait_until_training(run, first)
        assert cli_main(_resume_command(data, run, steps=3)) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"error: {run} is in use by another trainer (PID {first.pid}, holding {run / '.lock'}); "
                       "wait for it to finish or stop it, or train into another --out")
        assert first.poll() is None  # refused without waiting for the first to end
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    # the kernel released the killed trainer's lock: the run continues from its newest checkpoint
    newest = ckpt.list_checkpoints(run)[-1][0]
    assert cli_main(_resume_command(data, run, steps=newest + 2)) == 0
    assert f"from step_{newest:08d}.pt" in capsys.readouterr().out
    assert ckpt.list_checkpoints(run)[-1][0] == newest + 2 and (run / "final").is_dir()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_a_data_worker_that_dies_ends_the_run_cleanly(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", count=8)
    run = tmp_path / "run"
    trainer = _start_trainer(data, run, "train.steps=100000", "log.checkpoint_every=2", "data.num_workers=1")
    try:
        _wait_until_training(run, trainer)
        deadline = time.monotonic() + 120
        while not (workers := _children(trainer.pid)):  # workers come and go with each epoch
            assert trainer.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(workers[0], signal.SIGKILL)  # as the kernel's out-of-memory killer would
        _, err = trainer.communicate(timeout=120)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    assert trainer.returncode == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err[-2000:]
    assert errors[0].startswith("error: step ") and "a data-loading worker process died" in errors[0] and "--resume" in errors[0]
    assert "Traceback" not in err
    for _, path in ckpt.list_checkpoints(run):  # what was saved is whole
        assert ckpt.load_checkpoint(path)["step"] >= 2
