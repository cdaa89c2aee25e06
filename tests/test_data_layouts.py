"""Tiny datasets in each of the five layouts, written to tmp_path: loading, labels, instance edges,
and `spadekit data check` on well-formed and malformed data."""
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit import SpadekitError
from spadekit.cli import main
from spadekit.data.datasets import DATASETS, build_dataset
from spadekit.data.semantic import semantic_map
from spadekit.data.transforms import TransformConfig

SIZE = 32
NO_AUGMENT = TransformConfig(preprocess="none", flip=False)


# --- writers ---------------------------------------------------------------------------------


def photo(path, size=(SIZE, SIZE), mode="RGB", seed=0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


def id_map(path, ids):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.asarray(ids)
    if ids.max() > 255:
        Image.fromarray(ids.astype(np.uint16)).save(path)  # 16-bit PNG
    else:
        Image.fromarray(ids.astype(np.uint8)).save(path)
    return path


def blocks(background, square, top=4, size=SIZE):
    """A map of `background` with a `square` block in the top-left quarter."""
    ids = np.full((size, size), background, np.int64)
    ids[top : top + 12, 4:16] = square
    return ids


def two_cars(size=SIZE):
    """Cityscapes-style instance ids: road (7) with two touching cars 26001 / 26002."""
    inst = np.full((size, size), 7, np.int64)
    inst[8:20, 4:12] = 26001
    inst[8:20, 12:20] = 26002
    labels = np.where(inst > 1000, inst // 1000, inst)
    return labels, inst


def write_ade20k(root, n=2, raw=None):
    base = Path(root) / "ADEChallengeData2016"
    for split, sub in (("train", "training"), ("val", "validation")):
        for i in range(n):
            name = f"ADE_{split}_{i + 1:08d}"
            photo(base / "images" / sub / f"{name}.jpg", seed=i)
            id_map(base / "annotations" / sub / f"{name}.png", blocks(3 if i % 2 == 0 else 6, 0) if raw is None else raw)
    return base


def write_coco_stuff(root, n=2):
    root = Path(root)
    for split in ("train", "val"):
        for i in range(n):
            name = f"{i:012d}"
            photo(root / f"{split}_img" / f"{name}.jpg", seed=i)
            id_map(root / f"{split}_label" / f"{name}.png", blocks(156, 255))
            id_map(root / f"{split}_inst" / f"{name}.png", blocks(0, 1))
    return root


def write_cityscapes(root, n=2):
    root = Path(root)
    labels, inst = two_cars()
    for split in ("train", "val"):
        for i in range(n):
            city = "aachen" if split == "train" else "frankfurt"
            stem = f"{city}_{i:06d}_000019"
            photo(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", seed=i)
            gt = root / "gtFine" / split / city
            id_map(gt / f"{stem}_gtFine_labelIds.png", labels)
            id_map(gt / f"{stem}_gtFine_instanceIds.png", inst)
            # Files of the official download that the dataset ignores.
            Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(gt / f"{stem}_gtFine_color.png")
            (gt / f"{stem}_gtFine_polygons.json").write_text("{}")
    return root


PALETTE = [
    {"name": "sky", "id": 1, "color": "#9ceedd"},
    {"name": "grass", "id": 2, "color": "#7bc800"},
    {"name": "tree", "id": 5, "color": "#a8c832"},
]


def write_folder(root, n=2, splits=("train", "val"), colour=False, instances=True, palette="yaml"):
    root = Path(root)
    for split in splits:
        base = root / split if split else root
        for i in range(n):
            photo(base / "images" / f"img{i}.jpg", seed=i)
            ids = blocks(1, 5 if i % 2 else 2)
            if colour:
                colours = {p["id"]: tuple(int(p["color"][k : k + 2], 16) for k in (1, 3, 5)) for p in PALETTE}
                rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
                for id_, c in colours.items():
                    rgb[ids == id_] = c
                (base / "labels").mkdir(parents=True, exist_ok=True)
                Image.fromarray(rgb).save(base / "labels" / f"img{i}.png")
            else:
                id_map(base / "labels" / f"img{i}.png", ids)
            if instances:
                id_map(base / "instances" / f"img{i}.png", blocks(0, 3))
    if palette == "yaml":
        (root / "palette.yaml").write_text(
            "".join(f"- {{name: {p['name']}, id: {p['id']}, color: '{p['color']}'}}\n" for p in PALETTE)
        )
    elif palette == "json":
        (root / "palette.json").write_text(json.dumps(PALETTE))
    return root


WRITERS = {
    "ade20k": write_ade20k,
    "ade20k-outdoor": write_ade20k,
    "coco-stuff": write_coco_stuff,
    "cityscapes": write_cityscapes,
    "folder": write_folder,
}


def run_check(capsys, *argv):
    code = main(["data", "check", *map(str, argv)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


# --- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_layout_loads_items_of_the_right_form(tmp_path, name):
    WRITERS[name](tmp_path)
    for split in ("train", "val"):
        dataset = build_dataset(name, tmp_path, split, transform=NO_AUGMENT)
        assert len(dataset) >= 1
        item = dataset[0]
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, SIZE, SIZE)
        assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0 and item["image"].std() > 0.1
        assert item["label"].dtype == torch.int64 and item["label"].shape == (1, SIZE, SIZE)
        assert 0 <= item["label"].min() and item["label"].max() < dataset.num_channels
        assert Path(item["path"]).is_file()
        assert ("instance" in item) == bool(dataset.use_instances)
        assert dataset.semantic_nc == dataset.num_channels + int(bool(dataset.use_instances))


def test_ade20k_ids_become_channels_with_dontcare(tmp_path):
    write_ade20k(tmp_path)
    dataset = build_dataset("ade20k", tmp_path, "train", transform=NO_AUGMENT)
    assert dataset.num_channels == 151 and not dataset.use_instances
    label = dataset[0]["label"][0]
    assert label[0, 0] == 2  # raw 3 (sky) -> channel 2
    assert label[5, 5] == 150  # raw 0 (other) -> dontcare channel
    one_hot = semantic_map(label[None, None], dataset.num_channels)
    assert one_hot.shape == (1, 151, SIZE, SIZE) and one_hot[0, 150, 5, 5] == 1


def test_ade20k_outdoor_filters_by_scene_file_or_by_classes(tmp_path):
    base = write_ade20k(tmp_path, n=4)
    # Without sceneCategories.txt: sky and no ceiling (images 0 and 2 have sky, 1 and 3 ceiling).
    outdoor = build_dataset("ade20k-outdoor", tmp_path, "train", transform=NO_AUGMENT)
    assert [Path(s.image).stem for s in outdoor.samples] == ["ADE_train_00000001", "ADE_train_00000003"]
    (base / "sceneCategories.txt").write_text(
        "ADE_train_00000001 bedroom\nADE_train_00000002 street\nADE_train_00000003 church_outdoor\n"
        "ADE_train_00000004 kitchen\nADE_val_00000001 coast\n"
    )
    outdoor = build_dataset("ade20k-outdoor", tmp_path, "train", transform=NO_AUGMENT)
    assert [Path(s.image).stem for s in outdoor.samples] == ["ADE_train_00000002", "ADE_train_00000003"]
    assert len(build_dataset("ade20k", tmp_path, "train")) == 4


def test_coco_stuff_unlabelled_is_dontcare_and_instances_load(tmp_path):
    write_coco_stuff(tmp_path)
    dataset = build_dataset("coco-stuff", tmp_path, "val", transform=NO_AUGMENT)
    assert dataset.num_channels == 183 and dataset.use_instances and dataset.semantic_nc == 184
    item = dataset[0]
    assert item["label"][0, 0, 0] == 156 and item["label"][0, 5, 5] == 182
    edges = semantic_map(item["label"][None], 183, item["instance"][None])[0, -1]
    assert edges[4, 4] == 1 and edges[5, 5] == 0 and edges[30, 30] == 0


def test_coco_stuff_official_layout_needs_no_instances(tmp_path):
    for split in ("train", "val"):
        photo(tmp_path / "images" / f"{split}2017" / "000000000139.jpg")
        id_map(tmp_path / "stuffthingmaps_trainval2017" / f"{split}2017" / "000000000139.png", blocks(156, 0))
    with pytest.raises(SpadekitError, match="no instance maps"):
        build_dataset("coco-stuff", tmp_path, "train")
    dataset = build_dataset("coco-stuff", tmp_path, "train", instances=False, transform=NO_AUGMENT)
    assert len(dataset) == 1 and dataset[0]["label"][0, 5, 5] == 0 and dataset.semantic_nc == 183


def test_cityscapes_ids_and_instance_edges(tmp_path):
    write_cityscapes(tmp_path)
    dataset = build_dataset("cityscapes", tmp_path, "train", transform=NO_AUGMENT)
    assert dataset.num_channels == 35 and dataset.semantic_nc == 36 and len(dataset) == 2
    item = dataset[0]
    assert item["label"][0, 0, 0] == 7 and item["label"][0, 10, 10] == 26
    assert item["instance"][0, 10, 10] == 26001 and item["instance"][0, 10, 14] == 26002
    edges = semantic_map(item["label"][None], 35, item["instance"][None])[0, -1]
    # The border between two cars of the same class is an edge; their insides are not.
    assert edges[14, 11] == 1 and edges[14, 12] == 1
    assert edges[14, 8] == 0 and edges[14, 16] == 0 and edges[0, 0] == 0
    assert (semantic_map(item["label"][None], 35)[0, 26] == (item["label"][0] == 26)).all()


def test_cityscapes_default_transform_is_fixed_aspect_two(tmp_path):
    write_cityscapes(tmp_path)
    dataset = build_dataset("cityscapes", tmp_path, "train")
    assert dataset[0]["image"].shape == (3, 256, 512) and dataset[0]["label"].shape == (1, 256, 512)


def test_folder_colour_labels_and_json_palette(tmp_path):
    write_folder(tmp_path, colour=True, palette="json", splits=("",))
    dataset = build_dataset("folder", tmp_path, "train", transform=NO_AUGMENT)
    assert dataset.label_set.ids == [1, 2, 5] and dataset.num_channels == 3
    item = dataset[1]
    assert item["label"][0, 0, 0] == 0 and item["label"][0, 5, 5] == 2  # id 5 -> channel 2
    assert dataset.use_instances and item["instance"][0, 5, 5] == 3
    with pytest.raises(SpadekitError, match="val"):
        build_dataset("folder", tmp_path, "val")


def test_folder_with_a_named_label_set_and_dontcare(tmp_path):
    root = tmp_path / "d"
    photo(root / "images" / "a.png")
    id_map(root / "labels" / "a.png", blocks(156, 255))
    with pytest.raises(SpadekitError, match="no palette"):
        build_dataset("folder", root)
    dataset = build_dataset("folder", root, label_set="landscapes", contain_dontcare=True, transform=NO_AUGMENT)
    assert dataset.num_channels == 23 and not dataset.use_instances
    label = dataset[0]["label"][0]
    assert label[0, 0] == dataset.label_set.ids.index(156) and label[5, 5] == 22
    with pytest.raises(SpadekitError, match="contain_dontcare"):
        build_dataset("folder", root, label_set="landscapes", transform=NO_AUGMENT)[0]


def test_random_items_are_reproducible_and_aligned(tmp_path):
    root = tmp_path / "d"
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[4:16, 4:16] = 255
    (root / "images").mkdir(parents=True)
    Image.fromarray(image).save(root / "images" / "a.png")
    id_map(root / "labels" / "a.png", blocks(1, 2))
    (root / "palette.json").write_text(json.dumps(PALETTE))
    config = TransformConfig(preprocess="resize_and_crop", load_size=48, crop_size=32)
    a = build_dataset("folder", root, transform=config, seed=1)
    b = build_dataset("folder", root, transform=config, seed=1)
    assert torch.equal(a[0]["image"], b[0]["image"]) and torch.equal(a[0]["label"], b[0]["label"])
    seen = set()
    for epoch in range(8):
        a.set_epoch(epoch)
        item = a[0]
        square = item["label"][0] == 1
        bright = item["image"][0] > 0
        assert (square != bright).float().mean() < 0.08
        seen.add(item["label"][0].numpy().tobytes())
    assert len(seen) > 1  # crops / flips differ between epochs


# --- data check: well-formed datasets ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_check_accepts_each_well_formed_layout(tmp_path, capsys, name):
    WRITERS[name](tmp_path)
    code, output = run_check(capsys, "--dataset", name, tmp_path)
    assert code == 0, output
    assert "result: usable" in output and "problems" not in output
    assert "split train:" in output and "split val:" in output
    assert "top" in output  # class histogram with names


def test_check_histogram_names_classes(tmp_path, capsys):
    write_coco_stuff(tmp_path)
    code, output = run_check(capsys, "--dataset", "coco-stuff", tmp_path, "--split", "train")
    assert code == 0
    assert "sky-other" in output and "dontcare" in output
    assert "split val" not in output
    assert "2 pairs" in output and "32x32 (2)" in output


def test_check_notes_grayscale_photos_but_accepts_them(tmp_path, capsys):
    write_folder(tmp_path, splits=("",))
    photo(tmp_path / "images" / "img0.jpg", mode="L")
    code, output = run_check(capsys, "--dataset", "folder", tmp_path)
    assert code == 0, output
    assert "img0.jpg: grayscale photo" in output
    assert build_dataset("folder", tmp_path, transform=NO_AUGMENT)[0]["image"].shape == (3, SIZE, SIZE)


def test_data_group_without_subcommand_prints_help(capsys):
    assert main(["data"]) == 2
    assert "check" in capsys.readouterr().out


# --- data check: each malformed case ------------------------------------------------------------


def _bomb_png(path, side=30000):
    """A valid 1x1 PNG whose header claims side x side pixels."""
    photo(path, size=(1, 1))
    data = bytearray(Path(path).read_bytes())
    data[16:24] = side.to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    Path(path).write_bytes(bytes(data))


def _truncate(path):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def _rgba_label(path):
    Image.fromarray(np.zeros((SIZE, SIZE, 4), np.uint8)).save(path)


BAD_FOLDER_CASES = {
    # case: (how to break a good folder dataset, the file the message must name, words it must contain)
    "id not in label set": (lambda r: id_map(r / "labels" / "img0.png", blocks(1, 9)), "labels/img0.png", "[9]"),
    "id out of range": (lambda r: id_map(r / "labels" / "img1.png", blocks(1, 200)), "labels/img1.png", "200"),
    "colour not in palette": (
        lambda r: Image.fromarray(np.full((SIZE, SIZE, 3), 7, np.uint8)).save(r / "labels" / "img0.png"),
        "labels/img0.png", "#070707",
    ),
    "gray RGB label": (
        lambda r: Image.fromarray(np.full((SIZE, SIZE, 3), 2, np.uint8)).save(r / "labels" / "img0.png"),
        "labels/img0.png", "8-bit grayscale PNG",
    ),
    "size mismatch": (lambda r: id_map(r / "labels" / "img0.png", np.ones((16, SIZE))), "labels/img0.png", "32x16"),
    "instance size mismatch": (lambda r: id_map(r / "instances" / "img1.png", np.ones((SIZE, 8))), "instances/img1.png", "8x32"),
    "missing label": (lambda r: (r / "labels" / "img1.png").unlink(), "images/img1.jpg", "no label map"),
    "extra label": (lambda r: id_map(r / "labels" / "stray.png", blocks(1, 2)), "labels/stray.png", "without a photo"),
    "missing instance": (lambda r: (r / "instances" / "img0.png").unlink(), "images/img0.jpg", "no instance map"),
    "corrupt photo": (lambda r: (r / "images" / "img0.jpg").write_bytes(b"not a jpeg at all"), "images/img0.jpg", "not an image"),
    "truncated photo": (lambda r: (photo(r / "images" / "img1.png", size=(64, 64)), (r / "images" / "img1.jpg").unlink(), _truncate(r / "images" / "img1.png")), "images/img1.png", "truncated"),
    "truncated label": (lambda r: _truncate(r / "labels" / "img0.png"), "labels/img0.png", "truncated"),
    "16-bit label": (lambda r: id_map(r / "labels" / "img0.png", blocks(1, 300)), "labels/img0.png", "16"),
    "RGBA label": (lambda r: _rgba_label(r / "labels" / "img1.png"), "labels/img1.png", "alpha"),
    "JPEG label": (lambda r: photo(r / "labels" / "img2.jpg"), "labels/img2.jpg", "lossy"),
    "decompression bomb": (lambda r: _bomb_png(r / "images" / "img0.png") or (r / "images" / "img0.jpg").unlink(), "images/img0.png", "decompression bomb"),
    "huge image (PIL warning size)": (lambda r: _bomb_png(r / "labels" / "img1.png", side=10000), "labels/img1.png", "decompression bomb"),
    "huge image (our limit)": (lambda r: _bomb_png(r / "labels" / "img1.png", side=8000), "labels/img1.png", "over the limit"),
    "two photos for one name": (lambda r: photo(r / "images" / "img0.png"), "img0", "two photo files"),
    "non-image file": (lambda r: (r / "images" / "notes.txt").write_text("hello"), "images/notes.txt", "not an image file"),
    "image-named text file": (lambda r: (r / "labels" / "img1.png").write_text("hello"), "labels/img1.png", "not an image"),
    "empty folder": (lambda r: [p.unlink() for p in (r / "instances").iterdir()], "instances", "empty folder"),
    "no palette": (lambda r: (r / "palette.yaml").unlink(), "palette", "no palette file"),
    "bad palette": (lambda r: (r / "palette.yaml").write_text("- {name: sky, id: 1}\n"), "palette.yaml", "color"),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDER_CASES))
def test_check_reports_each_malformed_case(tmp_path, capsys, case):
    root = write_folder(tmp_path / "d", n=2, splits=("",))
    photo(root / "images" / "img2.jpg")  # a third pair, so breaking one still leaves others
    id_map(root / "labels" / "img2.png", blocks(1, 2))
    id_map(root / "instances" / "img2.png", blocks(0, 3))
    breaker, file_part, words = BAD_FOLDER_CASES[case]
    breaker(root)
    code, output = run_check(capsys, "--dataset", "folder", root)
    assert code == 1, output
    assert "result: NOT usable" in output
    problem_lines = [l for l in output.splitlines() if file_part in l and words in l]
    assert problem_lines, f"no line names {file_part!r} with {words!r}:\n{output}"


def test_check_reports_every_problem_not_just_the_first(tmp_path, capsys):
    root = write_folder(tmp_path / "d", n=2, splits=("",))
    id_map(root / "labels" / "img0.png", blocks(1, 9))
    id_map(root / "labels" / "img1.png", np.ones((16, SIZE)))
    (root / "images" / "junk.txt").write_text("x")
    code, output = run_check(capsys, "--dataset", "folder", root)
    assert code == 1
    assert "problems (3)" in output
    assert "img0.png" in output and "img1.png" in output and "junk.txt" in output


def test_check_max_pixels_limit(tmp_path, capsys):
    write_folder(tmp_path, splits=("",))
    code, output = run_check(capsys, "--dataset", "folder", tmp_path, "--max-pixels", "500")
    assert code == 1 and "over the limit of 500" in output and "img0.jpg" in output


@pytest.mark.parametrize(
    "name, breaker, words",
    [
        ("ade20k", lambda r: id_map(r / "ADEChallengeData2016/annotations/training/ADE_train_00000001.png", blocks(3, 151)), "[151]"),
        ("ade20k", lambda r: (r / "ADEChallengeData2016/annotations/validation/ADE_val_00000002.png").unlink(), "ADE_val_00000002.jpg"),
        ("coco-stuff", lambda r: [p.unlink() for p in (r / "val_inst").iterdir()], "val_inst"),
        ("coco-stuff", lambda r: id_map(r / "train_label/000000000001.png", blocks(156, 200)), "[200]"),
        ("cityscapes", lambda r: (r / "gtFine/train/aachen/aachen_000001_000019_gtFine_instanceIds.png").unlink(), "no instance map"),
        ("cityscapes", lambda r: Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(r / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png"), "RGB colour label map"),
        ("cityscapes", lambda r: (r / "leftImg8bit/train/aachen/readme.txt").write_text("x"), "readme.txt"),
    ],
)
def test_check_reports_problems_in_official_layouts(tmp_path, capsys, name, breaker, words):
    WRITERS[name](tmp_path)
    breaker(tmp_path)
    code, output = run_check(capsys, "--dataset", name, tmp_path)
    assert code == 1, output
    assert any(words in line for line in output.splitlines()), output


def test_check_on_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    code, output = run_check(capsys, "--dataset", "cityscapes", tmp_path)
    assert code == 1 and "no train or val split found" in output and "leftImg8bit" in output
    code, output = run_check(capsys, "--dataset", "ade20k", tmp_path / "missing")
    assert code == 1 and "not found" in output


def test_dataset_raises_the_same_messages(tmp_path):
    root = write_folder(tmp_path / "d", n=2, splits=("",))
    (root / "labels" / "img1.png").unlink()
    with pytest.raises(SpadekitError) as error:
        build_dataset("folder", root)
    assert "img1.jpg: no label map" in str(error.value)
    id_map(root / "labels" / "img1.png", blocks(1, 9))
    dataset = build_dataset("folder", root, transform=NO_AUGMENT)
    with pytest.raises(SpadekitError) as error:
        dataset[1]
    assert "img1.png" in str(error.value) and "[9]" in str(error.value)
    _truncate(root / "images" / "img0.jpg")
    with pytest.raises(SpadekitError, match="img0.jpg"):
        dataset[0]


def test_build_dataset_unknown_name(tmp_path):
    with pytest.raises(SpadekitError, match="unknown dataset"):
        build_dataset("imagenet", tmp_path)


def test_data_group_takes_make_landscapes_from_its_module(monkeypatch, capsys):
    import sys
    import types

    fake = types.ModuleType("spadekit.landscapes.dataset")

    def add_make_landscapes_parser(data_subparsers):
        parser = data_subparsers.add_parser("make-landscapes", help="fake for the test")
        parser.set_defaults(func=lambda args: 7)

    fake.add_make_landscapes_parser = add_make_landscapes_parser
    monkeypatch.setitem(sys.modules, "spadekit.landscapes.dataset", fake)
    assert main(["data", "make-landscapes"]) == 7
    capsys.readouterr()


def test_folder_palette_must_agree_with_a_given_label_set(tmp_path, capsys):
    root = write_folder(tmp_path / "d", splits=("",), colour=True)
    with pytest.raises(SpadekitError, match="palette lists other classes.*channel 0: 'sky' \\(id 1\\)"):
        build_dataset("folder", root, label_set="landscapes")
    code, output = run_check(capsys, "--dataset", "folder", root, "--labels", "landscapes")
    assert code == 1 and "palette.yaml" in output and "other classes" in output
    # The same classes in other colours: the files are decoded with the data's own palette.
    (tmp_path / "same.json").write_text(json.dumps([dict(p, color="#000001") if p["id"] == 1 else p for p in PALETTE]))
    dataset = build_dataset("folder", root, label_set=str(tmp_path / "same.json"), transform=NO_AUGMENT)
    assert dataset[0]["label"][0, 0, 0] == 0 and dataset.label_set.labels[0].color == (0, 0, 1)
