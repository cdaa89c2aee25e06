"""Results table of docs/reproduction.md from the run folders: one row per model, mean (and each seed).

    python tools/reproduction_table.py --runs runs --report eval_val64.json

Reads RUNS/repro_<arch>_s<seed>/<report> (from `spadekit eval`), the generator size from the model
folder, and the training time from metrics.jsonl; prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from safetensors import safe_open

NAMES = {"spade": "SPADE", "pix2pixhd": "pix2pixHD++", "concat": "concat"}


def generator_parameters(model_dir: Path) -> int:
    # Spectral-norm layers store weight_orig plus the u / v power-iteration vectors: count only
    # trainable tensors (the u, v buffers end in _u / _v).
    with safe_open(str(model_dir / "generator.safetensors"), "pt") as f:
        return sum(_numel(f.get_slice(k).get_shape()) for k in f.keys() if not re.search(r"weight_(u|v)$", k))


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def training_time(run: Path) -> tuple[float | None, float | None]:
    """(estimated wall minutes of the run, s/step): the median over the intervals between metrics
    lines, so that a run paused for a while (SIGSTOP by a benchmark) is timed by its working pace."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        return None, None
    paces = sorted((b["time"] - a["time"]) / (b["step"] - a["step"]) for a, b in zip(lines, lines[1:]))
    seconds_per_step = paces[len(paces) // 2]
    return seconds_per_step * lines[-1]["step"] / 60, seconds_per_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--report", default="eval_val64.json", help="report file name inside each run folder")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    rows = {}
    for report_path in sorted(runs.glob(f"repro_*/{args.report}")):
        run = report_path.parent
        match = re.fullmatch(r"repro_(\w+?)_(s\d+|init)", run.name)
        if not match:
            continue
        arch, seed = match.groups()
        report = json.loads(report_path.read_text())
        seg = report["segmentation"] or {}
        model_dir = run / "final" if (run / "final").is_dir() else run
        minutes, sps = training_time(run) if (run / "metrics.jsonl").is_file() else (None, None)
        key = f"{NAMES.get(arch, arch)}{' (untrained)' if seed == 'init' else ''}"
        rows.setdefault(key, []).append({
            "seed": seed, "fid": report["fid"], "kid": 1e3 * report["kid"]["mean"], "miou": 100 * seg.get("miou", float("nan")),
            "acc": 100 * seg.get("pixel_accuracy", float("nan")), "real_miou": 100 * seg.get("real_miou", float("nan")),
            "real_acc": 100 * seg.get("real_pixel_accuracy", float("nan")), "params": generator_parameters(model_dir),
            "minutes": minutes, "sps": sps, "n": report["num_images"],
        })
    if not rows:
        print(f"no {args.report} under {runs}/repro_*", file=sys.stderr)
        return 2
    mean = lambda items, k: sum(i[k] for i in items) / len(items)  # noqa: E731
    print("| model | G params | seeds | FID | KID x1e3 | mIoU | pixel acc. | s/step | train min |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = [*NAMES.values()] + [f"{name} (untrained)" for name in NAMES.values()]
    for key, items in sorted(rows.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        per_seed = lambda k, f, items=items: " / ".join(format(i[k], f) for i in items)  # noqa: E731
        timed = [i for i in items if i["sps"] is not None]
        t = (f"{mean(timed, 'sps'):.2f} | {mean(timed, 'minutes'):.1f}") if timed else "- | -"
        seeds = ",".join(i["seed"] for i in items)
        print(f"| {key} | {items[0]['params'] / 1e6:.2f} M | {seeds} | {mean(items, 'fid'):.1f} ({per_seed('fid', '.1f')}) | "
              f"{mean(items, 'kid'):.1f} ({per_seed('kid', '.1f')}) | {mean(items, 'miou'):.1f} ({per_seed('miou', '.1f')}) | "
              f"{mean(items, 'acc'):.1f} ({per_seed('acc', '.1f')}) | {t} |")
    first = next(iter(rows.values()))[0]
    print(f"\n{first['n']} images; segmenter on the real photos: mIoU {first['real_miou']:.1f}, pixel accuracy {first['real_acc']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
