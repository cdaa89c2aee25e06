"""`spadekit upscale IN OUT --scale 2|4`: enlarge an image with the trained upscaler (any size, in tiles)."""
from __future__ import annotations

from pathlib import Path

from spadekit import SpadekitError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "upscale",
        help="enlarge an image 2x or 4x with the trained upscaler",
        description="Enlarge an image 2x or 4x with the bundled upscaler (upscaler-x4) or an upscaler folder. "
                    "Large images are processed in tiles; the result equals one pass over the whole image.",
    )
    parser.add_argument("input", metavar="IN", help="image file (PNG, JPEG, ...); an alpha channel is dropped")
    parser.add_argument("output", metavar="OUT", help="output image file; the format follows its suffix (.png, .jpg)")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=4, help="enlargement (default 4)")
    parser.add_argument("--model", default="upscaler-x4", help="upscaler folder, or upscaler-x4 (bundled)")
    parser.add_argument("--tile", type=int, default=256, help="tile side in input pixels (memory grows with it)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch
    from PIL import Image

    from spadekit.imageio import open_image, save_image
    from spadekit.upscale import load_upscaler, upscale_image

    source, target = Path(args.input), Path(args.output)
    if target.is_dir():
        raise SpadekitError(f"OUT {target} is a folder; give an output file name such as {target / (source.stem + '_x4.png')}")
    if target.suffix.lower() not in Image.registered_extensions():
        raise SpadekitError(f"OUT {target}: cannot tell the image format from the suffix {target.suffix!r}; use .png or .jpg")
    if args.tile < 16:
        raise SpadekitError(f"--tile must be at least 16 input pixels, got {args.tile}")
    if args.threads is not None:
        if args.threads < 1:
            raise SpadekitError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    image = open_image(source, "input image")
    model = load_upscaler(args.model)
    result = upscale_image(model, image, args.scale, args.tile)
    params = {"quality": 95} if target.suffix.lower() in (".jpg", ".jpeg") else {}
    save_image(target, result, **params)
    print(f"wrote {target} ({result.width}x{result.height}, {args.scale}x {image.width}x{image.height})")
    return 0
