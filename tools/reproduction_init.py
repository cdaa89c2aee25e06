"""Write an untrained (step-0) model folder for a training config: the floor row of docs/reproduction.md.

    python tools/reproduction_init.py --config repro_spade --out runs/repro_spade_init --seed 0

The networks are built and initialised exactly as `spadekit train` does at step 0 (Xavier-normal,
gain 0.02), then a few forward passes without gradients let the spectral-norm power iteration
settle (weights unchanged), and the folder is saved like a run's `final/`.
"""
from __future__ import annotations

import argparse
import sys

import torch

from spadekit import SpadekitError
from spadekit.models import SPADEModel
from spadekit.train.config import load_config
from spadekit.train.loop import build_dataset, init_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="training config: a preset name (repro_spade, repro_pix2pixhd, repro_concat) or a YAML file")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="section.key=value, as for spadekit train")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, [*args.overrides, f"train.seed={args.seed}"])
        dataset = build_dataset(config)
        torch.manual_seed(args.seed)
        model = SPADEModel(config.model_config(dataset.label_set, dataset.use_instances))
        for net in (model.generator, model.encoder, model.discriminator):
            if net is not None:
                init_weights(net, 0.02)
        # Spectral norm estimates sigma by one power iteration per training-mode forward pass.
        semantic = model.semantic(torch.stack([dataset[i]["label"] for i in range(4)]))
        model.train()
        with torch.no_grad():
            for _ in range(10):
                model.generator(semantic)
        model.eval()
        model.save_pretrained(args.out)
    except SpadekitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"untrained {config.model.arch} model written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
