"""`spadekit generate MODEL INPUT... --out DIR`: label maps in, images out."""
from __future__ import annotations

from pathlib import Path

from spadekit import SpadekitError

IMAGE_SUFFIXES = {".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="turn label maps (id or palette-colour PNGs) into images",
        description="Generate images from label maps with a model folder or a bundled model name (default).",
    )
    parser.add_argument("model", help="model folder, or 'default' for the bundled landscape model")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="label map files or folders of them")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="first seed (image k uses seed+k)")
    parser.add_argument("--num", type=int, default=1, help="images per label map")
    parser.add_argument("--style", default=None, help="example photo whose style (colours) the images follow")
    parser.add_argument("--replace", action="append", default=[], metavar="A=B",
                        help="replace class A by class B first, e.g. grass=snow (repeatable)")
    parser.add_argument("--contact-sheet", action="store_true", help="also write contact_sheet.png (label | outputs)")
    parser.add_argument("--size", default=None, metavar="WxH",
                        help="output size, e.g. 1024x256 for a 4:1 panorama (default: the model's own); "
                             "label maps are resized to it, sides rounded to what the model makes")
    parser.add_argument("--strict", action="store_true", help="refuse label maps whose size differs from the output's instead of resizing")
    parser.add_argument("--upscale", type=int, choices=(2, 4), default=None,
                        help="enlarge each image 2x or 4x with the bundled upscaler (upscaler-x4); files end in _x2 / _x4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="float32, bfloat16, float16 (CUDA) or auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="torch.compile the SPADE kernels (seconds once; pays off for many images)")
    parser.set_defaults(func=run)


def collect_inputs(items: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise SpadekitError(f"{path}: folder holds no label map images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SpadekitError(f"input {path}: no such file or folder")
    return files


def run(args) -> int:
    from tqdm import tqdm

    from spadekit.imageio import save_image
    from spadekit.inference import Pipeline, label_id, parse_replacements, parse_size, replace_label
    from spadekit.visualize import colorize, contact_sheet

    if args.num < 1:
        raise SpadekitError(f"--num must be at least 1, got {args.num}")
    size = None if args.size is None else parse_size(args.size)
    files = collect_inputs(args.inputs)
    upscaler = None
    if args.upscale:
        from spadekit.upscale import load_upscaler, upscale_image

        upscaler = load_upscaler()
    pipe = Pipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                    compile=args.compile)
    replacements = parse_replacements(args.replace)
    for a, b in replacements:  # validate names before any work
        label_id(pipe.labels, a), label_id(pipe.labels, b)
    style = None
    if args.style:
        style = pipe.style_code(args.style)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    notes: dict[str, None] = {}  # each note once, in order
    tag = f"_style-{Path(args.style).stem}" if args.style else ""
    for path in tqdm(files, desc="generating", unit="map"):
        ids = pipe.load_label_map(path)
        for a, b in replacements:
            ids = replace_label(ids, pipe.labels, a, b)
        result = pipe.run(ids, seed=args.seed, num_images=args.num, size=size, strict=args.strict, style=style)
        for note in result.notes:
            notes.setdefault(note)
        for k, image in enumerate(result.images):
            if upscaler is not None:
                image = upscale_image(upscaler, image, args.upscale)
            save_image(out / f"{path.stem}{tag}_seed{args.seed + k}{f'_x{args.upscale}' if upscaler else ''}.png", image)
        if args.contact_sheet:
            rows.append([colorize(ids, pipe.labels)] + result.images)
    for message in notes:
        print(f"note: {message}")
    written = len(files) * args.num
    if args.contact_sheet:
        save_image(out / "contact_sheet.png", contact_sheet(rows))
        print(f"wrote {written} image(s) and contact_sheet.png to {out}")
    else:
        print(f"wrote {written} image(s) to {out}")
    return 0
