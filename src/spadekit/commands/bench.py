"""`spadekit bench`: speed and memory, fast path vs a plain eager float32 baseline, in one run."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="time inference / training: fast path vs plain float32 baseline")
    parser.add_argument("--suite", default=None, help="a named suite (default, scaling) instead of one case")
    parser.add_argument("--model", default=None, help="a model folder or 'default' (overrides the size options)")
    parser.add_argument("--labels", type=int, default=151, help="label channels")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--mode", choices=["infer", "train"], default="infer")
    parser.add_argument("--path", choices=["fast", "baseline", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpointing", action="store_true", help="train mode: activation checkpointing on the fast path")
    parser.add_argument("--compile", action="store_true", help="infer mode: torch.compile the fast path's SPADE kernels")
    parser.add_argument("--plot", default=None, help="write time against pixels (both paths) as a PNG image here")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from spadekit.bench import SUITES, Case, compare, format_table, run_in_subprocess
    from spadekit import SpadekitError

    if args.suite:
        if args.suite not in SUITES:
            raise SpadekitError(f"unknown suite {args.suite!r}; known: {', '.join(SUITES)}")
        cases = SUITES[args.suite]
    else:
        cases = [Case(args.model or f"{args.size}-ngf{args.ngf}", num_labels=args.labels, ngf=args.ngf, size=args.size, batch=args.batch,
                      mode=args.mode, model=args.model, repeats=args.repeats,
                      checkpointing=args.checkpointing, compile=args.compile)]
    if args.path != "both":
        for case in cases:
            case.path = args.path
            print(json.dumps(run_in_subprocess(case)))
        return 0
    rows = compare(cases)
    print()
    print(format_table(rows))
    print(json.dumps({"ratios": rows}))
    if args.plot:
        from spadekit.bench import plot_scaling

        print(f"plot: {plot_scaling(rows, args.plot)}")
    return 0
