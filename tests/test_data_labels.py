"""Label sets: names, ids, colours and the id -> channel mapping of each dataset preset."""
import json

import numpy as np
import pytest

from spadekit import SpadekitError
from spadekit.data.labels import (
    COCO_STUFF_REMOVED_IDS,
    LABEL_SETS,
    get_label_set,
    landscape_labels,
    load_palette,
    voc_color,
)


@pytest.mark.parametrize("name", sorted(LABEL_SETS))
def test_every_label_set_has_unique_ids_and_names(name):
    labels = get_label_set(name)
    assert len(set(labels.ids)) == labels.num_classes
    assert len(set(labels.names)) == labels.num_classes
    assert all(name.strip() for name in labels.names)
    assert labels.colors().shape == (labels.num_classes, 3)


def test_coco_stuff_matches_the_reference_preset():
    coco = get_label_set("coco-stuff")
    assert coco.ids == list(range(182))
    assert coco.contain_dontcare and coco.dontcare_id == 255
    assert coco.num_channels == 183
    # 1-based official list shifted by one; the spec's painting ids.
    assert coco.labels[0].name == "person"
    assert coco.labels[181].name == "wood"
    assert coco.labels[156].name == "sky-other"
    for name, i in {"sea": 154, "clouds": 105, "grass": 123, "mountain": 134, "tree": 168, "water-other": 177}.items():
        assert coco.by_name(name).id == i
    assert [coco.labels[i].name for i in COCO_STUFF_REMOVED_IDS] == [
        "street sign", "hat", "shoe", "eye glasses", "plate", "mirror", "window", "desk", "door",
        "blender", "hair brush",
    ]
    channels = coco.to_channels(np.array([[0, 181, 255]]))
    assert channels.tolist() == [[0, 181, 182]]
    # Colours decode unambiguously, and the landscape classes keep the landscape colours.
    assert len({tuple(c) for c in coco.colors().tolist()}) == 182
    for label in landscape_labels().labels:
        assert coco.labels[label.id].color == label.color
    assert coco.by_name("sky-other").color == (0x9C, 0xEE, 0xDD)


def test_ade20k_raw_zero_is_dontcare_and_classes_shift_by_one():
    ade = get_label_set("ade20k")
    assert ade.num_classes == 150 and ade.num_channels == 151
    assert ade.ids == list(range(1, 151))
    assert ade.labels[0].name == "wall" and ade.labels[2].name == "sky" and ade.labels[149].name == "flag"
    raw = np.array([[0, 1, 3, 150]])
    assert ade.to_channels(raw).tolist() == [[150, 0, 2, 149]]
    with pytest.raises(SpadekitError, match=r"\[151\].*known ids: 1\.\.150"):
        ade.to_channels(np.array([[151]]))
    without_dontcare = get_label_set("ade20k")
    without_dontcare.contain_dontcare = False
    with pytest.raises(SpadekitError, match="contain_dontcare"):
        without_dontcare.to_channels(np.array([[0, 1]]))
    assert get_label_set("ade20k-outdoor").ids == ade.ids


def test_cityscapes_ids_names_colours():
    city = get_label_set("cityscapes")
    assert city.ids == list(range(35)) and city.num_channels == 35 and not city.contain_dontcare
    assert city.labels[7].name == "road" and city.labels[7].color == (128, 64, 128)
    assert city.labels[26].name == "car" and city.labels[26].color == (0, 0, 142)
    assert city.labels[33].name == "bicycle" and city.labels[23].name == "sky"
    with pytest.raises(SpadekitError, match="255"):
        city.to_channels(np.array([[255]]))


def test_shared_palette_colours_refuse_to_decode():
    city = get_label_set("cityscapes")
    rgb = np.zeros((2, 2, 3), np.uint8)  # black = unlabeled, ego vehicle, ... in Cityscapes
    with pytest.raises(SpadekitError, match="shared by classes"):
        city.from_colors(rgb, source="x.png")
    road = np.tile(np.array([128, 64, 128], np.uint8), (2, 2, 1))
    assert (city.from_colors(road) == 7).all()


def test_voc_colours_are_distinct():
    assert len({voc_color(i) for i in range(256)}) == 256
    assert voc_color(1) == (128, 0, 0) and voc_color(2) == (0, 128, 0)


def test_load_palette_list_and_mapping(tmp_path):
    (tmp_path / "p.yaml").write_text("- {name: sky, id: 3, color: '#0000ff'}\n- {name: sea, id: 5, color: [0, 0, 128]}\n")
    labels = load_palette(tmp_path / "p.yaml")
    assert labels.ids == [3, 5] and labels.labels[1].color == (0, 0, 128)
    data = get_label_set("landscapes").to_dict()
    data["contain_dontcare"] = True
    (tmp_path / "p.json").write_text(json.dumps(data))
    again = load_palette(tmp_path / "p.json")
    assert again.ids == get_label_set("landscapes").ids and again.num_channels == 23


@pytest.mark.parametrize(
    "text, message",
    [
        ("- {name: sky, id: 3}\n", "needs 'name', 'id' and 'color'"),
        ("- {name: sky, id: 3, color: '#12345'}\n", "#12345"),
        ("- {name: a, id: 3, color: '#000000'}\n- {name: b, id: 3, color: '#ffffff'}\n", "used twice"),
        ("[]\n", "non-empty"),
        ("- {name: a, id: 255, color: '#000000'}\n", "dontcare_id 255"),
        (": : :\n", "cannot read palette"),
    ],
)
def test_bad_palettes_name_the_file(tmp_path, text, message):
    path = tmp_path / "palette.yaml"
    path.write_text(text)
    with pytest.raises(SpadekitError) as error:
        load_palette(path)
    assert message in str(error.value) and str(path) in str(error.value)
