"""Datasets of (photo, label map, instance map) triples in the paper's layouts and a custom one.

Every item is a dict:
- image: float32 [3,H,W] in [-1, 1]
- label: int64 [1,H,W] of *channel* indices (`LabelSet.to_channels`; dontcare included)
- instance: int64 [1,H,W] instance ids (only when the dataset uses instance maps)
- path: the photo's path (str)

Build the network input in batches with `spadekit.data.semantic.semantic_map(label,
dataset.num_channels, instance)`. Layouts are described in docs/data.md. Problems found while
listing files (missing partners, stray files, empty folders) raise `SpadekitError` when the
dataset is built; problems inside a file (bad ids, sizes, corrupt files) when the item is loaded.
`spadekit data check` reports all of them at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spadekit import SpadekitError
from spadekit.data.labels import LabelSet, get_label_set, load_palette
from spadekit.data.transforms import PairedTransform, TransformConfig
from spadekit.imageio import MAX_PIXELS, open_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAP_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")  # lossless only: JPEG would blur ids
LOSSY_SUFFIXES = (".jpg", ".jpeg")
IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
PALETTE_NAMES = ("palette.yaml", "palette.yml", "palette.json")


# ---------------------------------------------------------------------------------------------
# Reading files. Each reader raises SpadekitError naming the file and what is wrong with it.


def read_photo(path: Path | str, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """A photo as uint8 [H,W,3], plus a note when it had to be converted (grayscale, alpha).

    Grayscale photos (COCO and ADE20K contain some) are converted to RGB rather than refused.
    """
    image = open_image(path, max_pixels=max_pixels)
    mode, note = image.mode, None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        raise SpadekitError(f"{path}: {mode} (16/32-bit) photos are not supported; save it as 8-bit RGB")
    if mode in ("L", "1"):
        note = f"{path}: grayscale photo (mode {mode}), converted to RGB"
    elif mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        note = f"{path}: photo with an alpha channel (mode {mode}); transparency is ignored"
    if mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8), note


def read_label_ids(path: Path | str, colors: LabelSet | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A label map as raw ids int64 [H,W].

    8-bit grayscale ("L") and palette ("P": the palette index is the id) PNGs hold ids. RGB
    images are decoded through the colours of `colors` when given, else refused. 16-bit and
    alpha images are refused.
    """
    image = open_image(path, max_pixels=max_pixels)
    mode = image.mode
    if mode in ("L", "P"):
        return np.asarray(image, dtype=np.int64)
    if mode == "1":
        return np.asarray(image).astype(np.int64)
    if mode.startswith("I") or mode == "F":
        raise SpadekitError(
            f"{path}: 16/32-bit label map (mode {mode}); label maps must be 8-bit id PNGs "
            "(grayscale or palette), one id per pixel"
        )
    if mode in ("RGBA", "LA", "PA"):
        raise SpadekitError(
            f"{path}: label map with an alpha channel (mode {mode}); save it without transparency: "
            "as an 8-bit id PNG, or as an RGB colour PNG when the dataset has a palette"
        )
    if mode == "RGB":
        if colors is None:
            raise SpadekitError(
                f"{path}: RGB colour label map where this layout needs 8-bit id maps "
                "(one id per pixel, grayscale PNG)"
            )
        rgb = np.asarray(image)
        try:
            return colors.from_colors(rgb, source=str(path))
        except SpadekitError as error:
            if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                raise SpadekitError(
                    f"{error} This map is gray (R = G = B): if its values are ids, save it as an 8-bit "
                    "grayscale PNG instead of RGB."
                ) from None
            raise
    raise SpadekitError(f"{path}: unsupported label image mode {mode}; save it as an 8-bit id PNG")


