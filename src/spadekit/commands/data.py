"""`spadekit data ...`: dataset tools. `data check` validates a dataset on disk; other modules add
more sub-commands to the group (`spadekit.landscapes.dataset.add_make_landscapes_parser`)."""
from __future__ import annotations

import argparse

from spadekit.data.datasets import DATASETS
from spadekit.imageio import MAX_PIXELS


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="check and prepare datasets", description="Dataset tools.")
    data_subparsers = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    parser.set_defaults(func=lambda args: _help(parser, args))

    check = data_subparsers.add_parser(
        "check",
        help="validate a dataset: pairing, sizes, label ids, class histogram, every problem found",
        description=(
            "Validate a dataset on disk and list every problem found. "
            "Exit status 0 when the data is usable, 1 when it is not."
        ),
    )
    check.add_argument("root", help="dataset folder")
    check.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="the layout of ROOT")
    check.add_argument("--split", action="append", dest="splits", metavar="SPLIT",
                       help="split to check (repeatable; default: every split found)")
    check.add_argument("--labels", default=None, metavar="NAME|PALETTE",
                       help="label set name (ade20k, coco-stuff, cityscapes, landscapes) or a palette file; "
                            "default: the dataset's preset, or ROOT/palette.yaml|json for folders")
    check.add_argument("--contain-dontcare", dest="contain_dontcare", action=argparse.BooleanOptionalAction,
                       default=None, help="add the dontcare channel (default: the label set's setting)")
    check.add_argument("--instances", action=argparse.BooleanOptionalAction, default=None,
                       help="require instance maps (default: the dataset preset; folders: when present)")
    check.add_argument("--limit", type=int, default=None, help="check only the first N pairs of each split")
    check.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                       help=f"refuse images with more pixels than this (default {MAX_PIXELS})")
    check.add_argument("--top", type=int, default=10, help="classes shown in the histogram (default 10)")
    check.set_defaults(func=run_check)

    from spadekit.landscapes.dataset import add_make_landscapes_parser

    add_make_landscapes_parser(data_subparsers)

    from spadekit.eval.heldout import add_heldout_photos_parser

    add_heldout_photos_parser(data_subparsers)


def _help(parser, args) -> int:
    parser.print_help()
    return 2


def run_check(args) -> int:
    from spadekit.data.check import check_dataset

    report = check_dataset(
        args.dataset,
        args.root,
        splits=args.splits,
        label_set=args.labels,
        contain_dontcare=args.contain_dontcare,
        instances=args.instances,
        limit=args.limit,
        max_pixels=args.max_pixels,
    )
    print(report.format(top=args.top))
    return 0 if report.usable else 1
