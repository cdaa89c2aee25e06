"""A wheel built from the tree, installed in a fresh virtual environment, runs the demo and trains a
preset by name from a folder outside the repository (nothing read from the checkout)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from test_train_smoke import perceptual_overrides

REPO = Path(__file__).resolve().parents[1]


def _run(args: list, cwd: Path, timeout: int = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _copy_of_the_tree(dest: Path) -> Path:
    """The files a clone has (tracked or not ignored), without build outputs or the venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.mark.slow
def test_wheel_installs_and_runs_demo_and_train_by_name(tmp_path):
    tree = _copy_of_the_tree(tmp_path / "tree")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheel", tree], tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("spadekit-*.whl")

    # A fresh environment that sees this one's packages (torch, numpy, ...) through a .pth line, so the
    # wheel's dependencies resolve offline; spadekit itself comes from the wheel only.
    env = tmp_path / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env], tmp_path)
    python = env / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_spadekit_test_base.pth").write_text("".join(f"{path}\n" for path in sorted(here)))
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", wheel], tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    found = json.loads(_run([python, "-c", "import json, spadekit, spadekit.train.config as c; "
                             "print(json.dumps([spadekit.__file__, c.preset_names()]))"], work))
    assert Path(found[0]).is_relative_to(env), found[0]
    assert "landscapes" in found[1] and "tiny" in found[1]
    spadekit = env / "bin" / "spadekit"

    out = _run([spadekit, "demo", "--out", "demo", "--seeds", "1"], work)
    assert (work / "demo" / "contact_sheet.png").is_file()
    hint = next(line for line in out.splitlines() if line.startswith("paint your own:"))
    typed = hint.split(":", 1)[1].split()[0]
    assert Path(typed).is_file() or shutil.which(typed), hint  # a command the user can actually run

    _run([spadekit, "data", "make-landscapes", "--n", "8", "--size", "64", "--out", "data"], work)
    _run([spadekit, "train", "--config", "landscapes", "data.root=data", "data.load_size=64", "data.crop_size=64",
          "data.num_workers=0", "train.steps=2", "train.batch_size=2", "train.num_threads=1", "train.precision=fp32",
          "train.perceptual_size=64", "log.num_samples=2", *perceptual_overrides(), "--out", "run"], work)
    # the landscapes preset's model (ngf 16 in the shipped YAML), loaded back by the installed package
    loaded = _run([python, "-c", "from spadekit.models import SPADEModel; "
                   "print(SPADEModel.from_pretrained('run/final').config.ngf)"], work)
    assert loaded.split() == ["16"], loaded
