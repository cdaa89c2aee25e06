"""Validate a dataset on disk and report everything that is wrong with it, not just the first thing.

`check_dataset` lists each split with the same code the Datasets use, then opens every photo,
label map and instance map and records each problem (a message naming the file and the value)
instead of stopping at it. The report says per split: pairs, sizes, a class histogram; then the
notes (fine, but worth knowing) and the problems (the data is not usable until they are fixed).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spadekit import SpadekitError
from spadekit.data.datasets import (
    Sample,
    _same_size,
    dataset_class,
    read_instance_ids,
    read_label_ids,
    read_photo,
)
from spadekit.data.labels import LabelSet
from spadekit.imageio import MAX_PIXELS


@dataclass
class SplitReport:
    split: str
    counts: dict[str, int] = field(default_factory=dict)
    pairs: int = 0
    checked: int = 0
    sizes: Counter = field(default_factory=Counter)
    histogram: np.ndarray | None = None  # pixels per channel
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    dataset: str
    root: Path
    label_set: LabelSet | None
    instances: bool | None
    splits: list[SplitReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def all_problems(self) -> list[str]:
        return self.problems + [p for s in self.splits for p in s.problems]

    @property
    def all_notes(self) -> list[str]:
        return self.notes + [n for s in self.splits for n in s.notes]

    @property
    def usable(self) -> bool:
        return not self.all_problems and any(s.pairs for s in self.splits)

    def format(self, top: int = 10, max_lines: int = 200) -> str:
        lines = [f"dataset {self.dataset} at {self.root}"]
        if self.label_set is not None:
            ls = self.label_set
            dontcare = f" + dontcare (id {ls.dontcare_id})" if ls.contain_dontcare else ""
            lines.append(
                f"label set {ls.name!r}: {ls.num_classes} classes{dontcare} = {ls.num_channels} label channels; "
                f"instance maps: {'yes' if self.instances else 'no'}"
            )
        for s in self.splits:
            counts = ", ".join(f"{n} {k}" for k, n in s.counts.items())
            lines.append(f"split {s.split}: {s.pairs} pairs ({counts}); checked {s.checked}")
            if s.sizes:
                common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in s.sizes.most_common(5))
                more = f", ... {len(s.sizes) - 5} more sizes" if len(s.sizes) > 5 else ""
                lines.append(f"  sizes: {common}{more}")
            if s.histogram is not None and s.histogram.sum() and self.label_set is not None:
                lines.append(f"  classes: {int((s.histogram > 0).sum())} of {len(s.histogram)} channels present; top {top}:")
                names = self.label_set.names + (["dontcare"] if self.label_set.contain_dontcare else [])
                ids = self.label_set.ids + ([self.label_set.dontcare_id] if self.label_set.contain_dontcare else [])
                total = s.histogram.sum()
                for channel in np.argsort(-s.histogram, kind="stable")[:top]:
                    if s.histogram[channel] == 0:
                        break
                    lines.append(
                        f"    {names[channel]:<24} id {ids[channel]:>5}  channel {channel:>4}  "
                        f"{100.0 * s.histogram[channel] / total:6.2f}%"
                    )
        for title, items in (("notes", self.all_notes), ("problems", self.all_problems)):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  {item}" for item in items[:max_lines]]
                if len(items) > max_lines:
                    lines.append(f"  ... and {len(items) - max_lines} more")
        if self.usable:
            lines.append("result: usable")
        else:
            n = len(self.all_problems)
            reason = f"{n} problem(s)" if n else "no usable pairs"
            lines.append(f"result: NOT usable ({reason})")
        return "\n".join(lines)


def inspect_sample(
    sample: Sample,
    label_set: LabelSet | None,
    colors: LabelSet | None,
    report: SplitReport,
    max_pixels: int = MAX_PIXELS,
) -> None:
    """Open one sample's files and record every problem and note in `report`."""
    photo = ids = None
    try:
        photo, note = read_photo(sample.image, max_pixels)
        report.sizes[(photo.shape[1], photo.shape[0])] += 1
        if note:
            report.notes.append(note)
    except SpadekitError as error:
        report.problems.append(str(error))
    try:
        ids = read_label_ids(sample.label, colors, max_pixels)
    except SpadekitError as error:
        report.problems.append(str(error))
    if ids is not None:
        if photo is not None:
            try:
                _same_size(sample.image, photo, sample.label, ids)
            except SpadekitError as error:
                report.problems.append(str(error))
        if label_set is not None:
            try:
                channels = label_set.to_channels(ids, source=str(sample.label))
                counts = np.bincount(channels.ravel(), minlength=label_set.num_channels)
                report.histogram = counts if report.histogram is None else report.histogram + counts
            except SpadekitError as error:
                report.problems.append(str(error))
    if sample.instance is not None:
        try:
            instance = read_instance_ids(sample.instance, max_pixels)
            if photo is not None:
                _same_size(sample.image, photo, sample.instance, instance)
        except SpadekitError as error:
            report.problems.append(str(error))
    report.checked += 1


def check_dataset(
    name: str,
    root,
    *,
    splits: list[str] | None = None,
    label_set=None,
    contain_dontcare: bool | None = None,
    instances: bool | None = None,
    limit: int | None = None,
    max_pixels: int = MAX_PIXELS,
    progress: bool = True,
) -> CheckReport:
    """Check a dataset of layout `name` under `root`; returns a CheckReport (never raises for bad data)."""
    cls = dataset_class(name)
    root = Path(root)
    use_instances = cls.default_instances if instances is None else instances
    report = CheckReport(name, root, None, use_instances)
    if not root.is_dir():
        report.problems.append(f"{root}: dataset folder not found")
        return report
    try:
        report.label_set = cls.resolve_label_set(root, label_set, contain_dontcare)
    except SpadekitError as error:
        report.problems.append(str(error))
    colors = None
    if report.label_set is not None:
        try:
            colors = cls.color_set(root, report.label_set)
        except SpadekitError as error:
            report.problems.append(str(error))
    splits = splits or cls.splits(root)
    if not splits:
        report.problems.append(f"{root}: no train or val split found; expected {cls.layout}")
    for split in splits:
        scan = cls.scan(root, split, use_instances)
        split_report = SplitReport(split, counts=dict(scan.counts), pairs=len(scan.samples))
        split_report.problems += scan.problems
        split_report.notes += scan.notes
        report.splits.append(split_report)
        samples = scan.samples[:limit] if limit is not None else scan.samples
        for sample in tqdm(samples, desc=f"checking {split}", unit="pair", disable=not progress or None, leave=False):
            inspect_sample(sample, report.label_set, colors, split_report, max_pixels)
    if report.instances is None:
        report.instances = any(s.counts.get("instances") for s in report.splits)
    return report
