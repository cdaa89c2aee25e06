"""`spadekit export-run RUN_DIR OUT`: a model folder from a run's newest checkpoint, mid-training."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("export-run", help="export a training run's newest checkpoint (EMA weights) as a model folder")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("out", metavar="OUT")
    parser.add_argument("--no-ema", action="store_true", help="export the trained weights instead of their moving average")
    parser.add_argument("--float16", action="store_true", help="store the weights in float16: half the size, "
                        "loaded back as float32 (what the bundled default model ships)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from spadekit.train.export import export_run

    step, path = export_run(args.run_dir, args.out, use_ema=not args.no_ema, dtype=torch.float16 if args.float16 else None)
    print(f"exported step {step} of {args.run_dir} -> {path}")
    return 0
