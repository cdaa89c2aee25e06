"""The real held-out photos: `spadekit data heldout-photos` writes a valid folder dataset, and no
held-out photo is a training source (pair, texture or style photo)."""
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.cli import main
from spadekit.eval.heldout import heldout_dir, load_heldout_annotations
from spadekit.labels import landscape_labels


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout")
    assert main(["data", "heldout-photos", "--out", str(out)]) == 0
    return out


def test_heldout_photos_form_a_valid_folder_dataset(heldout):
    from spadekit.data.check import check_dataset

    report = check_dataset("folder", heldout, progress=False)
    assert report.usable, report.format()
    entries = load_heldout_annotations()
    assert len(entries) >= 10
    ids = set(landscape_labels().ids)
    credits = (heldout / "CREDITS.md").read_text()
    for entry in entries:
        photo = Image.open(heldout / "images" / f"{entry['id']}.jpg")
        label = Image.open(heldout / "labels" / f"{entry['id']}.png")
        assert photo.format == "JPEG" and photo.width <= 1024 and label.mode == "L"
        assert photo.size == label.size == tuple(entry["size"])
        values = np.unique(np.asarray(label))
        assert set(values.tolist()) <= ids, (entry["id"], values)
        assert f"| {entry['id']} |" in credits
    assert (heldout / "palette.yaml").is_file()
    assert sorted(p.stem for p in (heldout / "images").iterdir()) == sorted(e["id"] for e in entries)


def test_heldout_photos_cover_the_common_classes(heldout):
    names = landscape_labels().names
    present = set()
    for path in (heldout / "labels").iterdir():
        channels = landscape_labels().to_channels(np.asarray(Image.open(path)))
        counts = np.bincount(channels.ravel(), minlength=len(names)) / channels.size
        present |= {names[c] for c in np.flatnonzero(counts > 0.02)}
    assert {"sky", "clouds", "tree", "grass", "mountain", "hill", "snow", "rock", "sea"} <= present, present


def test_heldout_writer_refuses_a_folder_with_other_images(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mine.jpg").write_bytes(b"not ours")
    assert main(["data", "heldout-photos", "--out", str(tmp_path)]) == 2
    assert "mine.jpg" in capsys.readouterr().err
    assert not (tmp_path / "labels").exists()


def _assets(name: str) -> Path:
    return Path(str(resources.files("spadekit") / "assets" / name))


def _training_sources() -> set[tuple[str, str]]:
    """(package, path in package) of every file the landscape training assets come from (CREDITS.md rows)."""
    sources = set()
    for line in (_assets("landscapes") / "CREDITS.md").read_text().splitlines():
        match = re.match(r"\|\s*([^|]+?)\s*\|\s*([^|(]+?)\s*\(([^)]*)\)\s*\|\s*`([^`]+)`", line)
        if match:
            sources.add((match.group(2).removeprefix("pypi:"), match.group(4).split(" ")[0]))
    return sources


def _training_ids() -> set[str]:
    """Source ids of the training assets: texture and photo sources, labelled photos."""
    landscapes = _assets("landscapes")
    ids = {a["source"] for a in json.loads((landscapes / "manifest.json").read_text())["assets"]}
    ids |= {p.stem for p in (landscapes / "photos").glob("*.jpg")}
    ids |= {p.stem for p in (landscapes / "labels").glob("*.json")}
    if (landscapes / "annotations.json").is_file():
        ids |= {Path(p["photo"]).stem for p in json.loads((landscapes / "annotations.json").read_text())["photos"]}
    return ids


def test_no_heldout_photo_is_a_training_source():
    training = _training_sources()
    assert len(training) > 30  # the parser found the credits table
    training_ids = _training_ids()
    assert len(training_ids) > 30
    for entry in load_heldout_annotations():
        source = entry["source"]
        assert (source["package"], source["path"].split(" ")[0]) not in training, entry["id"]
        assert entry["id"] not in training_ids, entry["id"]


def test_no_heldout_photo_looks_like_a_training_photo():
    """The same picture shipped twice (another package, another size) is caught by its thumbnail."""
    def thumbnail(path):
        grey = np.asarray(Image.open(path).convert("L").resize((32, 24), Image.BILINEAR), np.float64).ravel()
        return (grey - grey.mean()) / (grey.std() + 1e-9)

    training = [thumbnail(p) for p in sorted((_assets("landscapes") / "photos").glob("*.jpg"))]
    training += [thumbnail(p) for p in sorted(_assets("styles").glob("*.jpg"))]
    assert training
    for entry in load_heldout_annotations():
        mine = thumbnail(heldout_dir() / entry["photo"])
        assert max(float(mine @ t) / len(t) for t in training) < 0.95, entry["id"]


def test_the_real_photo_segmenter_reads_the_heldout_photos(heldout):
    """The bundled segmenter (trained on training photos only) is the default for landscape models,
    and reads the held-out photos' real crops far better than chance (its ceiling for mIoU)."""
    from spadekit.commands.eval import choose_segmenter, real_photo_segmenter, segmenter_name
    from spadekit.eval.photos import photo_crops
    from spadekit.eval.report import eval_dataset
    from spadekit.eval.segmentation import FeatureSegmenter, load_segmenter, pixel_accuracy, segmentation_confusion

    labels = landscape_labels()
    folder = real_photo_segmenter()
    assert folder is not None and choose_segmenter(Path("no-model-folder"), labels) == folder
    # reports name it by its place in the package, not by this installation's path
    assert segmenter_name(folder) == "spadekit/pretrained/segmenter-real"
    assert segmenter_name(Path("runs/segmenter")) == "runs/segmenter"
    segmenter = load_segmenter(folder)
    assert isinstance(segmenter, FeatureSegmenter) and segmenter.config.class_names == labels.names
    crops = photo_crops(eval_dataset("folder", heldout, None, (256, 256), labels), (256, 256), per_photo=2, progress=False)
    images = torch.from_numpy(crops.images).permute(0, 3, 1, 2).float() / 127.5 - 1
    conf = segmentation_confusion(segmenter, images, torch.from_numpy(crops.channels), labels.num_classes)
    assert pixel_accuracy(conf) > 0.4  # 0.54 over the 16 crops per photo `spadekit eval` cuts
