"""`spadekit eval` on crops of real photos: several tiny models side by side on the same crops and seeds."""
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

SIZE = 64  # the models' frame; the photos are larger, so eval cuts crops


def _write_photos(root: Path, count: int, seed: int) -> None:
    labels = tiny_labels(3)
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    for i in range(count):
        height, width = 150, 200
        ids = np.zeros((height, width), np.uint8)
        ids[rng.integers(40, 80):] = 1
        x0 = rng.integers(0, 120)
        ids[60:, x0 : x0 + 50] = 2
        photo = labels.colors()[ids].astype(np.int16) + rng.integers(-30, 30, (height, width, 3))
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(root / "images" / f"photo{i}.jpg", quality=95)
        Image.fromarray(ids, mode="L").save(root / "labels" / f"photo{i}.png")
    (root / "palette.json").write_text(json.dumps(labels.to_dict()))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("photos")
    _write_photos(root / "data", 2, seed=0)
    models = {}
    for name, seed, use_vae in (("a", 0, True), ("plain", 2, False)):
        torch.manual_seed(seed)
        config = tiny_model_config(n_labels=3, use_instance=False, use_vae=use_vae, norm="instance", with_d=False, crop_size=SIZE)
        models[name] = root / name
        SPADEModel(config).save_pretrained(models[name])
    shutil.copytree(models["a"], root / "a_copy")
    models["a_copy"] = root / "a_copy"
    from spadekit.eval.segmentation import SegmenterNet

    SegmenterNet(3, width=4, depth=1).save_pretrained(root / "segmenter")
    return root, models


def test_compare_measures_every_model_on_the_same_crops(workspace, capsys):
    root, models = workspace
    out = root / "out" / "report.json"
    args = ["eval", "--model", str(models["a"]), "--compare", str(models["a_copy"]), str(models["plain"]),
            "--data", str(root / "data"), "--out", str(out), "--segmenter", str(root / "segmenter"), "--crops", "2",
            "--num-seeds", "3", "--diversity-maps", "2", "--kid-subsets", "3", "--no-reference-cache", "--samples", "2"]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["protocol"] == "photo-crops" and report["num_photos"] == 2
    assert report["crops"]["count"] == 4 and report["crops"]["per_photo"] == 2
    assert report["crops"]["height_px"] == {"min": 112, "median": 131.0, "max": 150}  # scales 1 and 0.75 of 150 px
    a, a_copy, plain = report["models"]
    assert [m["model"] for m in report["models"]] == [str(models[k]) for k in ("a", "a_copy", "plain")]
    for m in (a, plain):
        assert np.isfinite(m["fid"]) and m["fid"] > 0 and np.isfinite(m["kid"]["mean"])
        assert m["sharpness"]["ratio"] > 0 and m["sharpness"]["real"] == report["real"]["sharpness"]
        assert 0 <= m["segmentation"]["miou"] <= 1
    assert a["diversity"]["lpips"] > 0 and a["diversity"]["num_crops"] == 2 and a["diversity"]["num_seeds"] == 3
    assert 0 < a["reconstruction"]["lpips"] and 0 < a["reconstruction"]["psnr"] < 60
    # Same weights, same crops, same seeds: the same numbers; other weights: other numbers.
    for key in ("fid", "kid", "sharpness", "segmentation", "diversity", "reconstruction"):
        assert a_copy[key] == a[key], key
    assert plain["fid"] != a["fid"] and plain["sharpness"] != a["sharpness"]
    # A model without the VAE part: no diversity, no reconstruction, and it says why.
    assert plain["diversity"]["lpips"] is None and "not multimodal" in plain["diversity"]["note"]
    assert plain["reconstruction"]["lpips"] is None and "encoder" in plain["reconstruction"]["note"]
    assert report["real"]["segmentation"]["pixel_accuracy"] >= 0
    sheet = Image.open(report["samples"])
    assert sheet.width > 7 * SIZE  # label | real | three models | two reconstructions
    text = capsys.readouterr().out
    assert "reconstruction LPIPS" in text and str(models["plain"]) in text and "4 crops of 2 real photos" in text


def test_large_folder_photos_are_cut_into_crops_by_default(workspace):
    from spadekit.commands.eval import use_crops
    from spadekit.eval.report import eval_dataset
    from spadekit.inference import Pipeline

    root, models = workspace
    pipe = Pipeline.from_pretrained(models["a"])
    dataset = eval_dataset("folder", root / "data", None, pipe.size, pipe.labels)
    assert use_crops(dataset, pipe.size)
    assert not use_crops(dataset, (128, 128))  # 150 px photos are not larger than a 128-px frame by 1.25x


def test_eval_errors_name_the_problem(workspace, tmp_path, capsys):
    import torch

    root, models = workspace
    base = ["eval", "--data", str(root / "data"), "--out", str(tmp_path / "r.json"), "--no-reference-cache"]
    torch.manual_seed(0)
    other_size = tmp_path / "big"
    SPADEModel(tiny_model_config(n_labels=3, use_instance=False, use_vae=True, norm="instance", with_d=False, crop_size=128)).save_pretrained(other_size)
    assert main(base + ["--model", str(models["a"]), "--compare", str(other_size), "--crops", "1"]) == 2
    assert "one output size" in capsys.readouterr().err
    assert main(base + ["--model", str(models["a"]), "--compare", str(models["a"])]) == 2
    assert "named twice" in capsys.readouterr().err
    assert main(base + ["--model", str(models["a"]), "--crop-scales", "1,abc"]) == 2
    assert "--crop-scales" in capsys.readouterr().err
    assert main(base + ["--model", str(models["a"]), "--crop-scales", "1.5"]) == 2
    assert "fractions" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
