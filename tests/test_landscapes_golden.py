"""The first samples of `spadekit data make-landscapes` are pinned by hash so the data cannot change by accident.

At the default size (256), seed (0) and real fraction (0.5), samples 2, 5, 6 and 7 are crops of real
photos and the other four are composites, so both sources are covered. The hashes are of the bytes
written (JPEG images, PNG label maps).
numpy picks SIMD kernels by CPU at run time, and its AVX-512 ones round some float results
differently (the JPEG bytes then differ on an AVX-512 machine, the label maps do not), so the data is
made in a subprocess with numpy's run-time dispatch turned off (NPY_DISABLE_CPU_FEATURES): the same
baseline kernels on every x86-64 CPU.
When the data is meant to change (new photos, a new sampler), recompute them in the same commit:
`python tests/test_landscapes_golden.py` prints the current values.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

N_SAMPLES = 8
EXPECTED = {
    "images": "f1dbef9b6c81e15c4f9719a1d650be665e8055d3eee10d67583752bb931923d8",
    "labels": "d93dede1f140b3ca8d3fca9e74548a392df012b90b34b9678763a39ee26abf8a",
}


def _dispatched_cpu_features() -> list[str]:
    """The SIMD targets this numpy build chooses between at run time (what NPY_DISABLE_CPU_FEATURES can turn off)."""
    try:
        from numpy._core import _multiarray_umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath
    return list(_multiarray_umath.__cpu_dispatch__)


def written_hashes(out: Path) -> dict[str, str]:
    """sha256 over every file of images/ and of labels/, in name order, each file's name then its bytes,
    of `make-landscapes` run with numpy on its baseline kernels (module docstring)."""
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(_dispatched_cpu_features())}
    command = [sys.executable, "-m", "spadekit.cli", "data", "make-landscapes", "--n", str(N_SAMPLES), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    hashes = {}
    for folder in ("images", "labels"):
        digest = hashlib.sha256()
        files = sorted((out / folder).iterdir())
        assert len(files) == N_SAMPLES, f"{folder}: {len(files)} files"
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        hashes[folder] = digest.hexdigest()
    return hashes


def test_first_samples_are_unchanged(tmp_path):
    assert written_hashes(tmp_path / "ds") == EXPECTED


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(written_hashes(Path(tmp) / "ds"), file=sys.stdout)
