"""`--config` takes a preset's name (the YAML files inside the package) or a file, from any folder."""
from __future__ import annotations

import pytest
import yaml

from spadekit import SpadekitError
from spadekit.train.config import PRESET_DIR, load_config, preset_names, resolve_config


def test_presets_ship_inside_the_package():
    assert PRESET_DIR.parent.name == "spadekit" and (PRESET_DIR.parent / "__init__.py").is_file()
    assert {"ade20k", "cityscapes", "coco_stuff", "landscapes", "tiny"} <= set(preset_names())


def test_a_preset_loads_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = yaml.safe_load((PRESET_DIR / "landscapes.yaml").read_text())
    for name in ("landscapes", "landscapes.yaml"):
        assert resolve_config(name) == PRESET_DIR / "landscapes.yaml"
        config = load_config(name)
        for section, values in expected.items():
            for key, value in values.items():
                assert getattr(getattr(config, section), key) == value, (name, section, key)


def test_a_file_wins_over_a_preset_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("train:\n  steps: 7\n")
    assert load_config("tiny.yaml").train.steps == 7
    assert load_config("tiny").train.steps == yaml.safe_load((PRESET_DIR / "tiny.yaml").read_text())["train"]["steps"]


def test_unknown_names_and_missing_files_list_the_presets(tmp_path):
    with pytest.raises(SpadekitError, match="no preset of that name; presets: .*landscapes"):
        load_config("landscape")
    with pytest.raises(SpadekitError, match="does not exist.*landscapes"):
        load_config(tmp_path / "landscapes.yaml")  # a path is never read as a preset name
