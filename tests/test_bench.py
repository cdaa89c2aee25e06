"""The benchmark runner works (tiny case) and reports both paths; timings themselves are never asserted."""
from spadekit.bench import Case, compare, psnr_fast_vs_float32


def test_bench_runs_both_paths_and_reports_ratios():
    rows = compare([Case("tiny", num_labels=6, ngf=4, spade_hidden=8, size=64, repeats=1, threads=1)])
    assert rows[0]["speedup"] > 0 and rows[0]["memory_ratio"] > 0
    assert psnr_fast_vs_float32(Case("tiny", num_labels=6, ngf=4, spade_hidden=8, size=64)) > 15
