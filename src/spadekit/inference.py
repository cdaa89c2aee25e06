"""The Pipeline users call: label map in, PIL images out.

    pipe = Pipeline.from_pretrained("default")          # or a model folder
    images = pipe("painting.png", seed=0, num_images=4)  # ids or palette colours
    winter = pipe(replace_label(pipe.load_label_map("painting.png"), pipe.labels, "grass", "snow"))
    styled = pipe("painting.png", style_image="sunset.jpg")
    result = pipe.run("small.png")                       # the images and notes, e.g. that it was resized
    result.images, result.notes
    wide = pipe.run("painting.png", size=(1024, 256))    # any size (width, height): a 4:1 panorama
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit import SpadekitError
from spadekit.imageio import open_image, to_pil
from spadekit.labels import LabelSet
from spadekit.layers.lookup import LabelMaps
from spadekit.layers.spade import compile_kernels
from spadekit.models import SPADEModel, inference_copy, optimize_for_inference, random_latents
from spadekit.runtime_memory import keep_freed_memory
from spadekit.semantic import instance_edges

__all__ = [
    "MAX_PIXELS", "Generation", "Pipeline", "bundled_model_path", "image_to_tensor", "label_id", "load_label_map",
    "parse_replacements", "parse_size", "pick_dtype", "replace_label", "resolve_model_path", "to_pil",
]

LabelMapInput = str | os.PathLike | Image.Image | np.ndarray
ImageInput = str | os.PathLike | Image.Image | np.ndarray

# Bundled models: name -> folder inside the package.
BUNDLED_MODELS = {"default": "pretrained/default"}
# The largest output (width x height) a Pipeline makes: memory grows with the pixels (docs/performance.md).
MAX_PIXELS = 4096 * 4096


def bundled_model_path(name: str) -> Path | None:
    """Folder of a model shipped inside the package, or None when this installation lacks it."""
    relative = BUNDLED_MODELS.get(name)
    if relative is None:
        return None
    path = Path(str(resources.files("spadekit").joinpath(relative)))
    return path if (path / "config.json").is_file() else None


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    text = str(name_or_path)
    if text in BUNDLED_MODELS:
        path = bundled_model_path(text)
        if path is None:
            raise SpadekitError(
                f"the bundled model {text!r} is not in this installation (spadekit/{BUNDLED_MODELS[text]} is missing); "
                "reinstall spadekit from a full checkout, or give a model folder"
            )
        return path
    path = Path(text).expanduser()
    if not path.exists():
        known = ", ".join(sorted(BUNDLED_MODELS))
        raise SpadekitError(f"model {text!r} not found: not a folder, and not a bundled model name ({known})")
    if not path.is_dir():
        raise SpadekitError(f"model {text!r} is a file; give the model folder (with config.json and *.safetensors)")
    return path


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """'auto': bfloat16 where the hardware runs it fast (CUDA, or a CPU with AVX-512 BF16 / AMX), else float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "float32", "fp32"):
        return torch.float32
    if dtype in ("bfloat16", "bf16"):
        return torch.bfloat16
    if dtype in ("float16", "fp16"):
        if device.type != "cuda":
            raise SpadekitError("float16 inference needs a CUDA device; use bfloat16 on CPU")
        return torch.float16
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        from spadekit.precision import fast_bf16

        return torch.bfloat16 if fast_bf16(device) else torch.float32
    raise SpadekitError(f"unknown dtype {dtype!r}; choose float32, bfloat16, float16 or auto")


def _open_image(source, what: str) -> Image.Image:
    return source if isinstance(source, Image.Image) else open_image(source, what)


def load_label_map(source: LabelMapInput, labels: LabelSet) -> np.ndarray:
    """A label map as raw ids [H,W] int64, from ids or palette colours, validated against `labels`.

    Accepts a path, a PIL image or an array: 2-D (or single-channel) values are ids; RGB values
    are decoded through the palette; palette-mode PNGs are read as ids, or as colours if the ids
    are not valid. Raises SpadekitError naming the unknown ids or colours.
    """
    name = str(source) if isinstance(source, (str, os.PathLike)) else "label map"
    if isinstance(source, np.ndarray):
        array = source
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if array.ndim == 2:
            labels.to_channels(array, name)
            return array.astype(np.int64)
        if array.ndim == 3 and array.shape[2] in (3, 4):
            return labels.from_colors(array[..., :3].astype(np.uint8), name)
        raise SpadekitError(f"{name}: expected a [H,W] id array or [H,W,3] colour array, got shape {array.shape}")
    image = _open_image(source, "label map")
    if image.mode in ("L", "I", "I;16", "I;16B", "I;16L"):
        ids = np.array(image).astype(np.int64)
        labels.to_channels(ids, name)
        return ids
    if image.mode == "P":
        ids = np.array(image).astype(np.int64)
        try:
            labels.to_channels(ids, name)
            return ids
        except SpadekitError as id_error:
            try:
                return labels.from_colors(np.array(image.convert("RGB")), name)
            except SpadekitError:
                raise id_error from None
    if image.mode == "RGBA":
        alpha = np.array(image)[..., 3]
        if (alpha < 255).any():
            raise SpadekitError(f"{name}: the label map has transparent pixels; paint every pixel with a palette colour")
    rgb = np.array(image.convert("RGB"))
    try:
        return labels.from_colors(rgb, name)
    except SpadekitError as colour_error:
        # an id map saved as grey RGB
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            ids = rgb[..., 0].astype(np.int64)
            try:
                labels.to_channels(ids, name)
                return ids
            except SpadekitError:
                pass
        raise colour_error from None


