"""Import checkpoints written by the reference implementation (NVlabs/SPADE) into our format.

The reference saves plain state dicts (`{epoch}_net_{G,D,E}.pth`) with legacy spectral-norm keys
(`weight_orig`, `weight_u`, `weight_v`) and its options in `opt.txt`. We read them with
`torch.load(weights_only=True)` (no code from the file runs), derive our configs from the
options, rename the keys to our layer names, and check every shape before loading.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import torch

from spadekit import SpadekitError
from spadekit.config import ModelConfig
from spadekit.fileio import atomic_write
from spadekit.labels import LABEL_SETS, Label, LabelSet
from spadekit.models.spade_model import SPADEModel, load_state

# reference dataset_mode -> our label-set name
DATASET_LABEL_SETS = {"coco": "coco-stuff", "ade20k": "ade20k", "cityscapes": "cityscapes"}

GENERATOR_BLOCKS = {"head_0": "head", "G_middle_0": "middle_0", "G_middle_1": "middle_1"}
BLOCK_PARTS = {"conv_s": "conv_shortcut", "norm_s": "norm_shortcut"}
SPADE_PARTS = {"param_free_norm": "norm", "mlp_shared": "shared", "mlp_gamma": "gamma", "mlp_beta": "beta"}


# ---- options ---------------------------------------------------------------------------------------
def parse_opt_txt(text: str) -> dict:
    """Parse the reference's opt.txt ("name: value    [default: ...]" lines)."""
    options = {}
    for line in text.splitlines():
        line = line.split("\t[default:")[0].strip()
        if not line or line.startswith("---") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        options[key.strip()] = _parse_value(value.strip())
    return options


def _parse_value(value: str):
    if value in ("True", "False"):
        return value == "True"
    if value == "None":
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def read_options(source: Path) -> dict:
    """Options from SRC/opt.txt or SRC/options.json (the fixtures' format, options under "options")."""
    json_path, txt_path = source / "options.json", source / "opt.txt"
    if json_path.is_file():
        data = json.loads(json_path.read_text())
        return data.get("options", data)
    if txt_path.is_file():
        return parse_opt_txt(txt_path.read_text())
    raise SpadekitError(
        f"{source}: neither opt.txt nor options.json found; the reference writes opt.txt into "
        "checkpoints/NAME/ beside the .pth files — copy it next to them"
    )


def _norm_g(norm_g: str) -> tuple[bool, str, int]:
    """'spectralspadesyncbatch3x3' -> (spectral, 'syncbatch', 3)."""
    match = re.fullmatch(r"(spectral)?spade(batch|syncbatch|instance)(\d+)x\d+", norm_g)
    if not match:
        raise SpadekitError(f"norm_G {norm_g!r} is not a SPADE norm this importer knows (e.g. spectralspadesyncbatch3x3)")
    return bool(match.group(1)), match.group(2), int(match.group(3))


def _norm_plain(norm: str, option: str) -> tuple[bool, str]:
    """'spectralinstance' -> (True, 'instance'); '' or 'none' -> no norm."""
    spectral = norm.startswith("spectral")
    sub = norm[len("spectral"):] if spectral else norm
    sub = sub or "none"
    if sub not in ("instance", "batch", "syncbatch", "none"):
        raise SpadekitError(f"{option} {norm!r} is not a norm this importer knows")
    return spectral, sub


def label_set_for(options: dict) -> LabelSet:
    label_nc = int(options["label_nc"])
    dontcare = bool(options.get("contain_dontcare_label", False))
    name = DATASET_LABEL_SETS.get(str(options.get("dataset_mode", "")))
    if name in LABEL_SETS:
        labels = LABEL_SETS[name]()
        if labels.num_classes == label_nc:
            labels.contain_dontcare = dontcare
            return labels
    generic = [Label(i, f"class_{i}", _generic_color(i)) for i in range(label_nc)]
    return LabelSet(name=str(options.get("name", "imported")), labels=generic, dontcare_id=255, contain_dontcare=dontcare)


def _generic_color(i: int) -> tuple[int, int, int]:
    # bit-interleaved colour map: distinct colours for consecutive ids
    r = g = b = 0
    c = i + 1
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return (r, g, b)


