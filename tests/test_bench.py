"""The benchmark runner works (tiny cases) and reports both paths; timings themselves are never asserted."""
from PIL import Image

from spadekit.bench import Case, compare, format_table, plot_scaling, psnr_fast_vs_float32

TINY = dict(num_labels=6, ngf=4, spade_hidden=8, size=64, repeats=1, threads=1)


def test_bench_runs_both_paths_and_reports_ratios(tmp_path):
    rows = compare([Case("tiny", **TINY), Case("tiny", mode="train", checkpointing=True, **TINY)])
    assert all(r["speedup"] > 0 and r["memory_ratio"] > 0 for r in rows), rows
    assert rows[0]["psnr_db"] > 30  # BatchNorm calibrated: bf16 stays close to float32
    assert 0 <= rows[1]["g_loss_rel_diff"] < 0.05 and 0 <= rows[1]["d_loss_rel_diff"] < 0.05, rows[1]
    table = format_table(rows)
    assert "tiny" in table and "PSNR" in table and "loss diff" in table
    image = Image.open(plot_scaling([{**rows[0], "size": 64}, {**rows[0], "size": 128, "fast_s": 2 * rows[0]["fast_s"]}], tmp_path / "p.png"))
    assert image.size[0] > 100 and len(set(image.getdata())) > 2


def test_uncalibrated_batch_norm_is_what_costs_psnr():
    calibrated = psnr_fast_vs_float32(Case("tiny", **TINY))
    assert calibrated > psnr_fast_vs_float32(Case("tiny", calibrate=False, **TINY))