def label_id(labels: LabelSet, value: str | int) -> int:
    """A class given by name ("grass") or raw id (123, "123") -> its raw id, validated."""
    if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.isdigit()):
        value = int(value)
        if value not in labels.ids:
            raise SpadekitError(f"label id {value} is not in label set {labels.name!r}")
        return value
    return labels.by_name(str(value)).id


def replace_label(ids: np.ndarray, labels: LabelSet, source: str | int, target: str | int) -> np.ndarray:
    """Return a copy of a raw-id label map with class `source` replaced by `target` (names or ids), e.g. grass -> snow."""
    out = np.array(ids, copy=True)
    out[out == label_id(labels, source)] = label_id(labels, target)
    return out


def parse_replacements(specs: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for spec in specs:
        if "=" not in spec:
            raise SpadekitError(f"--replace {spec!r}: write it as SOURCE=TARGET, e.g. grass=snow")
        a, b = spec.split("=", 1)
        pairs.append((a.strip(), b.strip()))
    return pairs


def parse_size(text: str) -> tuple[int, int]:
    """An output size "WxH" (e.g. "1024x256"), or "N" for a square -> (width, height); SpadekitError otherwise."""
    parts = str(text).strip().lower().replace("*", "x").split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise SpadekitError(f"size {text!r}: write it as WIDTHxHEIGHT in pixels, e.g. 1024x256 (or one number for a square)")
    width, height = (int(part) for part in parts)
    if width < 1 or height < 1:
        raise SpadekitError(f"size {text!r}: width and height must be at least 1 pixel")
    return width, height


def image_to_tensor(image: ImageInput, size: tuple[int, int] | None = None, what: str = "style image") -> torch.Tensor:
    """An RGB image -> [1,3,H,W] in [-1,1] (resized bicubic to `size` (H, W) when given)."""
    if isinstance(image, np.ndarray):
        pil = Image.fromarray(image.astype(np.uint8)).convert("RGB")
    else:
        pil = _open_image(image, what).convert("RGB")
    if size is not None and pil.size != (size[1], size[0]):
        pil = pil.resize((size[1], size[0]), Image.BICUBIC)
    array = torch.from_numpy(np.asarray(pil, dtype=np.float32).copy()).permute(2, 0, 1)
    return (array / 127.5 - 1).unsqueeze(0)


@dataclass
class Generation:
    """What one Pipeline call made: the images, and notes on what was done to the input (e.g. resized)."""

    images: list[Image.Image]
    notes: list[str] = field(default_factory=list)


class Pipeline:
    """Label map -> images with a trained SPADE model.

    device: "cpu", "cuda", ... dtype: float32, bfloat16, float16 (CUDA) or "auto".
    The pipeline works on its own inference copy of `model` (which it leaves as it was): with fast
    (the default), `optimize_for_inference` (lookups over the label map, fused SPADE modulation,
    weights in the compute dtype); without, `inference_copy` (the plain computation on the one-hot
    map). Either has spectral norm folded and runs under torch.inference_mode.
    compile: torch.compile the fused SPADE kernel (a few seconds once per process and per resolution;
    worth it for a server or many images; falls back to eager, with a note, if it fails).

    Every generation goes through `generate_from_channels`; `run` returns the images with notes,
    `pipe(...)` the images alone. The pipeline keeps no state between calls (one may serve threads).
    """

    def __init__(self, model: SPADEModel, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = "float32",
                 batch_size: int = 4, fast: bool = True, compile: bool = False):
        self.device = torch.device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.fast = bool(fast)
        if self.fast:
            keep_freed_memory()  # large activations reuse heap memory instead of faulting in fresh pages
            model = optimize_for_inference(model, self.dtype)
        else:
            model = inference_copy(model)
        self.model: SPADEModel = model.to(self.device)
        self.labels: LabelSet = self.model.labels
        notes = []
        if compile and self.fast and not compile_kernels():
            notes.append("torch.compile is not available here (it needs a C++ compiler); running the eager fast path")
        self.setup_notes: tuple[str, ...] = tuple(notes)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str = "cpu", dtype: str | torch.dtype | None = "float32",
                        batch_size: int = 4, fast: bool = True, compile: bool = False) -> Pipeline:
        return cls(SPADEModel.from_pretrained(resolve_model_path(name_or_path)), device=device, dtype=dtype,
                   batch_size=batch_size, fast=fast, compile=compile)

    # ---- properties -----------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(H, W) the model generates."""
        return self.model.output_size

    @property
    def size_multiple(self) -> int:
        """The sides of every size this model makes are multiples of this (2**upsamplings for SPADE)."""
        return self.model.generator.size_multiple

    def fit_size(self, size: tuple[int, int] | int | None, notes: list[str] | None = None) -> tuple[int, int]:
        """A requested output size (width, height), or an int for a square, None for the model's own ->
        the (H, W) generated: each side rounded to the nearest multiple of `size_multiple` (noted in
        `notes` when it changes). SpadekitError for sizes that are not positive or exceed MAX_PIXELS."""
        if size is None:
            return self.size
        if isinstance(size, (int, np.integer)):
            size = (int(size), int(size))
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise SpadekitError(f"size {size!r}: give (width, height) in pixels, e.g. (1024, 256)") from None
        if width < 1 or height < 1:
            raise SpadekitError(f"size {width}x{height}: width and height must be at least 1 pixel")
        m = self.size_multiple
        w, h = (max(m, int(v / m + 0.5) * m) for v in (width, height))  # ties round up
        if w * h > MAX_PIXELS:
            raise SpadekitError(f"size {width}x{height} is more than the {MAX_PIXELS // 2**20} megapixels a Pipeline makes; "
                                "choose a smaller size (upscale the result for a larger image)")
        if (w, h) != (width, height) and notes is not None:
            notes.append(f"size {width}x{height} rounded to {w}x{h}: this model makes sides that are multiples of {m}")
        return h, w

    @property
    def has_encoder(self) -> bool:
        return self.model.encoder is not None

    @property
    def multimodal(self) -> bool:
        """Whether seeds matter: the model takes a latent z (VAE or 3D noise)."""
        return self.model.config.latent_dim > 0

    def info(self) -> dict:
        h, w = self.size
        return {
            "labels": self.labels.to_dict()["labels"],
            "label_set": self.labels.name,
            "height": h,
            "width": w,
            "multimodal": self.multimodal,
            "style_image": self.has_encoder,
        }

    def load_label_map(self, source: LabelMapInput) -> np.ndarray:
        return load_label_map(source, self.labels)

    # ---- inputs -----------------------------------------------------------------------------------
    def prepare_channels(self, label_map: LabelMapInput, strict: bool = False, notes: list[str] | None = None,
                         size: tuple[int, int] | None = None) -> torch.Tensor:
        """Validated label map -> channel indices [1,1,H,W] at `size` (H, W; default the model's size), by a
        nearest resize unless strict (the resize is noted in `notes` when given)."""
        ids = label_map if isinstance(label_map, np.ndarray) and label_map.ndim == 2 else None
        ids = self.load_label_map(label_map) if ids is None else load_label_map(ids, self.labels)
        channels = torch.from_numpy(self.labels.to_channels(ids))[None, None]
        h, w = self.size if size is None else size
        if tuple(channels.shape[-2:]) != (h, w):
            what, fits = ("the model generates", "the model") if size is None else ("the output is", "the output")
            if strict:
                raise SpadekitError(f"label map is {channels.shape[-1]}x{channels.shape[-2]} but {what} {w}x{h} (strict size)")
            if notes is not None:
                notes.append(f"label map resized from {channels.shape[-1]}x{channels.shape[-2]} to {w}x{h} (nearest) to fit {fits}")
            channels = F.interpolate(channels.float(), size=(h, w), mode="nearest").long()
        return channels.to(self.device)

    def prepare(self, label_map: LabelMapInput, strict: bool = False, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Validated label map -> semantic map [1,C,H,W] at `size` (H, W; default the model's size)."""
        return self.model.semantic(self.prepare_channels(label_map, strict, size=size))

    def style_code(self, style_image: ImageInput) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, std) of the latent for an example photo, through the image encoder."""
        if not self.has_encoder:
            raise SpadekitError("this model has no image encoder, so it cannot follow a style image")
        image = image_to_tensor(style_image).to(self.device)
        with torch.inference_mode(), self._autocast():
            mu, logvar = self.model.encoder(image)
        return mu.float(), torch.exp(0.5 * logvar.float())

    def latents(self, count: int, seed: int, style: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor | None:
        """z for images seed, seed+1, ... (`random_latents`): image i of seed s equals image 0 of seed s+i.
        With a style code (mu, std), z = mu + eps * std. None for models without a latent input."""
        if not self.multimodal:
            return None
        eps = random_latents(count, self.model.config.latent_dim, seed)
        if style is None:
            return eps.to(self.device)
        mu, std = style
        return (mu + eps.to(self.device) * std).to(self.device)

    # ---- generation -------------------------------------------------------------------------------
    def generate_from_channels(self, channels: torch.Tensor, z: torch.Tensor | None, count: int | None = None,
                               instance: torch.Tensor | None = None) -> torch.Tensor:
        """Channel-index map [1 or N,1,H,W] -> images [N,3,H,W] float32, in batches of batch_size.

        N: count, else z's rows, else the maps'. instance: instance ids [1 or N,1,H,W] for models that read
        instance edges (default: the label regions' boundaries stand in, as in `SPADEModel.semantic`).
        """
        n = count or (z.shape[0] if z is not None else channels.shape[0])
        channels = channels.to(self.device)
        edge = semantic = None
        if not self.fast:
            semantic = self.model.semantic(channels, None if instance is None else instance.to(self.device))
        elif self.model.use_instance:
            edge = instance_edges(channels if instance is None else instance.to(self.device))
        return self._generate(channels, edge, semantic, z, n)

    def generate(self, semantic: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The same as `generate_from_channels`, from a semantic map [1 or N,C,H,W] (`SPADEModel.semantic`'s output)."""
        n = z.shape[0] if z is not None else semantic.shape[0]
        semantic = semantic.to(self.device)
        if not self.fast:
            return self._generate(None, None, semantic, z, n)
        maps = LabelMaps.from_semantic(semantic, self.model.use_instance)
        return self._generate(maps.label, maps.edge, None, z, n)

    def _generate(self, channels, edge, semantic, z, n: int) -> torch.Tensor:
        """The generator in batches: on label maps (fast) or on the semantic map (plain)."""
        outputs = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                if semantic is not None:
                    net_input = _rows(semantic, start, stop).contiguous(memory_format=torch.channels_last)
                else:
                    edges = None if edge is None else _rows(edge, start, stop)
                    net_input = LabelMaps(_rows(channels, start, stop), edges, self.labels.num_channels)
                outputs.append(self.model.generator(net_input, None if z is None else z[start:stop]).float())
        return torch.cat(outputs)

    def run(
        self,
        label_map: LabelMapInput,
        seed: int = 0,
        num_images: int = 1,
        style_image: ImageInput | None = None,
        size: tuple[int, int] | int | None = None,
        strict: bool = False,
        style: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Generation:
        """Generate `num_images` images for one label map; returns them with notes on the input.

        seed: image k uses seed + k (the same seed, size and map give the same image). style_image: a
        photo whose style the images follow, or style: its code from `style_code` (to reuse it).
        size: the output (width, height), an int for a square, None for the model's own size. The model
        generates at that size (the label map is resized to it, nearest); sides that are not multiples of
        `size_multiple` are rounded to the nearest ones, with a note (`fit_size`).
        strict: refuse a label map of another size than the output's instead of resizing it.
        """
        if num_images < 1:
            raise SpadekitError(f"num_images must be at least 1, got {num_images}")
        notes = list(self.setup_notes)
        target = None if size is None else self.fit_size(size, notes)
        channels = self.prepare_channels(label_map, strict=strict, notes=notes, size=target)
        if style is None and style_image is not None:
            style = self.style_code(style_image)
        images = self.generate_from_channels(channels, self.latents(num_images, seed, style), num_images)
        return Generation(to_pil(images), notes)

    def __call__(
        self,
        label_map: LabelMapInput,
        seed: int = 0,
        num_images: int = 1,
        style_image: ImageInput | None = None,
        size: tuple[int, int] | int | None = None,
        strict: bool = False,
    ) -> list[Image.Image]:
        """The images of `run` (its notes dropped); size is (width, height) as there."""
        return self.run(label_map, seed, num_images, style_image, size, strict).images

    def interpolate_styles(self, label_map: LabelMapInput, style_a: ImageInput, style_b: ImageInput, steps: int = 5) -> list[Image.Image]:
        """Images whose latent walks linearly from style_a's mean code to style_b's."""
        channels = self.prepare_channels(label_map)
        mu_a, _ = self.style_code(style_a)
        mu_b, _ = self.style_code(style_b)
        weights = torch.linspace(0, 1, steps, device=self.device)[:, None]
        return to_pil(self.generate_from_channels(channels, (1 - weights) * mu_a + weights * mu_b))

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def _rows(t: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows start:stop of a batch, or its one row repeated (a view) when it has one."""
    return t.expand(stop - start, -1, -1, -1) if t.shape[0] == 1 else t[start:stop]