def config_from_options(options: dict, has_encoder: bool, has_discriminator: bool, z_dim_encoder: int | None = None) -> ModelConfig:
    """Our model config from the reference's options (has_encoder / has_discriminator: which checkpoints are there)."""
    if options.get("netG", "spade") != "spade":
        raise SpadekitError(f"netG {options.get('netG')!r}: only the reference's 'spade' generator can be imported")
    spectral, norm, kernel = _norm_g(str(options.get("norm_G", "spectralspadesyncbatch3x3")))
    fields = dict(
        labels=label_set_for(options).to_dict(),
        use_instance=not bool(options.get("no_instance", False)),
        crop_size=int(options.get("crop_size", 256)),
        aspect_ratio=float(options.get("aspect_ratio", 1.0)),
        ngf=int(options.get("ngf", 64)),
        num_upsampling_layers=str(options.get("num_upsampling_layers", "normal")),
        use_vae=bool(options.get("use_vae", False)),
        z_dim=int(options.get("z_dim", 256)),
        norm=norm,
        spade_hidden=128,
        spade_kernel=kernel,
        spectral_norm=spectral,
        extra={"imported_from": "nvlabs", "reference_options": _jsonable(options)},
    )
    # the networks share one spectral-norm setting here; the reference sets it per network
    spectral_of = {"norm_G": spectral}
    if has_encoder:
        spectral_of["norm_E"], fields["encoder_norm"] = _norm_plain(str(options.get("norm_E", "spectralinstance")), "norm_E")
        # the reference encoder is as wide as the generator (ngf), reads 256x256 images and always outputs 256-d z
        fields.update(encoder_ndf=fields["ngf"], encoder_size=256, encoder_layers=6)
        if z_dim_encoder is not None and z_dim_encoder != fields["z_dim"]:
            raise SpadekitError(f"the encoder checkpoint gives {z_dim_encoder}-d z but z_dim is {fields['z_dim']}; they must match")
    if has_discriminator:
        if options.get("netD", "multiscale") != "multiscale" or options.get("netD_subarch", "n_layer") != "n_layer":
            raise SpadekitError("only the reference's multiscale n_layer discriminator can be imported")
        if int(options.get("output_nc", 3)) != 3:
            raise SpadekitError(f"output_nc {options.get('output_nc')}: only RGB (3) models can be imported")
        spectral_of["norm_D"], fields["d_norm"] = _norm_plain(str(options.get("norm_D", "spectralinstance")), "norm_D")
        fields.update(d_ndf=int(options.get("ndf", 64)), d_num_scales=int(options.get("num_D", 2)),
                      d_num_layers=int(options.get("n_layers_D", 4)))
    if len(set(spectral_of.values())) > 1:
        listed = ", ".join(f"{k} {options.get(k)!r}" for k in spectral_of)
        raise SpadekitError(f"{listed}: spadekit uses spectral norm in all networks or in none; these options mix them")
    return ModelConfig(**fields)


def _jsonable(options: dict) -> dict:
    return {k: v if isinstance(v, (int, float, str, bool, type(None), list)) else str(v) for k, v in options.items()}


# ---- state dict keys ----------------------------------------------------------------------------
def generator_key(key: str) -> str:
    parts = key.split(".")
    if parts[0] == "fc":
        return ".".join(["input"] + parts[1:])
    if parts[0] == "conv_img":
        return ".".join(["to_rgb"] + parts[1:])
    block = GENERATOR_BLOCKS.get(parts[0], parts[0])
    rest = parts[1:]
    if rest:
        rest[0] = BLOCK_PARTS.get(rest[0], rest[0])
    if len(rest) > 1 and rest[1] in SPADE_PARTS:
        rest[1] = SPADE_PARTS[rest[1]]
    return ".".join(["blocks", block] + rest)


def discriminator_key(key: str) -> str:
    match = re.fullmatch(r"discriminator_(\d+)\.model(\d+)\.(.*)", key)
    if not match:
        raise SpadekitError(f"unexpected discriminator key {key!r} in the reference checkpoint")
    scale, group, rest = match.groups()
    if rest.startswith("0.0."):
        rest = "0." + rest[4:]
    elif rest.startswith("0.1."):
        rest = "1." + rest[4:]
    return f"scales.{scale}.groups.{group}.{rest}"


