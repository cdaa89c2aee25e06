"""The `spadekit` command: one entry point, one sub-command a job.

Each sub-command lives in `spadekit/commands/<name>.py`, which defines `register(subparsers)`:
it adds its parser and sets `func` to a handler `(args) -> int`. Modules are discovered here,
so adding a command touches no shared file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shutil
import sys
from pathlib import Path

from spadekit import SpadekitError, __version__


def build_parser() -> argparse.ArgumentParser:
    from spadekit import commands

    parser = argparse.ArgumentParser(
        prog="spadekit",
        description="Semantic image synthesis with SPADE: paint a label map, get an image.",
    )
    parser.add_argument("--version", action="version", version=f"spadekit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"spadekit.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def command(subcommand: str) -> str:
    """How to type `spadekit SUBCOMMAND` here: the console script by name when this environment's is the
    one on PATH, else its path (relative to the working folder when inside it), else `python -m spadekit.cli`."""
    script = Path(sys.executable).with_name("spadekit")
    found = shutil.which("spadekit")
    if found and script.is_file() and Path(found).resolve() == script.resolve():
        return f"spadekit {subcommand}"
    if script.is_file():
        relative = os.path.relpath(script)
        return f"{script if relative.startswith('..') else relative} {subcommand}"
    return f"{sys.executable} -m spadekit.cli {subcommand}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SpadekitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
