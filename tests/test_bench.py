"""The benchmark suite (benchmarks/suite.py) runs as a script on tiny cases and reports both paths side by side.

Run in a subprocess: the tests never import the benchmark module. Timings themselves are never asserted.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spadekit.precision import fast_bf16

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suite.py"
TINY = ["--labels", "6", "--ngf", "4", "--spade-hidden", "8", "--size", "64", "--repeats", "1", "--threads", "1"]


def _run(*args: str) -> tuple[list[dict], str]:
    done = subprocess.run([sys.executable, str(SUITE), *TINY, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1])["ratios"], done.stdout


def test_inference_case_reports_both_paths_their_ratio_psnr_and_a_plot(tmp_path):
    rows, output = _run("--mode", "infer", "--plot", str(tmp_path / "plot.png"))
    (row,) = rows
    assert row["speedup"] > 0 and row["memory_ratio"] > 0, row
    assert row["psnr_db"] > 30, row  # BatchNorm calibrated: bf16 stays close to float32
    # auto: the fast path computes in what the library picks on this CPU (bfloat16 only where it is native)
    assert row["fast_dtype"] == ("bfloat16" if fast_bf16(torch.device("cpu")) else "float32"), row
    per_path = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"path"' in line]
    assert sorted(r["path"] for r in per_path) == ["baseline", "fast"]
    assert "PSNR" in output and "speedup" in output
    image = Image.open(tmp_path / "plot.png")
    assert image.size[0] > 100 and len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 2


def test_training_case_tracks_the_float32_losses():
    (row,), output = _run("--mode", "train", "--checkpointing", "--dtype", "bfloat16")
    assert row["speedup"] > 0 and row["checkpointing"] is True and row["fast_dtype"] == "bfloat16", row
    assert 0 <= row["g_loss_rel_diff"] < 0.05 and 0 <= row["d_loss_rel_diff"] < 0.05, row
    assert "loss diff" in output


def test_unknown_suite_is_one_clear_message():
    done = subprocess.run([sys.executable, str(SUITE), "--suite", "nope"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown suite 'nope'" in done.stderr and "Traceback" not in done.stderr