def encoder_key(key: str) -> str:
    if key.startswith("fc_var."):
        return "fc_logvar." + key[len("fc_var."):]
    if key.startswith("fc_mu."):
        return key
    match = re.fullmatch(r"layer(\d+)\.(.*)", key)
    if not match:
        raise SpadekitError(f"unexpected encoder key {key!r} in the reference checkpoint")
    index, rest = int(match.group(1)) - 1, match.group(2)
    if not re.match(r"[01]\.", rest):  # conv without a norm layer
        rest = "0." + rest
    return f"layers.{index}.{rest}"


KEY_MAPS = {"G": generator_key, "D": discriminator_key, "E": encoder_key}
NETS = {"G": "generator", "D": "discriminator", "E": "encoder"}


def _option_hint(net: str, key: str) -> str:
    if net == "G" and (".shared." in key or key.startswith("input.") and key.endswith("weight")):
        return ("label_nc, contain_dontcare_label or no_instance (the semantic channels), "
                "or use_vae / z_dim / crop_size / aspect_ratio / num_upsampling_layers for the input layer")
    if net == "D" and key.endswith("groups.0.0.weight"):
        return "label_nc, contain_dontcare_label or no_instance (the discriminator sees semantic map + image), or ndf"
    if net == "E" and key.startswith("fc_"):
        return "ngf (the reference encoder is as wide as the generator) or z_dim"
    return "ngf / ndf (network widths), num_upsampling_layers, or n_layers_D"


# ---- files ---------------------------------------------------------------------------------------
def find_checkpoint(source: Path, net: str, epoch: str | None = None) -> Path | None:
    if epoch is not None:
        path = source / f"{epoch}_net_{net}.pth"
        return path if path.is_file() else None
    latest = source / f"latest_net_{net}.pth"
    if latest.is_file():
        return latest
    numbered = sorted(
        (p for p in source.glob(f"*_net_{net}.pth") if p.name.split("_net_")[0].isdigit()),
        key=lambda p: int(p.name.split("_net_")[0]),
    )
    return numbered[-1] if numbered else None


