"""The one image opener, tensor <-> picture conversion, colouring and atomic writes."""
from __future__ import annotations

import io
import os
import stat
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny_labels
from spadekit import SpadekitError
from spadekit.fileio import atomic_write, atomic_write_bytes
from spadekit.imageio import MAX_PIXELS, ImageTooLarge, colorize, from_uint8, open_image, save_image, to_pil, to_uint8


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _claiming(side: int) -> bytes:
    """A valid 1x1 PNG whose header claims side x side pixels (a decompression bomb's header)."""
    data = bytearray(_png(np.zeros((1, 1), np.uint8)))
    data[16:24] = side.to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def test_open_image_reads_paths_and_bytes_alike(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(_png(pixels))
    from_path = open_image(tmp_path / "a.png")
    from_bytes = open_image(_png(pixels), "upload")
    assert np.array_equal(np.asarray(from_path), pixels) and np.array_equal(np.asarray(from_bytes), pixels)


@pytest.mark.parametrize(
    "data, error, words",
    [
        (_claiming(8000), ImageTooLarge, "over the limit of 50000000"),  # ours: 64 M pixels
        (_claiming(10000), ImageTooLarge, "decompression bomb"),  # PIL's warning level: 100 M
        (_claiming(30000), ImageTooLarge, "decompression bomb"),  # PIL's hard limit: 900 M
        (b"not an image at all", SpadekitError, "not an image file"),
        (_png(np.zeros((64, 64, 3), np.uint8))[:60], SpadekitError, "truncated"),
    ],
    ids=["our limit", "PIL warning", "PIL error", "not an image", "truncated"],
)
def test_open_image_refuses_with_one_message_naming_the_file(tmp_path, data, error, words):
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(error, match=words) as raised:
        open_image(path, "label map")
    assert str(raised.value).startswith(f"label map {path}:")
    with pytest.raises(error, match=words) as raised:
        open_image(data, "label_map")
    assert str(raised.value).startswith("label_map:")


def test_open_image_limits_missing_files_and_formats(tmp_path):
    png = _png(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageTooLarge, match="10x10 = 100 pixels is over the limit of 99; shrink"):
        open_image(png, max_pixels=99)
    assert open_image(png, max_pixels=100).size == (10, 10)
    with pytest.raises(SpadekitError, match="no such file") as raised:
        open_image(tmp_path / "missing.png")
    assert "missing.png" in str(raised.value)
    with pytest.raises(SpadekitError, match="accepted: JPEG"):
        open_image(png, formats=("JPEG",))
    with pytest.raises(SpadekitError, match="empty"):
        open_image(b"", "label_map")
    assert not issubclass(SpadekitError, ImageTooLarge) and MAX_PIXELS < (Image.MAX_IMAGE_PIXELS or 0)


def test_tensor_to_image_matches_an_independent_computation_and_round_trips():
    # pixel k is (k / 127.5 - 1); values within 0.3 of a level round to it, values beyond [-1, 1] clamp
    levels = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 5))
    offsets = np.random.default_rng(1).uniform(-0.3, 0.3, levels.shape)
    values = (levels + offsets) / 127.5 - 1
    values[0, 0, 0, :2] = (-3.0, 2.5)
    expected = levels.copy()
    expected[0, 0, 0, :2] = (0, 255)
    got = to_uint8(torch.tensor(values, dtype=torch.float32))
    assert got.shape == (2, 4, 5, 3) and got.dtype == np.uint8
    assert np.array_equal(got, expected.transpose(0, 2, 3, 1))
    pixels = np.random.default_rng(1).integers(0, 256, (2, 6, 4, 3), dtype=np.uint8)
    assert np.array_equal(to_uint8(from_uint8(pixels)), pixels)
    assert from_uint8(pixels).shape == (2, 3, 6, 4) and float(from_uint8(np.full((1, 1, 3), 255, np.uint8)).min()) == 1.0
    pictures = to_pil(from_uint8(pixels))
    assert [p.size for p in pictures] == [(4, 6)] * 2 and np.array_equal(np.asarray(pictures[1]), pixels[1])


def test_colorize_uses_the_label_colours():
    labels = tiny_labels(4)
    ids = np.array([[0, 1], [3, 200]])
    rgb = np.asarray(colorize(ids, labels))
    for (y, x), label_id in np.ndenumerate(ids):
        wanted = next((l.color for l in labels.labels if l.id == label_id), (0, 0, 0))
        assert tuple(rgb[y, x]) == tuple(wanted)


def test_save_image_is_atomic_and_picks_the_format(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path = save_image(tmp_path / "sub" / "x.png", pixels)
    assert np.array_equal(np.asarray(Image.open(path)), pixels)
    save_image(tmp_path / "x.jpg", pixels, quality=90)
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    with pytest.raises(SpadekitError, match="suffix"):
        save_image(tmp_path / "x.unknown", pixels)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sub", "x.jpg", "x.png"]


def test_atomic_write_keeps_the_old_file_on_failure_and_the_usual_permissions(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def fail(tmp):
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
