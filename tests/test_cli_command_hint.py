"""The commands spadekit prints for the user to type work where it is installed."""
from __future__ import annotations

import os
import sys

from spadekit.cli import command


def _environment(tmp_path, with_script: bool):
    bin_dir = tmp_path / "env" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("")
    if with_script:
        (bin_dir / "spadekit").write_text("#!/bin/sh\n")
        (bin_dir / "spadekit").chmod(0o755)
    return bin_dir


def test_the_console_script_by_name_when_it_is_on_path(tmp_path, monkeypatch):
    bin_dir = _environment(tmp_path, with_script=True)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin")
    assert command("serve") == "spadekit serve"


def test_the_scripts_path_when_another_or_none_is_on_path(tmp_path, monkeypatch):
    bin_dir = _environment(tmp_path, with_script=True)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    assert command("serve") == os.path.join("env", "bin", "spadekit") + " serve"  # relative inside the working folder
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert command("serve") == f"{bin_dir / 'spadekit'} serve"


def test_python_m_without_a_console_script(tmp_path, monkeypatch):
    bin_dir = _environment(tmp_path, with_script=False)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    assert command("serve") == f"{bin_dir / 'python'} -m spadekit.cli serve"
