"""The labelled real photos of the landscape data: committed annotations against their labels and photos,
the multi-scale crop sampler, and the held-out photos kept out of every training source."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from spadekit.data.labels import landscape_labels
from spadekit.landscapes import generate_sample, load_annotations, photos, render_annotation
from spadekit.landscapes.textures import assets_dir, landscapes_dir, load_manifest
from tool_modules import load_tool

KNOWN_IDS = set(landscape_labels().ids)
LABELS = landscapes_dir() / "labels"
tool = load_tool("build_landscape_assets")


def heldout_ids_and_sources() -> tuple[set[str], set[tuple[str, str]]]:
    """The held-out photos: the tool's list, plus the ids and package files of the committed held-out set."""
    ids, sources = set(tool.HELDOUT_IDS), set()
    path = assets_dir() / "heldout" / "annotations.json"
    if path.is_file():
        for entry in json.loads(path.read_text())["photos"]:
            ids.add(entry["id"])
            sources.add((entry["source"]["package"], entry["source"]["path"].split(" (")[0]))
    return ids, sources


def test_every_annotation_covers_every_pixel_with_known_classes_at_the_photo_size():
    entries = load_annotations()
    assert len(entries) >= 26
    for entry in entries:
        with Image.open(landscapes_dir() / entry["photo"]) as photo:
            assert list(photo.size) == entry["size"], entry["photo"]
            assert max(photo.size) <= tool.PHOTO_MAX_SIDE
        label = render_annotation(entry)
        assert label.shape == (entry["size"][1], entry["size"][0])
        assert 255 not in label, f"{entry['photo']}: unlabelled pixels"
        assert set(np.unique(label).tolist()) <= KNOWN_IDS


def test_annotations_are_the_labels_as_drawn_scaled_to_the_committed_photos():
    entries = {e["id"]: e for e in load_annotations()}
    files = sorted(LABELS.glob("*.json"))
    assert sorted(entries) == [f.stem for f in files]
    for path in files:
        label = json.loads(path.read_text())
        entry = entries[path.stem]
        assert label["photo"] == path.stem and label["source"] == f"{entry['source']['package']}:{entry['source']['path']}"
        assert label.get("crop") == entry["source"]["crop"]
        sx, sy = entry["size"][0] / label["size"][0], entry["size"][1] / label["size"][1]
        # the photo keeps the labelled image's aspect, up to the rounding of either one's height
        assert abs(entry["size"][1] - label["size"][1] * sx) <= 0.5 * sx + 0.5, (path.stem, sx, sy)
        assert [p["class"] for p in label["polygons"]] == [p["class"] for p in entry["polygons"]]
        for drawn, committed in zip(label["polygons"], entry["polygons"]):
            expected = np.array(drawn["points"], dtype=float) * [sx, sy]
            assert np.abs(expected - np.array(committed["points"])).max() <= 0.051, path.stem


def test_most_photos_keep_far_more_than_512_pixels():
    sizes = {e["id"]: e["size"] for e in load_annotations()}
    large = [i for i, (w, h) in sizes.items() if max(w, h) > 1000]
    assert len(large) >= 20, sizes
    for photo_id in tool.KEPT_AT_512:
        assert sizes[photo_id][0] == 512


def test_crop_sides_are_log_uniform_from_the_finest_detail_to_the_short_side():
    rng = np.random.default_rng(0)
    short, size = 1000, 256
    finest = math.ceil(size / photos.FINEST_UPSCALE)
    sides = np.array([photos.crop_side(rng, short, size) for _ in range(4000)])
    assert sides.min() >= finest and sides.max() <= short
    assert sides.min() <= finest * 1.02 and sides.max() >= short * 0.98
    # log-uniform: half below the geometric middle, a quarter in each outer quarter of log-scale
    logs = (np.log(sides) - math.log(finest)) / (math.log(short) - math.log(finest))
    for edge, share in ((0.25, 0.25), (0.5, 0.5), (0.75, 0.75)):
        assert abs((logs < edge).mean() - share) < 0.03, (edge, (logs < edge).mean())
    # a photo smaller than the finest scale is taken whole
    assert {photos.crop_side(rng, 150, 256) for _ in range(20)} == {150}


def test_real_samples_take_fine_and_whole_scene_crops(monkeypatch):
    drawn = []

    def recording(rng, short_side, size):
        side = original(rng, short_side, size)
        drawn.append((side, short_side))
        return side

    original = photos.crop_side
    monkeypatch.setattr(photos, "crop_side", recording)
    size = 128
    for i in range(600):
        img, lab = photos.real_sample(np.random.default_rng([4, i]), size)
        assert img.shape == (size, size, 3) and lab.shape == (size, size)
        assert set(np.unique(lab).tolist()) <= KNOWN_IDS
    # near 1:1 (at most 1.1 x the finest side) and nearly the whole short side of a large photo
    fine = [s for s, short in drawn if s <= 1.1 * size / photos.FINEST_UPSCALE]
    whole = [s for s, short in drawn if s >= 0.9 * short and short >= 4 * size]
    assert all(s >= min(short, size / photos.FINEST_UPSCALE) for s, short in drawn)
    assert len(fine) >= 10 and len(whole) >= 10, (len(fine), len(whole))


