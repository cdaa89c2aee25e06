"""`spadekit train --config NAME|FILE [section.key=value ...] --out RUN_DIR [--resume]`."""
from __future__ import annotations

from pathlib import Path

from spadekit.train.config import preset_names


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a SPADE model (one process, or several under torchrun)",
        description="Train SPADE from a YAML config, a preset by name or a file, with section.key=value "
        "overrides, e.g. `spadekit train --config landscapes train.batch_size=2 --out runs/landscapes`. "
        "Checkpoints, samples, metrics.jsonl and the final model (RUN_DIR/final) go to RUN_DIR. "
        "With --resume the newest checkpoint of RUN_DIR is continued (its config.yaml is used when "
        "--config is not given). Several processes: `torchrun --nproc_per_node N -m spadekit.cli train ...`.",
    )
    parser.add_argument("--config", default=None, help=f"a preset's name ({', '.join(preset_names())}) or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides, e.g. train.steps=1000")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, samples, logs, final model)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its newest readable checkpoint "
                        "(an unreadable one is kept as .unreadable and the one before is used)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spadekit import SpadekitError
    from spadekit.train.config import load_config
    from spadekit.train.loop import train

    config_path = args.config
    if config_path is None:
        saved = Path(args.out) / "config.yaml"
        if not (args.resume and saved.is_file()):
            raise SpadekitError(
                f"give --config NAME or a YAML file (presets: {', '.join(preset_names())}), "
                "or --resume a run folder that has a config.yaml"
            )
        config_path = saved
    config = load_config(config_path, args.overrides)
    train(config, args.out, resume=args.resume)
    return 0
