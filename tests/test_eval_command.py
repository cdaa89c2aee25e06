"""`spadekit train-segmenter` and `spadekit eval` end to end on a tiny folder dataset and a tiny model."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit.cli import main
from spadekit.models import SPADEModel

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_labels, tiny_model_config  # noqa: E402

SIZE = 64


def _write_split(root: Path, split: str, count: int, seed: int) -> None:
    labels = tiny_labels(3)
    colors = labels.colors()
    rng = np.random.default_rng(seed)
    (root / split / "images").mkdir(parents=True)
    (root / split / "labels").mkdir(parents=True)
    for i in range(count):
        ids = np.zeros((SIZE, SIZE), np.uint8)
        x0, y0 = rng.integers(0, SIZE // 2, 2)
        ids[y0 : y0 + SIZE // 2, x0 : x0 + SIZE // 2] = 1
        ids[:, : rng.integers(4, 16)] = 2
        photo = colors[ids].astype(np.int16) + rng.integers(-20, 20, (SIZE, SIZE, 3))
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(root / split / "images" / f"{i:03d}.png")
        Image.fromarray(ids, mode="L").save(root / split / "labels" / f"{i:03d}.png")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = root / "data"
    _write_split(data, "train", 6, seed=0)
    _write_split(data, "val", 4, seed=1)
    (data / "palette.json").write_text(json.dumps(tiny_labels(3).to_dict()))
    model_dir = root / "model"
    config = tiny_model_config(n_labels=3, use_instance=False, use_vae=True, norm="instance", with_d=False, crop_size=SIZE)
    SPADEModel(config).save_pretrained(model_dir)
    return root, data, model_dir


def test_eval_report(workspace, tmp_path, capsys):
    from spadekit.eval.segmentation import SegmenterNet

    root, data, model_dir = workspace
    SegmenterNet(3, width=8, depth=1).save_pretrained(tmp_path / "seg")
    report_path = tmp_path / "report.json"
    args = ["eval", "--model", str(model_dir), "--data", str(data), "--out", str(report_path), "--segmenter", str(tmp_path / "seg"),
            "--num-seeds", "2", "--kid-subsets", "3", "--no-reference-cache", "--limit", "3"]
    assert main(args) == 0
    report = json.loads(report_path.read_text())
    assert report["num_images"] == 3 and report["model"] == str(model_dir)
    assert np.isfinite(report["fid"]) and report["fid"] > 0 and np.isfinite(report["kid"]["mean"])
    assert set(report["segmentation"]) >= {"miou", "pixel_accuracy", "real_miou", "real_pixel_accuracy", "iou_per_class"}
    assert report["diversity"]["num_maps"] == 3 and report["diversity"]["lpips"] > 0
    sheet = Image.open(report["samples"])
    assert sheet.width > 3 * SIZE  # label | real | 2 seeds
    assert "FID" in capsys.readouterr().out


@pytest.mark.slow
def test_train_segmenter_then_eval(workspace, capsys):
    root, data, model_dir = workspace
    segmenter = root / "segmenter"
    code = main(["train-segmenter", "--data", str(data), "--out", str(segmenter), "--steps", "40", "--width", "8", "--depth", "2", "--size", str(SIZE), "--batch-size", "4", "--lr", "3e-3"])
    assert code == 0
    assert (segmenter / "model.safetensors").is_file() and (segmenter / "config.json").is_file()
    metrics = json.loads((segmenter / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["num_images"] == 4
    assert json.loads((segmenter / "config.json").read_text())["input_size"] == SIZE
    assert metrics["pixel_accuracy"] > 0.7  # colour-coded classes are easy to segment

    report_path = root / "out" / "report.json"
    args = ["eval", "--model", str(model_dir), "--data", str(data), "--out", str(report_path), "--segmenter", str(segmenter),
            "--num-seeds", "3", "--kid-subsets", "5", "--reference-cache", str(root / "refs"), "--batch-size", "4"]
    assert main(args) == 0
    report = json.loads(report_path.read_text())
    assert report["num_images"] == 4 and report["split"] == "val" and report["image_size"] == [SIZE, SIZE]
    assert np.isfinite(report["fid"]) and report["fid"] > 0
    assert np.isfinite(report["kid"]["mean"]) and report["kid"]["subset_size"] == 2  # half the 4 images: subsets differ
    seg = report["segmentation"]
    assert 0 <= seg["miou"] <= 1 and 0 <= seg["pixel_accuracy"] <= 1
    assert seg["real_pixel_accuracy"] > seg["pixel_accuracy"]  # an untrained generator does not fool it
    assert report["diversity"]["num_seeds"] == 3 and report["diversity"]["lpips"] > 0
    assert report["settings"]["reference_features_cached"] is False
    assert Path(report["samples"]).is_file()
    assert "FID" in capsys.readouterr().out

    # Second run: real features come from the cache, same numbers.
    assert main(args) == 0
    again = json.loads(report_path.read_text())
    assert again["settings"]["reference_features_cached"] is True
    assert again["fid"] == pytest.approx(report["fid"], rel=1e-4)
    assert again["segmentation"]["miou"] == pytest.approx(seg["miou"])

    # A model folder's own segmenter/ is used when --segmenter is not given.
    shutil.copytree(segmenter, model_dir / "segmenter")
    try:
        assert main(["eval", "--model", str(model_dir), "--data", str(data), "--out", str(report_path), "--no-reference-cache", "--kid-subsets", "2"]) == 0
        report = json.loads(report_path.read_text())
        assert report["segmentation"]["segmenter"].endswith("segmenter")
        assert report["diversity"] is None
    finally:
        shutil.rmtree(model_dir / "segmenter")


def test_eval_errors_are_clear(workspace, tmp_path, capsys):
    root, data, model_dir = workspace
    assert main(["eval", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "r.txt")]) == 2
    assert ".json" in capsys.readouterr().err
    other = tmp_path / "other"
    _write_split(other, "val", 2, seed=3)
    (other / "palette.json").write_text(json.dumps(tiny_labels(4).to_dict()))
    assert main(["eval", "--model", str(model_dir), "--data", str(other), "--out", str(tmp_path / "r.json")]) == 2
    assert "label set" in capsys.readouterr().err
    assert main(["eval", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "r.json"), "--segmenter", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
