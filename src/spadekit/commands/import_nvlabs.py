"""`spadekit import-nvlabs SRC OUT`: convert reference checkpoints to a spadekit model folder."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-nvlabs",
        help="convert NVlabs/SPADE checkpoints (latest_net_G.pth + opt.txt) to a spadekit model folder",
        description="Read {epoch}_net_G.pth (and D/E when present) with the options (opt.txt or options.json) "
        "from SRC and write config.json + safetensors to OUT.",
    )
    parser.add_argument("source", metavar="SRC", help="folder with latest_net_G.pth (or {epoch}_net_G.pth) and opt.txt")
    parser.add_argument("out", metavar="OUT", help="output model folder")
    parser.add_argument("--epoch", default=None, help="which {epoch}_net_G.pth to take (default: latest, else the highest)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from spadekit.interop.nvlabs import import_nvlabs

    model = import_nvlabs(args.source, args.out, epoch=args.epoch)
    nets = [n for n in ("generator", "encoder", "discriminator") if getattr(model, n) is not None]
    params = sum(p.numel() for p in model.generator.parameters())
    print(f"imported {', '.join(nets)} ({params / 1e6:.2f} M generator parameters) -> {args.out}")
    return 0
