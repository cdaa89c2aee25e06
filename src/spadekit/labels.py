"""Label sets: names, raw ids and colours of a dataset's classes, and the id -> channel mapping.

A label map on disk holds raw ids (e.g. COCO-Stuff ids, 255 = unlabelled). The network sees one
channel per class of its label set (+1 dontcare channel when `contain_dontcare`); `to_channels`
maps raw ids to those channel indices and names any id the set does not know.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spadekit import SpadekitError


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    color: tuple[int, int, int]


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def rgb_to_hex(rgb) -> str:
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass
class LabelSet:
    """Classes of a dataset. Channel i of the one-hot map is `labels[i]`; the dontcare channel, if any, comes last.

    name: a short name ("landscapes", "coco-stuff", ...).
    labels: the classes, in channel order.
    dontcare_id: the raw id meaning "unlabelled" (255 for COCO-Stuff); mapped to the dontcare
        channel when `contain_dontcare`, else it is an error to meet it.
    contain_dontcare: whether the network has the extra dontcare channel.
    """

    name: str
    labels: list[Label]
    dontcare_id: int | None = 255
    contain_dontcare: bool = False
    _lut: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def num_channels(self) -> int:
        """Label channels of the one-hot map: classes + 1 when there is a dontcare channel."""
        return self.num_classes + int(self.contain_dontcare)

    @property
    def ids(self) -> list[int]:
        return [label.id for label in self.labels]

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def by_name(self, name: str) -> Label:
        for label in self.labels:
            if label.name == name:
                return label
        raise SpadekitError(
            f"unknown label name {name!r} in label set {self.name!r}; known names: {', '.join(self.names)}"
        )

    def lut(self) -> np.ndarray:
        """Lookup table raw id (0..65535) -> channel index, -1 for ids the set does not know."""
        if self._lut is None:
            lut = np.full(65536, -1, dtype=np.int64)
            for channel, label in enumerate(self.labels):
                lut[label.id] = channel
            if self.contain_dontcare and self.dontcare_id is not None:
                lut[self.dontcare_id] = self.num_classes
            object.__setattr__(self, "_lut", lut)
        return self._lut

    def to_channels(self, ids: np.ndarray, source: str = "label map") -> np.ndarray:
        """Raw id array -> channel index array (int64). Raises SpadekitError naming unknown ids."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() > 65535):
            raise SpadekitError(f"{source}: label ids must lie in 0..65535, found {int(ids.min())}..{int(ids.max())}")
        channels = self.lut()[ids.astype(np.int64)]
        if (channels < 0).any():
            bad = sorted(int(v) for v in np.unique(ids[channels < 0]))[:10]
            hint = ""
            if self.dontcare_id is not None and self.dontcare_id in bad and not self.contain_dontcare:
                hint = f" (id {self.dontcare_id} is 'unlabelled': enable contain_dontcare to accept it)"
            raise SpadekitError(
                f"{source}: label id(s) {bad} are not in label set {self.name!r} "
                f"(known ids: {self._id_summary()}){hint}"
            )
        return channels

    def to_ids(self, channels: np.ndarray) -> np.ndarray:
        """Channel indices -> raw ids (the dontcare channel -> dontcare_id)."""
        table = np.array(self.ids + ([self.dontcare_id] if self.contain_dontcare else []), dtype=np.int64)
        return table[np.asarray(channels, dtype=np.int64)]

    def colors(self) -> np.ndarray:
        """[num_classes, 3] uint8 colours in channel order."""
        return np.array([label.color for label in self.labels], dtype=np.uint8)

    def colorize(self, ids: np.ndarray) -> np.ndarray:
        """Raw id map [H,W] -> RGB uint8 [H,W,3] (unknown ids black)."""
        table = np.zeros((65536, 3), dtype=np.uint8)
        for label in self.labels:
            table[label.id] = label.color
        return table[np.asarray(ids, dtype=np.int64)]

    def from_colors(self, rgb: np.ndarray, source: str = "colour label map") -> np.ndarray:
        """RGB uint8 [H,W,3] painted with this set's colours -> raw id map [H,W]. Unknown colours are an error."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise SpadekitError(f"{source}: expected an RGB image, got an array of shape {rgb.shape}")
        key = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2].astype(np.int64)
        colors = self.colors().astype(np.int64)
        known = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
        order = np.argsort(known, kind="stable")
        pos = np.clip(np.searchsorted(known[order], key), 0, len(known) - 1)
        hit = known[order][pos] == key
        shared, counts = np.unique(known, return_counts=True)
        shared = shared[counts > 1]
        if shared.size:
            # Official palettes (Cityscapes, ADE20K) give some classes the same colour: decoding
            # such a colour would pick one class silently, so refuse it.
            ambiguous = np.intersect1d(np.unique(key[hit]), shared)
            if ambiguous.size:
                value = int(ambiguous[0])
                names = [label.name for label, k in zip(self.labels, known) if k == value]
                raise SpadekitError(
                    f"{source}: colour {rgb_to_hex(((value >> 16) & 255, (value >> 8) & 255, value & 255))} "
                    f"is shared by classes {names} of the {self.name!r} palette, so it cannot be decoded; "
                    "give an id label map instead of a colour one."
                )
        if not hit.all():
            bad = np.unique(key[~hit])[:5]
            names = ", ".join(rgb_to_hex(((b >> 16) & 255, (b >> 8) & 255, b & 255)) for b in bad)
            count = int((~hit).sum())
            raise SpadekitError(
                f"{source}: {count} pixel(s) have colours that are not in the {self.name!r} palette: {names}. "
                "Paint only with the palette's colours (no anti-aliasing), or give an id label map."
            )
        return np.array(self.ids, dtype=np.int64)[order][pos]

    def _id_summary(self) -> str:
        ids = self.ids
        if ids and ids == list(range(ids[0], ids[0] + len(ids))):
            return f"{ids[0]}..{ids[-1]}"
        return ", ".join(str(i) for i in ids[:30]) + (" ..." if len(ids) > 30 else "")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "dontcare_id": self.dontcare_id,
            "contain_dontcare": self.contain_dontcare,
            "labels": [{"id": label.id, "name": label.name, "color": rgb_to_hex(label.color)} for label in self.labels],
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelSet:
        labels = [Label(int(entry["id"]), str(entry["name"]), _color(entry["color"])) for entry in data["labels"]]
        return cls(
            name=data.get("name", "custom"),
            labels=labels,
            dontcare_id=data.get("dontcare_id", 255),
            contain_dontcare=bool(data.get("contain_dontcare", False)),
        )


def _color(value) -> tuple[int, int, int]:
    if isinstance(value, str):
        return hex_to_rgb(value)
    return tuple(int(c) for c in value)  # type: ignore[return-value]


# The GauGAN painting classes: COCO-Stuff ids (0-based). The demo's published colours for sky,
# clouds, grass and sea; our own distinct colours for the rest.
LANDSCAPE_LABELS = [
    (96, "bush", "#606e32"),
    (105, "clouds", "#696969"),
    (110, "dirt", "#6e6e28"),
    (118, "flower", "#ff00ff"),
    (119, "fog", "#c8c8c8"),
    (123, "grass", "#7bc800"),
    (124, "gravel", "#aaaa96"),
    (126, "hill", "#b6c6ba"),
    (127, "house", "#ff0000"),
    (128, "leaves", "#4c9900"),
    (134, "mountain", "#869664"),
    (147, "river", "#0000ff"),
    (148, "road", "#646464"),
    (149, "rock", "#6e5a3c"),
    (153, "sand", "#e6d296"),
    (154, "sea", "#9ac6da"),
    (156, "sky", "#9ceedd"),
    (158, "snow", "#f0f0ff"),
    (161, "stone", "#8c8c8c"),
    (168, "tree", "#a8c832"),
    (177, "water-other", "#3c6eb4"),
    (181, "wood", "#8c5a28"),
]


def landscape_labels() -> LabelSet:
    """The GauGAN landscape subset of COCO-Stuff (22 classes, compact channels, no dontcare)."""
    return LabelSet(
        name="landscapes",
        labels=[Label(i, n, hex_to_rgb(c)) for i, n, c in LANDSCAPE_LABELS],
        dontcare_id=255,
        contain_dontcare=False,
    )


def voc_color(index: int) -> tuple[int, int, int]:
    """The PASCAL-VOC colour map: the bits of `index` spread over the high bits of R, G and B.

    A bijection on 0..255, so every id gets its own colour.
    """
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= (index & 1) << shift
        g |= ((index >> 1) & 1) << shift
        b |= ((index >> 2) & 1) << shift
        index >>= 3
    return (r, g, b)


# COCO-Stuff 164k, 0-based ids as in its `stuffthingmaps` PNGs (the official labels.txt counts
# from 1 with 0 = unlabeled; here 255 = unlabeled). Ids 0..90 are the 91 COCO "thing" ids,
# eleven of which (street sign, hat, shoe, eye glasses, plate, mirror, window, desk, door,
# blender, hair brush) were removed from COCO and never occur; 91..181 are the stuff classes.
COCO_STUFF_NAMES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat",
    "backpack", "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush", "hair brush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter",
    "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit",
    "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves", "light", "mat",
    "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement",
    "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad", "river",
    "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper",
    "snow", "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent",
    "textile-other", "towel", "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other",
    "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops",
    "window-blind", "window-other", "wood",
]
COCO_STUFF_REMOVED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)


def coco_stuff_labels() -> LabelSet:
    """COCO-Stuff: 182 classes, ids 0..181 = channels 0..181, 255 unlabelled -> dontcare channel 182.

    COCO-Stuff publishes no per-class palette; colours are the PASCAL-VOC colour map of id + 1
    (what the reference's visualiser shows), except that the 22 GauGAN landscape classes keep the
    colours of the `landscapes` set, so a painting decodes the same under both sets.
    """
    landscape = {i: hex_to_rgb(c) for i, _, c in LANDSCAPE_LABELS}
    labels = [Label(i, n, landscape.get(i, voc_color(i + 1))) for i, n in enumerate(COCO_STUFF_NAMES)]
    return LabelSet(name="coco-stuff", labels=labels, dontcare_id=255, contain_dontcare=True)


# ADE20K SceneParsing (ADEChallengeData2016) classes 1..150 in the order of objectInfo150.csv,
# with the standard ADE20K palette of the MIT scene-parsing benchmark.
ADE20K_NAMES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing",
    "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister",
    "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
]
ADE20K_COLORS = [
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
]


def ade20k_labels() -> LabelSet:
    """ADE20K: ids are the raw annotation PNG values. 1..150 are the classes, 0 is "other".

    Channel = raw id - 1 (0..149); raw 0 -> dontcare channel 150. This is the reference's rule
    (subtract 1, the resulting -1/255 becomes the dontcare channel label_nc = 150), expressed as
    a label set whose dontcare id is 0.
    """
    labels = [Label(i + 1, n, c) for i, (n, c) in enumerate(zip(ADE20K_NAMES, ADE20K_COLORS))]
    return LabelSet(name="ade20k", labels=labels, dontcare_id=0, contain_dontcare=True)


# Cityscapes label ids of gtFine_labelIds.png with the official names and colours (several void
# classes share black; "polegroup" shares the pole colour). The official list gives "license
# plate" id -1 (never written to label PNGs); the reference uses label_nc 35, so id 34 is
# reserved for it and its channel stays empty on real data.
CITYSCAPES_LABELS = [
    (0, "unlabeled", (0, 0, 0)), (1, "ego vehicle", (0, 0, 0)),
    (2, "rectification border", (0, 0, 0)), (3, "out of roi", (0, 0, 0)), (4, "static", (0, 0, 0)),
    (5, "dynamic", (111, 74, 0)), (6, "ground", (81, 0, 81)), (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)), (9, "parking", (250, 170, 160)),
    (10, "rail track", (230, 150, 140)), (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)), (13, "fence", (190, 153, 153)),
    (14, "guard rail", (180, 165, 180)), (15, "bridge", (150, 100, 100)),
    (16, "tunnel", (150, 120, 90)), (17, "pole", (153, 153, 153)),
    (18, "polegroup", (153, 153, 153)), (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)), (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)), (23, "sky", (70, 130, 180)), (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)), (26, "car", (0, 0, 142)), (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)), (29, "caravan", (0, 0, 90)), (30, "trailer", (0, 0, 110)),
    (31, "train", (0, 80, 100)), (32, "motorcycle", (0, 0, 230)), (33, "bicycle", (119, 11, 32)),
    (34, "license plate", (0, 0, 142)),
]


def cityscapes_labels() -> LabelSet:
    """Cityscapes: 35 label ids 0..34 = channels (label_nc 35), no dontcare channel."""
    return LabelSet(
        name="cityscapes",
        labels=[Label(i, n, c) for i, n, c in CITYSCAPES_LABELS],
        dontcare_id=None,
        contain_dontcare=False,
    )


LABEL_SETS = {
    "ade20k": ade20k_labels,
    "ade20k-outdoor": ade20k_labels,
    "cityscapes": cityscapes_labels,
    "coco-stuff": coco_stuff_labels,
    "landscapes": landscape_labels,
}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]()
    except KeyError:
        raise SpadekitError(f"unknown label set {name!r}; known: {', '.join(sorted(LABEL_SETS))}") from None


def load_palette(path) -> LabelSet:
    """Read a palette file (.yaml/.yml/.json) into a LabelSet.

    Either a list of {name, id, color} entries (color "#rrggbb" or [r, g, b]), or a mapping with
    a "labels" list plus optional "name", "dontcare_id" (default 255) and "contain_dontcare"
    (default false), as written by `LabelSet.to_dict`.
    """
    import json
    from pathlib import Path

    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise SpadekitError(f"{path}: cannot read palette file: {error}") from None
    if isinstance(data, list):
        data = {"labels": data}
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list) or not data["labels"]:
        raise SpadekitError(
            f"{path}: a palette is a non-empty list of {{name, id, color}} entries "
            "(or a mapping with such a 'labels' list)"
        )
    data.setdefault("name", path.parent.name or "custom")
    seen_ids: dict[int, str] = {}
    for n, entry in enumerate(data["labels"]):
        where = f"{path}: entry {n + 1}"
        if not isinstance(entry, dict) or not {"name", "id", "color"} <= set(entry):
            raise SpadekitError(f"{where}: each entry needs 'name', 'id' and 'color', got {entry!r}")
        try:
            label_id = int(entry["id"])
            _checked_color(entry["color"])
        except (TypeError, ValueError) as error:
            raise SpadekitError(f"{where} ({entry.get('name')!r}): {error}") from None
        if not 0 <= label_id <= 65535:
            raise SpadekitError(f"{where} ({entry['name']!r}): id {label_id} must lie in 0..65535")
        if label_id in seen_ids:
            raise SpadekitError(f"{where}: id {label_id} is used twice ({seen_ids[label_id]!r} and {entry['name']!r})")
        seen_ids[label_id] = entry["name"]
    dontcare = data.get("dontcare_id", 255)
    if dontcare is not None and int(dontcare) in seen_ids:
        raise SpadekitError(
            f"{path}: dontcare_id {dontcare} is also the id of class {seen_ids[int(dontcare)]!r}; "
            "pick another dontcare_id or set it to null"
        )
    return LabelSet.from_dict(data)


def _checked_color(value) -> tuple[int, int, int]:
    if isinstance(value, str):
        text = value.strip()
        if len(text.lstrip("#")) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text.lstrip("#")):
            raise ValueError(f"colour {value!r} is not of the form '#rrggbb'")
        return hex_to_rgb(text)
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in value):
        return tuple(value)  # type: ignore[return-value]
    raise ValueError(f"colour {value!r} is neither '#rrggbb' nor [r, g, b] with 0..255 values")
