"""Label sets: names, raw ids and colours of a dataset's classes, and the id -> channel mapping.

A label map on disk holds raw ids (e.g. COCO-Stuff ids, 255 = unlabelled). The network sees one
channel per class of its label set (+1 dontcare channel when `contain_dontcare`); `to_channels`
maps raw ids to those channel indices and names any id the set does not know.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb)


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
                names = [l.name for l, k in zip(self.labels, known) if k == value]
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
        if ids == list(range(len(ids))):
            return f"0..{len(ids) - 1}"
        return ", ".join(str(i) for i in ids[:30]) + (" ..." if len(ids) > 30 else "")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "dontcare_id": self.dontcare_id,
            "contain_dontcare": self.contain_dontcare,
            "labels": [{"id": l.id, "name": l.name, "color": rgb_to_hex(l.color)} for l in self.labels],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LabelSet":
        labels = [Label(int(l["id"]), str(l["name"]), _color(l["color"])) for l in data["labels"]]
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


LABEL_SETS = {
    "landscapes": landscape_labels,
}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]()
    except KeyError:
        raise SpadekitError(f"unknown label set {name!r}; known: {', '.join(sorted(LABEL_SETS))}") from None
