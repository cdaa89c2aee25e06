"""A disk that fills up while a run writes its files: a real tmpfs of a few MB, mounted for the test (root
only; the fixture says so where it cannot mount). Each failed write must name the file and what it holds,
leave the older file intact and no temporary file behind, and a resume once space is freed must go on."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import tiny_model_config
from spadekit import SpadekitError
from spadekit.cli import main as cli_main
from spadekit.fileio import WriteError, free_bytes
from spadekit.models import SPADEModel
from spadekit.train import checkpoint as ckpt
from spadekit.train.export import export_run
from spadekit.train.loop import train
from test_faults_training import tiny_config
from test_train_smoke import write_tiny_dataset

PAGE = 4096


class SmallDisk:
    """A tmpfs at `path` whose size can be changed while files are on it (mount -o remount,size=)."""

    def __init__(self, path: Path, size: int):
        self.path = path
        path.mkdir(parents=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"a full disk needs a small tmpfs, and mounting one needs root here ({result.stderr.strip()})")

    def resize(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    @property
    def used(self) -> int:
        stat = os.statvfs(self.path)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize

    def fill(self, leave: int) -> Path:
        """A ballast file that leaves `leave` bytes free."""
        ballast = self.path / "ballast"
        ballast.write_bytes(b"\0" * (free_bytes(self.path) - leave))
        return ballast

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def disk(tmp_path):
    small = SmallDisk(tmp_path / "disk", 64 << 20)
    yield small
    small.unmount()


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_disk_stops_the_run_with_the_checkpoint_intact_and_resume_goes_on(disk, tmp_path):
    data = write_tiny_dataset(tmp_path / "data", count=2)
    run = disk.path / "run"
    train(tiny_config(data, "train.steps=1"), run)
    first = ckpt.checkpoint_path(run, 1)
    saved = first.read_bytes()

    # the sample grid of step 2 does not fit (the start-up files do: two pages)
    ballast = disk.fill(leave=2 * PAGE)
    with pytest.raises(SpadekitError) as failure:
        train(tiny_config(data, "train.steps=4", "log.sample_every=1", "log.log_every=1000"), run, resume=True)
    message = str(failure.value)
    assert message.startswith(f"step 2: cannot write the sample grid {run / 'samples' / 'step_000002.png'}: no space left")
    assert "step_00000001.pt (step 1) is intact" in message and "--resume" in message and "\n" not in message
    assert not _temporaries(run) and first.read_bytes() == saved
    ballast.unlink()

    # the checkpoint of step 2 does not fit: the disk holds half a checkpoint more than it has now
    disk.resize((disk.used + len(saved) // 2) // PAGE * PAGE)
    with pytest.raises(SpadekitError, match=r"^step 2: cannot write the checkpoint .*step_00000002\.pt: no space left") as failure:
        train(tiny_config(data, "train.steps=4"), run, resume=True)
    assert "step_00000001.pt (step 1) is intact: free space, then continue with --resume" in str(failure.value)
    assert not _temporaries(run) and first.read_bytes() == saved
    assert [step for step, _ in ckpt.list_checkpoints(run)] == [1]

    # space freed: the run resumes from step 1 and finishes
    disk.resize(64 << 20)
    final = train(tiny_config(data, "train.steps=2"), run, resume=True)
    assert [step for step, _ in ckpt.list_checkpoints(run)] == [1, 2]
    assert SPADEModel.from_pretrained(final).generator is not None and not _temporaries(run)


def _checkpoint_of_a_model(run: Path) -> SPADEModel:
    """A run folder whose one checkpoint holds a tiny model (what export-run reads)."""
    torch.manual_seed(0)
    model = SPADEModel(tiny_model_config(use_vae=True))
    g = {f"generator.{k}": v for k, v in model.generator.state_dict().items()}
    g.update({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()})
    ckpt.save_checkpoint(run, 5, {"step": 5, "g": g, "ema": None, "d": model.discriminator.state_dict(),
                                  "model_config": model.config.to_dict()}, keep_last=1)
    return model


def test_a_full_disk_while_a_model_folder_is_written_leaves_no_partial_folder(disk, tmp_path, capsys):
    model = _checkpoint_of_a_model(tmp_path / "run")
    out = disk.path / "model"
    export_run(tmp_path / "run", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    disk.resize((disk.used + PAGE * 4) // PAGE * PAGE)  # room for a few pages, not for another model

    # over an existing folder: refused, the old folder as it was
    with pytest.raises(WriteError, match=rf"cannot write the model folder {out}: no space left"):
        export_run(tmp_path / "run", out, use_ema=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a new folder: none made, nothing hidden left beside it; the command says it in one line
    assert cli_main(["export-run", str(tmp_path / "run"), str(disk.path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot write the model folder {disk.path / 'other'}: no space left") and "\n" not in err
    assert sorted(p.name for p in disk.path.iterdir()) == ["model"]
    # save_pretrained itself stages the folder the same way: the folder is named, none is made, nothing is left
    with pytest.raises(WriteError, match=rf"cannot write the model folder {disk.path / 'third'}: no space left"):
        model.save_pretrained(disk.path / "third")
    assert sorted(p.name for p in disk.path.iterdir()) == ["model"] and not _temporaries(disk.path)

    disk.resize(64 << 20)
    step, folder = export_run(tmp_path / "run", disk.path / "other")
    again = SPADEModel.from_pretrained(folder)
    assert step == 5 and all(torch.equal(a, b) for a, b in zip(model.generator.state_dict().values(), again.generator.state_dict().values()))
