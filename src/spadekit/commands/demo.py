"""`spadekit demo`: render the bundled starter paintings with the bundled default model."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="render the starter paintings in several seeds and styles into a contact sheet")
    parser.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    parser.add_argument("--model", default="default", help="model folder or bundled name (default: the bundled landscape model)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per painting")
    parser.set_defaults(func=run)


def asset_files(folder: str) -> list[Path]:
    root = Path(str(resources.files("spadekit").joinpath("assets", folder)))
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def random_landscape_pipeline():
    """A randomly initialised small landscape model, for installations without the bundled weights."""
    import torch

    from spadekit.config import ModelConfig
    from spadekit.inference import Pipeline
    from spadekit.labels import landscape_labels
    from spadekit.models import SPADEModel

    torch.manual_seed(0)
    labels = landscape_labels()
    config = ModelConfig(labels=labels.to_dict(), ngf=8, spade_hidden=16, use_vae=True, z_dim=64, norm="instance", encoder_ndf=8)
    return Pipeline(SPADEModel(config, with_discriminator=False))


def run(args) -> int:
    from tqdm import tqdm

    from spadekit.imageio import colorize, save_image
    from spadekit.inference import Pipeline, bundled_model_path, replace_label
    from spadekit.visualize import contact_sheet

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.model == "default" and bundled_model_path("default") is None:
        print("note: the bundled default model is not in this installation yet; rendering with a RANDOMLY INITIALISED "
              "small model, so the images show the pipeline working, not a trained result.")
        pipe = random_landscape_pipeline()
    else:
        pipe = Pipeline.from_pretrained(args.model, dtype="auto")
    paintings = asset_files("paintings")
    styles = asset_files("styles")
    if not paintings:
        from spadekit import SpadekitError

        raise SpadekitError("no starter paintings found in spadekit/assets/paintings; reinstall from a full checkout")
    rows, titles = [], []
    for painting in tqdm(paintings, desc="demo", unit="painting"):
        ids = pipe.load_label_map(painting)
        images = pipe(ids, seed=0, num_images=args.seeds)
        for k, image in enumerate(images):
            save_image(out / f"{painting.stem}_seed{k}.png", image)
        row = [colorize(ids, pipe.labels)] + images
        if pipe.has_encoder:
            for style in styles:
                styled = pipe(ids, seed=0, style_image=style)[0]
                save_image(out / f"{painting.stem}_style-{style.stem}.png", styled)
                row.append(styled)
        rows.append(row)
        style_titles = " | styles: " + ", ".join(s.stem for s in styles) if pipe.has_encoder and styles else ""
        titles.append(f"{painting.stem}: label | seeds 0-{args.seeds - 1}" + style_titles)
        if "grass" in pipe.labels.names and "snow" in pipe.labels.names and (ids == pipe.labels.by_name("grass").id).any():
            winter = replace_label(ids, pipe.labels, "grass", "snow")
            image = pipe(winter, seed=0)[0]
            save_image(out / f"{painting.stem}_grass-to-snow.png", image)
            rows.append([colorize(winter, pipe.labels), image])
            titles.append(f"{painting.stem}, grass -> snow")
    sheet = out / "contact_sheet.png"
    save_image(sheet, contact_sheet(rows, tile=160, titles=titles))
    print(f"wrote {len(list(out.glob('*.png')))} images to {out}/ (overview: {sheet})")
    from spadekit.cli import command

    print(f"paint your own: {command('serve')}   then open http://127.0.0.1:8000")
    return 0
