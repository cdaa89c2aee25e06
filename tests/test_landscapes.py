"""make-landscapes: determinism, label validity, layout on disk, class coverage, credits, paintings
(the labelled photos and their crops: test_landscape_photos.py)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from PIL import Image

from spadekit.data.labels import landscape_labels, rgb_to_hex
from spadekit.landscapes import generate_sample, make_landscapes
from spadekit.landscapes.textures import assets_dir, landscapes_dir, load_manifest

LABELS = landscape_labels()
KNOWN_IDS = set(LABELS.ids)


def test_same_seed_same_sample_and_different_seed_differs():
    for index in (0, 7):
        a_img, a_lab = generate_sample(11, index, 64, real_fraction=0.0)
        b_img, b_lab = generate_sample(11, index, 64, real_fraction=0.0)
        assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    c_img, _ = generate_sample(12, 0, 64, real_fraction=0.0)
    assert not np.array_equal(c_img, generate_sample(11, 0, 64, real_fraction=0.0)[0])


def test_written_dataset_is_byte_identical_for_a_seed(tmp_path):
    a = make_landscapes(tmp_path / "a", 6, size=64, seed=3, real_fraction=0.5, progress=False)
    b = make_landscapes(tmp_path / "b", 6, size=64, seed=3, real_fraction=0.5, progress=False)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 6 * 2 + 2
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_output_layout_sizes_ids_and_palette(tmp_path):
    out = make_landscapes(tmp_path / "ds", 5, size=96, seed=1, real_fraction=0.4, progress=False)
    images = sorted((out / "images").iterdir())
    labels = sorted((out / "labels").iterdir())
    assert [p.stem for p in images] == [p.stem for p in labels] == [f"{i:05d}" for i in range(5)]
    for ip, lp in zip(images, labels):
        img, lab = Image.open(ip), Image.open(lp)
        assert img.mode == "RGB" and img.size == (96, 96)
        assert lab.mode == "L" and lab.size == (96, 96)
        assert set(np.unique(np.asarray(lab)).tolist()) <= KNOWN_IDS
    palette = yaml.safe_load((out / "palette.yaml").read_text())
    expected = [{"name": l.name, "id": l.id, "color": rgb_to_hex(l.color)} for l in LABELS.labels]
    assert palette == expected
    assert (out / "CREDITS.md").read_text() == (landscapes_dir() / "CREDITS.md").read_text()


def test_class_coverage_over_many_samples():
    seen: dict[int, int] = {}
    for i in range(50):
        _, lab = generate_sample(0, i, 64, real_fraction=0.2)
        assert set(np.unique(lab).tolist()) <= KNOWN_IDS
        for v in np.unique(lab).tolist():
            seen[v] = seen.get(v, 0) + 1
    names = {LABELS.labels[LABELS.ids.index(i)].name for i in seen}
    for required in ("sky", "grass", "sea", "mountain", "tree", "snow", "clouds", "sand", "rock"):
        assert required in names, f"{required} never appears in 50 samples (seen: {sorted(names)})"


def test_every_asset_is_credited():
    credits = (landscapes_dir() / "CREDITS.md").read_text()
    files = [p for p in landscapes_dir().rglob("*") if p.is_file() and p.suffix in (".jpg", ".png")]
    assert files
    for p in files:
        rel = "landscapes/" + p.relative_to(landscapes_dir()).as_posix()
        assert rel in credits, f"{rel} is not named in CREDITS.md"
    manifest_files = {"landscapes/" + m["file"] for m in load_manifest()}
    assert manifest_files == {"landscapes/" + p.relative_to(landscapes_dir()).as_posix() for p in files}
    # each source row names a package, a path, an author and a licence
    rows = [l for l in credits.splitlines() if re.match(r"^\| [A-Z]{2}\w* \|", l)]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 5:
            assert all(cells), f"incomplete credit row: {row}"
    styles = assets_dir() / "styles"
    style_credits = (styles / "CREDITS.md").read_text()
    style_files = sorted(p.name for p in styles.glob("*.jpg"))
    assert len(style_files) >= 4
    for name in style_files:
        assert name in style_credits


def test_starter_paintings_load_and_match_their_descriptions():
    from spadekit.landscapes.paintings import load_painting, painting_specs, render_painting

    specs = painting_specs()
    assert len(specs) == 8
    for spec in specs:
        lab = load_painting(spec["name"])
        assert lab.shape == (256, 256) and lab.dtype == np.uint8
        used = set(np.unique(lab).tolist())
        assert used <= KNOWN_IDS and len(used) >= 3, (spec["name"], used)
        # the committed PNG is what the description draws
        assert np.array_equal(lab, render_painting(spec)), spec["name"]
    with pytest.raises(Exception, match="no starter painting"):
        load_painting("no-such-painting")
