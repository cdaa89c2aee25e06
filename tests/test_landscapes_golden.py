"""The first samples of `spadekit data make-landscapes` are pinned by hash so the data cannot change by accident.

At the default size (256) and seed (0), samples 2 and 7 are augmented real photos and the other six are
composites, so both sources are covered. The hashes are of the bytes written (JPEG images, PNG label maps).
When the data is meant to change (new photos, a new sampler), recompute them in the same commit:
`python tests/test_landscapes_golden.py` prints the current values.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from spadekit.cli import main

N_SAMPLES = 8
EXPECTED = {
    "images": "6f3269431ccc23325a72517bc3f54ab3efa2d0e953350ae52baaa26e9f4aacab",
    "labels": "ad28df6ee3e1ded47679cc635acb3682fa6a795675f846281c29c4bdf462f5f0",
}


def written_hashes(out: Path) -> dict[str, str]:
    """sha256 over every file of images/ and of labels/, in name order, each file's name then its bytes."""
    assert main(["data", "make-landscapes", "--n", str(N_SAMPLES), "--out", str(out)]) == 0
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