def read_instance_ids(path: Path | str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An instance map (8 or 16-bit ids, e.g. Cityscapes' class * 1000 + k) as int64 [H,W]."""
    image = open_image(path, max_pixels=max_pixels)
    if image.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N", "1"):
        return np.asarray(image).astype(np.int64)
    raise SpadekitError(
        f"{path}: instance map of mode {image.mode}; instance maps must be 8 or 16-bit id PNGs"
    )


# ---------------------------------------------------------------------------------------------
# Listing and pairing files.


@dataclass
class Sample:
    image: Path
    label: Path
    instance: Path | None = None


@dataclass
class Scan:
    """What listing one split found: the paired samples, problems (unusable) and notes (fine)."""

    split: str
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _is_ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_NAMES


def list_files(
    directory: Path,
    role: str,
    suffixes: tuple[str, ...],
    scan: Scan,
    recursive: bool = True,
    ignore=None,
) -> dict[str, Path]:
    """Files of `directory` ending in one of `suffixes`, keyed by relative path minus the suffix.

    Other files are problems (not an image, or a JPEG label map) unless `ignore(path)` says so.
    """
    if not directory.is_dir():
        scan.problems.append(f"{directory}: {role} folder not found")
        return {}
    found: dict[str, Path] = {}
    paths = sorted(directory.rglob("*") if recursive else directory.iterdir())
    for path in paths:
        if not path.is_file() or _is_ignored(path) or any(_is_ignored(p) for p in path.relative_to(directory).parents if p.name):
            continue
        name = path.name.lower()
        suffix = next((s for s in suffixes if name.endswith(s.lower())), None)
        if suffix is None:
            if ignore is not None and ignore(path):
                continue
            if role != "photo" and path.suffix.lower() in LOSSY_SUFFIXES:
                scan.problems.append(
                    f"{path}: JPEG {role} map: lossy compression changes ids at region borders; save {role} maps as PNG"
                )
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                scan.problems.append(f"{path}: unexpected file in the {role} folder (expected names ending in {', '.join(suffixes)})")
            else:
                scan.problems.append(
                    f"{path}: not an image file (extension {path.suffix or 'none'!r}) in the {role} folder; move it out"
                )
            continue
        rel = path.relative_to(directory).as_posix()
        key = rel[: len(rel) - len(suffix)]
        if key in found:
            scan.problems.append(f"{path}: two {role} files for {key!r} (also {found[key].name}); keep one")
            continue
        found[key] = path
    if not found:
        scan.problems.append(f"{directory}: no {role} files found (empty folder?)")
    scan.counts[role + "s"] = len(found)
    return found


def pair_files(scan: Scan, photos: dict, labels: dict, instances: dict | None, dirs: dict[str, Path]) -> None:
    """Match photos, labels (and instances) by key; every unmatched file is a problem."""
    for key, photo in photos.items():
        partners = {"label": labels, "instance": instances}
        missing = [role for role, table in partners.items() if table is not None and key not in table]
        for role in missing:
            if partners[role]:  # a missing or empty folder is reported once, not once per photo
                scan.problems.append(f"{photo}: no {role} map for this photo in {dirs[role]}")
        if not missing:
            scan.samples.append(Sample(photo, labels[key], instances[key] if instances is not None else None))
    for role, table in (("label", labels), ("instance", instances)):
        for key in sorted(set(table or {}) - set(photos)):
            if photos:
                scan.problems.append(f"{table[key]}: {role} map without a photo in {dirs['photo']}")


# ---------------------------------------------------------------------------------------------
# The datasets.


class SegmentationDataset(torch.utils.data.Dataset):
    """Base class: a list of samples, a label set, and the shared loading and transforms.

    root, split: where the data lies and which split ("train", "val").
    label_set: a LabelSet, the name of one in LABEL_SETS, a palette file, or None for the preset.
    contain_dontcare: override the label set's dontcare channel (None keeps the preset's).
    instances: use instance maps (None = the preset: required for COCO-Stuff and Cityscapes,
        off for ADE20K, "when present" for folders).
    transform: TransformConfig (None = the preset for this dataset).
    random: random crops / flips (default: split == "train"); each item draws from
        `np.random.default_rng([seed, epoch, index])`, so loading is reproducible for any number
        of workers; call `set_epoch` to change the draw between epochs.
    limit: keep only the first `limit` samples (sorted by name).
    skip_bad_files: an item whose files cannot be read is replaced by the next readable one, and
        item["skipped"] says why (the error, naming the file; "" for items read as asked), so a
        trainer can count and report them; off (the default): the error is raised.
    """

    name = "base"
    label_set_name: str | None = None
    default_instances: bool | None = False

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        label_set: LabelSet | str | None = None,
        contain_dontcare: bool | None = None,
        instances: bool | None = None,
        transform: TransformConfig | None = None,
        random: bool | None = None,
        seed: int = 0,
        limit: int | None = None,
        max_pixels: int = MAX_PIXELS,
        skip_bad_files: bool = False,
    ):
        self.root = Path(root)
        self.skip_bad_files = bool(skip_bad_files)
        if not self.root.is_dir():
            raise SpadekitError(f"{self.root}: dataset folder not found")
        self.split = split
        self.max_pixels = int(max_pixels)
        self.label_set = self.resolve_label_set(self.root, label_set, contain_dontcare)
        self.use_instances = self.default_instances if instances is None else bool(instances)
        scan = self.scan(self.root, split, self.use_instances)
        if scan.problems:
            shown = "\n  ".join(scan.problems[:20])
            more = f"\n  ... and {len(scan.problems) - 20} more" if len(scan.problems) > 20 else ""
            raise SpadekitError(
                f"{self.name} dataset at {self.root}, split {split!r}: {len(scan.problems)} problem(s):\n  {shown}{more}\n"
                f"Run `spadekit data check --dataset {self.name} {self.root}` for a full report."
            )
        self.samples = scan.samples[:limit] if limit is not None else scan.samples
        if self.use_instances is None:  # folders: use instance maps when they are there
            self.use_instances = bool(self.samples) and all(s.instance is not None for s in self.samples)
        self.transform = PairedTransform(transform or self.default_transform())
        self.random = (split == "train") if random is None else bool(random)
        self.seed = int(seed)
        self.epoch = 0

    # --- what subclasses define ---------------------------------------------------------------
    layout = ""  # the expected layout, for messages

    @classmethod
    def split_dirs(cls, root: Path, split: str) -> dict[str, Path | None]:
        """The photo / label / instance folders of a split."""
        raise NotImplementedError

    @classmethod
    def splits(cls, root: Path) -> list[str]:
        """The splits this layout has under root: those whose photo or label folder exists."""
        root = Path(root)
        return [
            s for s in ("train", "val")
            if any(d is not None and d.is_dir() for d in list(cls.split_dirs(root, s).values())[:2])
        ]

    @classmethod
    def scan(cls, root: Path, split: str, instances: bool | None) -> Scan:
        raise NotImplementedError

    @classmethod
    def default_transform(cls) -> TransformConfig:
        return TransformConfig(preprocess="resize_and_crop", load_size=286, crop_size=256)

    @classmethod
    def resolve_label_set(cls, root: Path, label_set, contain_dontcare: bool | None) -> LabelSet:
        if label_set is None:
            label_set = cls.label_set_name
        result = _label_set_from(label_set)
        if contain_dontcare is not None and contain_dontcare != result.contain_dontcare:
            result = dataclasses.replace(result, contain_dontcare=bool(contain_dontcare))
        return result

    @classmethod
    def color_set(cls, root: Path, label_set: LabelSet | None) -> LabelSet | None:
        """The label set whose colours decode RGB label maps (None: only id maps accepted)."""
        return None

    @property
    def colors(self) -> LabelSet | None:
        if not hasattr(self, "_colors"):
            self._colors = self.color_set(self.root, self.label_set)
        return self._colors

    # --- loading ------------------------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        """Label channels of the one-hot map (classes + dontcare)."""
        return self.label_set.num_channels

    @property
    def semantic_nc(self) -> int:
        """Channels of the network input: label channels + 1 instance-edge channel when used."""
        return self.num_channels + int(bool(self.use_instances))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def load_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Untransformed (photo uint8 [H,W,3], channel indices [H,W], instance ids [H,W] or None)."""
        sample = self.samples[index]
        photo, _ = read_photo(sample.image, self.max_pixels)
        ids = read_label_ids(sample.label, self.colors, self.max_pixels)
        _same_size(sample.image, photo, sample.label, ids)
        channels = self.label_set.to_channels(ids, source=str(sample.label))
        instance = None
        if self.use_instances and sample.instance is not None:
            instance = read_instance_ids(sample.instance, self.max_pixels)
            _same_size(sample.image, photo, sample.instance, instance)
        return photo, channels, instance

    def __getitem__(self, index: int) -> dict:
        if not self.skip_bad_files:
            return self._item(index)
        try:
            return {**self._item(index), "skipped": ""}
        except SpadekitError as error:
            for offset in range(1, len(self)):
                try:
                    return {**self._item((index + offset) % len(self)), "skipped": str(error)}
                except SpadekitError:
                    continue
            raise SpadekitError(f"{self.root}: none of the {len(self)} pairs can be read ({error})") from None

    def _item(self, index: int) -> dict:
        photo, channels, instance = self.load_arrays(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        photo, channels, instance = self.transform(photo, channels, instance, rng=rng, random=self.random)
        image = torch.from_numpy(photo).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        item = {
            "image": image,
            "label": torch.from_numpy(channels.astype(np.int64))[None],
            "path": str(self.samples[index].image),
        }
        if instance is not None:
            item["instance"] = torch.from_numpy(instance.astype(np.int64))[None]
        return item


def _same_size(photo_path: Path, photo: np.ndarray, other_path: Path, other: np.ndarray) -> None:
    if photo.shape[:2] != other.shape[:2]:
        raise SpadekitError(
            f"{other_path}: size {other.shape[1]}x{other.shape[0]} differs from its photo "
            f"{photo_path.name} ({photo.shape[1]}x{photo.shape[0]}); they must match pixel for pixel"
        )


def _label_set_from(value) -> LabelSet:
    if isinstance(value, LabelSet):
        return value
    if value is None:
        raise SpadekitError("no label set given")
    value = str(value)
    if Path(value).suffix.lower() in (".yaml", ".yml", ".json"):
        return load_palette(value)
    return get_label_set(value)


class ADE20KDataset(SegmentationDataset):
    """ADEChallengeData2016: images/{training,validation}/*.jpg, annotations/{...}/*.png.

    Annotation PNGs hold 0 = other, 1..150 = classes; channel = id - 1, id 0 -> dontcare 150.
    """

    name = "ade20k"
    label_set_name = "ade20k"
    default_instances = False
    SPLIT_DIRS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}

    @classmethod
    def base(cls, root: Path) -> Path:
        # Accept both the folder that holds ADEChallengeData2016 and the folder itself.
        nested = root / "ADEChallengeData2016"
        return nested if nested.is_dir() and not (root / "images").is_dir() else root

    layout = "ROOT/images/{training,validation}/*.jpg and ROOT/annotations/{training,validation}/*.png"

    @classmethod
    def split_dirs(cls, root: Path, split: str) -> dict[str, Path | None]:
        base, sub = cls.base(root), cls.SPLIT_DIRS.get(split, split)
        return {"photo": base / "images" / sub, "label": base / "annotations" / sub, "instance": None}

    @classmethod
    def scan(cls, root: Path, split: str, instances: bool | None) -> Scan:
        scan = Scan(split)
        if split not in cls.SPLIT_DIRS:
            scan.problems.append(f"unknown ADE20K split {split!r}; use train or val")
            return scan
        base = cls.base(root)
        dirs = cls.split_dirs(root, split)
        if instances:
            scan.problems.append("ADE20K has no instance maps in ADEChallengeData2016; use instances=False")
        photos = list_files(dirs["photo"], "photo", (".jpg", ".jpeg", ".png"), scan)
        labels = list_files(dirs["label"], "label", (".png",), scan)
        pair_files(scan, photos, labels, None, dirs)
        cls.filter(base, scan)
        return scan

    @classmethod
    def filter(cls, base: Path, scan: Scan) -> None:
        pass


# Scene categories (sceneCategories.txt of ADEChallengeData2016) that we count as outdoor.
# Our own list: natural landscapes, water, streets and building exteriors. Names ending in
# "outdoor" (e.g. "church_outdoor") count too.
OUTDOOR_SCENES = frozenset(
    """
    alley airfield airport amusement_park aqueduct arch badlands bamboo_forest bayou beach
    boardwalk botanical_garden bridge building_complex building_facade bus_station butte campsite
    campus canal_natural canal_urban canyon castle cemetery cliff coast construction_site
    corn_field cottage courtyard creek crosswalk dam desert_road desert_sand desert_vegetation
    dock doorway_outdoor downtown driveway farm field_cultivated field_road field_wild fire_escape
    fire_station forest forest_path forest_road formal_garden fountain garden gas_station
    glacier golf_course harbor hayfield heliport highway hill hot_spring house ice_floe iceberg
    ice_shelf islet japanese_garden kasbah lagoon lake_natural lawn lighthouse loading_dock
    mansion marsh mausoleum medina military_hut mountain mountain_path mountain_snowy
    oast_house ocean oilrig orchard pagoda palace park parking_lot pasture patio pavilion pier
    plaza playground pond promenade racecourse railroad_track rainforest residential_neighborhood
    river rock_arch rope_bridge ruin runway sandbar schoolyard sea_cliff shed shopfront
    ski_resort ski_slope sky skyscraper slum snowfield stadium street swamp temple tower
    tree_farm tundra valley vegetable_garden viaduct village vineyard volcano water_tower
    waterfall wheat_field wind_farm windmill yard
    """.split()
)
ADE20K_SKY, ADE20K_CEILING = 3, 6


def is_outdoor_scene(scene: str) -> bool:
    scene = scene.strip().lower()
    return scene in OUTDOOR_SCENES or scene.endswith("outdoor")


class ADE20KOutdoorDataset(ADE20KDataset):
    """ADE20K restricted to outdoor scenes.

    With ADEChallengeData2016/sceneCategories.txt ("ADE_train_00000001 airport_terminal" lines):
    keep images whose scene is in OUTDOOR_SCENES or ends in "outdoor". Without it: keep images
    whose annotation shows sky (id 3) and no ceiling (id 6).
    """

    name = "ade20k-outdoor"

    @classmethod
    def filter(cls, base: Path, scan: Scan) -> None:
        scenes_file = base / "sceneCategories.txt"
        kept = []
        if scenes_file.is_file():
            scenes = {}
            for line in scenes_file.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    scenes[parts[0]] = parts[1]
            for sample in scan.samples:
                scene = scenes.get(sample.image.stem)
                if scene is None:
                    scan.notes.append(f"{sample.image}: not listed in {scenes_file}; left out")
                elif is_outdoor_scene(scene):
                    kept.append(sample)
            rule = f"outdoor scenes of {scenes_file.name}"
        else:
            for sample in scan.samples:
                try:
                    ids = read_label_ids(sample.label)
                except SpadekitError as error:
                    scan.problems.append(str(error))
                    continue
                if (ids == ADE20K_SKY).any() and not (ids == ADE20K_CEILING).any():
                    kept.append(sample)
            rule = "annotations with sky and no ceiling (no sceneCategories.txt)"
        scan.notes.append(f"ade20k-outdoor, split {scan.split}: kept {len(kept)} of {len(scan.samples)} images ({rule})")
        if scan.samples and not kept:
            scan.problems.append(f"{base}: no outdoor images in split {scan.split!r} ({rule})")
        scan.samples = kept


class COCOStuffDataset(SegmentationDataset):
    """COCO-Stuff in one of two layouts (0-based ids, 255 = unlabelled -> dontcare):

    - the reference's: ROOT/{train,val}_img/*.jpg, {train,val}_label/*.png, {train,val}_inst/*.png
    - the official download: ROOT/images/{train,val}2017/*.jpg and
      ROOT/stuffthingmaps_trainval2017/{train,val}2017/*.png (or ROOT/stuffthingmaps/...);
      it has no instance maps, so use instances=False with it.
    """

    name = "coco-stuff"
    label_set_name = "coco-stuff"
    default_instances = True

    layout = (
        "ROOT/{train,val}_img/*.jpg, ROOT/{train,val}_label/*.png, ROOT/{train,val}_inst/*.png, or "
        "ROOT/images/{train,val}2017/*.jpg with ROOT/stuffthingmaps_trainval2017/{train,val}2017/*.png"
    )

    @classmethod
    def split_dirs(cls, root: Path, split: str) -> dict[str, Path | None]:
        if (root / f"{split}_img").is_dir() or (root / f"{split}_label").is_dir():
            return {"photo": root / f"{split}_img", "label": root / f"{split}_label", "instance": root / f"{split}_inst"}
        for maps in ("stuffthingmaps_trainval2017", "stuffthingmaps"):
            if (root / maps).is_dir() and (root / "images").is_dir():
                return {"photo": root / "images" / f"{split}2017", "label": root / maps / f"{split}2017", "instance": None}
        return {"photo": root / f"{split}_img", "label": root / f"{split}_label", "instance": root / f"{split}_inst"}

    @classmethod
    def scan(cls, root: Path, split: str, instances: bool | None) -> Scan:
        scan = Scan(split)
        dirs = cls.split_dirs(root, split)
        photos = list_files(dirs["photo"], "photo", (".jpg", ".jpeg", ".png"), scan)
        labels = list_files(dirs["label"], "label", (".png",), scan)
        instance_files = None
        if instances:
            if dirs["instance"] is None:
                scan.problems.append(
                    f"{root}: the official COCO-Stuff layout has no instance maps; put them in "
                    f"{root / (split + '_inst')} with the reference layout, or use instances=False (--no-instances)"
                )
            else:
                instance_files = list_files(dirs["instance"], "instance", (".png",), scan)
        pair_files(scan, photos, labels, instance_files, dirs)
        return scan


class CityscapesDataset(SegmentationDataset):
    """Cityscapes: leftImg8bit/{split}/{city}/*_leftImg8bit.png with gtFine/{split}/{city}/
    *_gtFine_labelIds.png (ids 0..33) and *_gtFine_instanceIds.png (16-bit; class * 1000 + k
    for classes with instances, else the class id). Other gtFine files are ignored.
    """

    name = "cityscapes"
    label_set_name = "cityscapes"
    default_instances = True

    @classmethod
    def default_transform(cls) -> TransformConfig:
        return TransformConfig(preprocess="fixed", load_size=512, crop_size=512, aspect_ratio=2.0)

    layout = "ROOT/leftImg8bit/{train,val}/CITY/*_leftImg8bit.png and ROOT/gtFine/{train,val}/CITY/*_gtFine_{labelIds,instanceIds}.png"

    @classmethod
    def split_dirs(cls, root: Path, split: str) -> dict[str, Path | None]:
        return {"photo": root / "leftImg8bit" / split, "label": root / "gtFine" / split, "instance": root / "gtFine" / split}

    @classmethod
    def scan(cls, root: Path, split: str, instances: bool | None) -> Scan:
        scan = Scan(split)
        dirs = cls.split_dirs(root, split)
        photos = list_files(dirs["photo"], "photo", ("_leftImg8bit.png",), scan)

        def in_gt(path):  # colour maps, polygons, trainIds
            return "_gtFine_" in path.name
        labels = list_files(dirs["label"], "label", ("_gtFine_labelIds.png",), scan, ignore=in_gt)
        instance_files = None
        if instances:
            instance_files = list_files(dirs["instance"], "instance", ("_gtFine_instanceIds.png",), scan, ignore=in_gt)
        pair_files(scan, photos, labels, instance_files, dirs)
        return scan


class FolderDataset(SegmentationDataset):
    """A custom layout: ROOT/images/, ROOT/labels/, optional ROOT/instances/ (files paired by
    name without extension, subfolders allowed), or the same under ROOT/train/ and ROOT/val/.
    The label set comes from ROOT/palette.yaml|.yml|.json (or ROOT/<split>/palette.*), or from
    `label_set`. Labels are 8-bit id PNGs, or RGB colour PNGs decoded through the palette.
    A flat ROOT (no train/ or val/) is the "train" split.
    """

    name = "folder"
    default_instances = None

    layout = "ROOT/images/, ROOT/labels/, optional ROOT/instances/ and ROOT/palette.yaml (or the same under ROOT/train/ and ROOT/val/)"

    @classmethod
    def split_dir(cls, root: Path, split: str) -> Path | None:
        if (root / split / "images").is_dir() or (root / split / "labels").is_dir():
            return root / split
        if split in ("train", "all") and not any((root / s).is_dir() for s in ("train", "val")):
            return root
        return None

    @classmethod
    def splits(cls, root: Path) -> list[str]:
        found = [s for s in ("train", "val", "test") if (root / s / "images").is_dir() or (root / s / "labels").is_dir()]
        return found or ["train"]

    @classmethod
    def scan(cls, root: Path, split: str, instances: bool | None) -> Scan:
        scan = Scan(split)
        base = cls.split_dir(root, split)
        if base is None:
            scan.problems.append(f"{root / split}: split folder not found (expected {root / split / 'images'} and {root / split / 'labels'})")
            return scan
        dirs = {"photo": base / "images", "label": base / "labels", "instance": base / "instances"}
        photos = list_files(dirs["photo"], "photo", IMAGE_SUFFIXES, scan)
        labels = list_files(dirs["label"], "label", MAP_SUFFIXES, scan)
        instance_files = None
        if instances or (instances is None and dirs["instance"].is_dir()):
            instance_files = list_files(dirs["instance"], "instance", MAP_SUFFIXES, scan)
        pair_files(scan, photos, labels, instance_files, dirs)
        return scan

    @classmethod
    def find_palette(cls, root: Path) -> Path | None:
        found = [root / n for n in PALETTE_NAMES if (root / n).is_file()]
        if not found:
            found = [root / s / n for s in ("train", "val") for n in PALETTE_NAMES if (root / s / n).is_file()]
        if len(found) > 1 and len({p.read_bytes() for p in found}) > 1:
            raise SpadekitError(f"{root}: several different palette files ({', '.join(map(str, found))}); keep one")
        return found[0] if found else None

    @classmethod
    def resolve_label_set(cls, root: Path, label_set, contain_dontcare: bool | None) -> LabelSet:
        palette = cls.find_palette(root)
        if label_set is None:
            if palette is None:
                raise SpadekitError(
                    f"{root}: no palette file ({' / '.join(PALETTE_NAMES)}) and no label set given; "
                    "write a palette (a list of {name, id, color: '#rrggbb'}) or pass --labels NAME "
                    "(one of the built-in label sets)"
                )
            return super().resolve_label_set(root, palette, contain_dontcare)
        result = super().resolve_label_set(root, label_set, contain_dontcare)
        if palette is not None:
            # The data is labelled with its palette's classes: another label set would silently
            # give its pixels other meanings.
            own = load_palette(palette)
            if own.ids != result.ids or own.names != result.names:
                raise SpadekitError(
                    f"{palette}: the data's palette lists other classes than label set {result.name!r} "
                    f"({_first_difference(own, result)}); use the palette (give no label set) or relabel the data"
                )
        return result

    @classmethod
    def color_set(cls, root: Path, label_set: LabelSet | None) -> LabelSet | None:
        palette = cls.find_palette(root)
        return load_palette(palette) if palette is not None else label_set


def _first_difference(a: LabelSet, b: LabelSet) -> str:
    for channel, (x, y) in enumerate(zip(a.labels, b.labels)):
        if (x.id, x.name) != (y.id, y.name):
            return f"channel {channel}: {x.name!r} (id {x.id}) in the palette, {y.name!r} (id {y.id}) in {b.name!r}"
    return f"{a.num_classes} classes in the palette, {b.num_classes} in {b.name!r}"


DATASETS: dict[str, type[SegmentationDataset]] = {
    "ade20k": ADE20KDataset,
    "ade20k-outdoor": ADE20KOutdoorDataset,
    "coco-stuff": COCOStuffDataset,
    "cityscapes": CityscapesDataset,
    "folder": FolderDataset,
}


def dataset_class(name: str) -> type[SegmentationDataset]:
    try:
        return DATASETS[name]
    except KeyError:
        raise SpadekitError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def build_dataset(name: str, root, split: str = "train", **options) -> SegmentationDataset:
    """Build a dataset by name ("ade20k", "ade20k-outdoor", "coco-stuff", "cityscapes", "folder").

    options: label_set, contain_dontcare, instances, transform (TransformConfig), random, seed,
    limit, max_pixels, skip_bad_files; see SegmentationDataset.
    """
    return dataset_class(name)(root, split, **options)