def test_a_real_sample_is_the_label_map_cropped_and_resized_nearest():
    size = 96
    for i in range(6):
        rng = np.random.default_rng([9, i])
        _, lab = photos.real_sample(rng, size)
        # replay the draws: photo, side, position, flip
        rng = np.random.default_rng([9, i])
        index = int(rng.integers(len(load_annotations())))
        photo, label = photos.real_pair(index)
        w, h = photo.size
        side = photos.crop_side(rng, min(w, h), size)
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        expected = np.asarray(Image.fromarray(label[y0:y0 + side, x0:x0 + side]).resize((size, size), Image.NEAREST))
        if rng.random() < 0.5:
            expected = expected[:, ::-1]
        assert np.array_equal(lab, expected), i


def test_real_samples_are_deterministic_by_seed_and_index():
    a = generate_sample(21, 3, 64, real_fraction=1.0)
    b = generate_sample(21, 3, 64, real_fraction=1.0)
    c = generate_sample(21, 4, 64, real_fraction=1.0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_no_heldout_photo_is_a_training_source():
    ids, sources = heldout_ids_and_sources()
    assert len(ids) >= 10
    manifest_sources = {m["source"] for m in load_manifest()}
    assert not manifest_sources & ids
    for entry in load_annotations():
        assert entry["id"] not in ids
        assert (entry["source"]["package"], entry["source"]["path"]) not in sources, entry["id"]
    for path in LABELS.glob("*.json"):
        label = json.loads(path.read_text())
        assert label["photo"] not in ids and tuple(label["source"].split(":", 1)) not in sources
    credits = (landscapes_dir() / "CREDITS.md").read_text() + (assets_dir() / "styles" / "CREDITS.md").read_text()
    credited = set(re.findall(r"^\| (\w+) \|", credits, flags=re.MULTILINE))
    assert credited and not credited & ids
    for _package, path in sources:
        assert f"`{path}" not in credits, path


def test_the_build_tool_refuses_heldout_photos(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="held-out"):
        tool.refuse_heldout("LQ_windows", "lxqt-themes", "usr/share/lxqt/wallpapers/this-is-not-windows.jpg", set(), "a pair")
    # by source file too, whatever the id
    with pytest.raises(SystemExit, match="held-out"):
        tool.refuse_heldout("NEW1", "torcs-data", "x/background.png", {("torcs-data", "x/background.png")}, "a pair")
    tool.refuse_heldout("LQ_fog", "lxqt-themes", "usr/share/lxqt/wallpapers/fog.jpg", set(), "a pair")
    # a held-out label among the training labels stops the build
    labels = tmp_path / "labels"
    labels.mkdir()
    held = {"photo": "EN_peaks", "source": "enlightenment-data:usr/share/enlightenment/data/backgrounds/Peaks.edj",
            "crop": None, "size": [4, 4], "polygons": [{"class": "sky", "points": [[0, 0], [4, 0], [4, 4], [0, 4]]}]}
    (labels / "EN_peaks.json").write_text(json.dumps(held))
    monkeypatch.setattr(tool, "LABELS", labels)
    with pytest.raises(SystemExit, match="EN_peaks.*held-out"):
        tool.build_photos([], set())


def test_importing_labels_skips_heldout_and_refuses_gaps(tmp_path, monkeypatch, capsys):
    incoming, labels = tmp_path / "in", tmp_path / "labels"
    incoming.mkdir()
    frame = [{"class": "sky", "points": [[0, 0], [8, 0], [8, 6], [0, 6]]}, {"class": "grass", "points": [[0, 3], [8, 3], [8, 6], [0, 6]]}]
    good = {"photo": "NEW_field", "source": "pkg:a.jpg", "crop": None, "size": [8, 6], "polygons": frame, "note": "n"}
    held = dict(good, photo="LQ_beam")
    (incoming / "NEW_field.json").write_text(json.dumps(good))
    (incoming / "LQ_beam.json").write_text(json.dumps(held))
    monkeypatch.setattr(tool, "LABELS", labels)
    tool.import_labels(incoming)
    assert sorted(p.name for p in labels.iterdir()) == ["NEW_field.json"]
    assert json.loads((labels / "NEW_field.json").read_text()) == good
    assert "skip LQ_beam: held-out" in capsys.readouterr().out
    gap = dict(good, photo="NEW_gap", polygons=frame[1:])
    (incoming / "NEW_gap.json").write_text(json.dumps(gap))
    with pytest.raises(SystemExit, match="24 pixels are covered by no polygon"):
        tool.import_labels(incoming)


def test_assets_stay_small():
    total = sum(p.stat().st_size for p in assets_dir().rglob("*") if p.is_file())
    assert total < 25e6, f"{total / 1e6:.1f} MB"