def load_reference_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or non-checkpoint file
        raise SpadekitError(f"{path}: cannot be read as a PyTorch state dict ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpadekitError(f"{path}: expected a plain state dict of tensors (what the reference's save_network writes)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def import_nvlabs(source: str | Path, out: str | Path | None = None, epoch: str | None = None) -> SPADEModel:
    """Build a SPADEModel from a reference checkpoint folder; save it to `out` when given."""
    source = Path(source)
    if not source.is_dir():
        raise SpadekitError(f"{source}: not a folder; give the reference's checkpoints/NAME folder")
    g_path = find_checkpoint(source, "G", epoch)
    if g_path is None:
        which = f"{epoch}_net_G.pth" if epoch else "latest_net_G.pth or {epoch}_net_G.pth"
        raise SpadekitError(f"{source}: no generator checkpoint ({which}) found")
    stem = g_path.name[: -len("_net_G.pth")]
    paths = {"G": g_path}
    for net in ("D", "E"):
        path = source / f"{stem}_net_{net}.pth"
        if path.is_file():
            paths[net] = path
    options = read_options(source)
    if bool(options.get("use_vae", False)) and "E" not in paths:
        pass  # generator-only VAE import: z is random unless an encoder is added later
    states = {net: load_reference_state(path) for net, path in paths.items()}
    z_dim_encoder = int(states["E"]["fc_mu.weight"].shape[0]) if "E" in states and "fc_mu.weight" in states["E"] else None
    try:
        config = config_from_options(options, "E" in states, "D" in states, z_dim_encoder)
    except (KeyError, ValueError) as error:
        raise SpadekitError(f"{source}: options are incomplete or invalid ({error})") from None
    model = SPADEModel(config, with_encoder="E" in states, with_discriminator="D" in states)
    for net, state in states.items():
        _load_mapped(getattr(model, NETS[net]), state, net, paths[net])
    if out is not None:
        model.save_pretrained(out)
    return model


def _load_mapped(module: torch.nn.Module, state: dict[str, torch.Tensor], net: str, path: Path) -> None:
    original = {KEY_MAPS[net](k): k for k in state}
    load_state(
        module, {KEY_MAPS[net](k): v for k, v in state.items()}, str(path), built_from="the options", stored_in="the checkpoint",
        layer_name=lambda key: f"{original[key]} (ours: {key})",
        shape_hint=lambda key: f"; check {_option_hint(net, key)}",
        mismatch_hint="; check num_upsampling_layers, n_layers_D, num_D, norm options",
    )


# ---- export: our model -> reference checkpoint files ---------------------------------------------
def _invert(mapping: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in mapping.items()}


def reference_generator_key(key: str) -> str:
    parts = key.split(".")
    if parts[0] == "input":
        return ".".join(["fc"] + parts[1:])
    if parts[0] == "to_rgb":
        return ".".join(["conv_img"] + parts[1:])
    assert parts[0] == "blocks", key
    block = _invert(GENERATOR_BLOCKS).get(parts[1], parts[1])
    rest = parts[2:]
    rest[0] = _invert(BLOCK_PARTS).get(rest[0], rest[0])
    if len(rest) > 1 and rest[1] in _invert(SPADE_PARTS):
        rest[1] = _invert(SPADE_PARTS)[rest[1]]
    return ".".join([block] + rest)


def reference_discriminator_key(key: str, norm: str, num_layers: int) -> str:
    match = re.fullmatch(r"scales\.(\d+)\.groups\.(\d+)\.(\d+)\.(.*)", key)
    scale, group, index, rest = match.groups()
    inner = 0 < int(group) < num_layers and norm != "none"  # conv and norm sit in their own Sequential
    prefix = f"0.{index}." if inner else f"{index}."
    return f"discriminator_{scale}.model{group}.{prefix}{rest}"


def reference_encoder_key(key: str, norm: str) -> str:
    if key.startswith("fc_logvar."):
        return "fc_var." + key[len("fc_logvar."):]
    if key.startswith("fc_mu."):
        return key
    match = re.fullmatch(r"layers\.(\d+)\.(\d+)\.(.*)", key)
    layer, index, rest = match.groups()
    return f"layer{int(layer) + 1}.{rest}" if norm == "none" else f"layer{int(layer) + 1}.{index}.{rest}"


def reference_options(model: SPADEModel) -> dict:
    """The reference options that rebuild `model` (for opt.txt / options.json)."""
    c = model.config
    if c.arch != "spade" or c.spade_hidden != 128 or c.min_width:
        raise SpadekitError("only SPADE generators with the reference's fixed widths (spade_hidden 128, min_width 0) can be exported")
    spectral = "spectral" if c.spectral_norm else ""
    options = {
        "netG": "spade", "label_nc": model.labels.num_classes, "contain_dontcare_label": model.labels.contain_dontcare,
        "no_instance": not c.use_instance, "ngf": c.ngf, "num_upsampling_layers": c.num_upsampling_layers,
        "crop_size": c.crop_size, "aspect_ratio": c.aspect_ratio, "use_vae": c.use_vae, "z_dim": c.z_dim,
        "norm_G": f"{spectral}spade{c.norm}{c.spade_kernel}x{c.spade_kernel}",
        "output_nc": 3, "semantic_nc": c.semantic_channels,
    }
    if model.encoder is not None:
        if c.encoder_ndf != c.ngf or c.encoder_input_size != 256 or c.encoder_num_layers != 6 or c.z_dim != 256:
            raise SpadekitError("the reference encoder is fixed (ndf = ngf, 256x256 input, 6 layers, z_dim 256); this encoder differs")
        options["norm_E"] = spectral + c.encoder_norm
    if model.discriminator is not None:
        options.update(netD="multiscale", netD_subarch="n_layer", num_D=c.d_num_scales, n_layers_D=c.d_num_layers, ndf=c.d_ndf,
                       norm_D=spectral + c.d_norm)
    return options


def export_nvlabs(model: SPADEModel, out: str | Path, epoch: str = "latest") -> Path:
    """Write `{epoch}_net_{G,D,E}.pth` state dicts and options.json that the reference (and import_nvlabs) load."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = reference_options(model)
    nets = {"G": (model.generator, reference_generator_key)}
    c = model.config
    if model.discriminator is not None:
        nets["D"] = (model.discriminator, lambda k: reference_discriminator_key(k, c.d_norm, c.d_num_layers))
    if model.encoder is not None:
        nets["E"] = (model.encoder, lambda k: reference_encoder_key(k, c.encoder_norm))
    for net, (module, key_fn) in nets.items():
        state = {key_fn(k): v.detach().cpu().clone() for k, v in module.state_dict().items()}
        atomic_write(out / f"{epoch}_net_{net}.pth", lambda p, state=state: torch.save(state, p))
    text = json.dumps({"options": options}, indent=2) + "\n"
    atomic_write(out / "options.json", lambda p: Path(p).write_text(text))
    return out
