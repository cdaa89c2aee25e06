"""Training configuration: one dataclass per section, loaded from YAML with dotted overrides.

    spadekit train --config landscapes train.batch_size=2 log.sample_every=100 --out runs/x

--config takes a preset's name (the YAML files shipped in `spadekit/configs/`, see `preset_names()`)
or the path of a YAML file. A YAML file has up to four sections (data, model, train, log); every
key must be a field of the section's dataclass, so a typo is an error that names the key. The
fully resolved config is saved as RUN_DIR/config.yaml and inside every checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spadekit import SpadekitError
from spadekit.config import DATA_FIELDS, ModelConfig
from spadekit.labels import LabelSet


@dataclass
class DataConfig:
    """Where the training pairs come from and how they are resized, cropped and flipped.

    dataset: a layout known to `spadekit.data.datasets.build_dataset` ("folder" = ROOT/images +
        ROOT/labels (+ ROOT/instances) + ROOT/palette.yaml; "ade20k", "coco-stuff", "cityscapes", ...).
    root: the dataset folder.
    labels: label set name ("landscapes", "coco-stuff", ...); None = the dataset's own (palette.yaml).
    use_instance: add the instance-edge channel; None = the dataset's preset (COCO-Stuff and
        Cityscapes on, ADE20K off, folders when ROOT/instances exists).
    preprocess / load_size / crop_size / aspect_ratio / flip: see `spadekit.data.transforms`.
    num_workers: DataLoader worker processes (0 = load in the training process).
    limit: use only the first N pairs (None = all); for smoke runs.
    color_grading: random global colour grade of training photos (0 = off, 1 = typical; see
        `spadekit.data.transforms.TransformConfig`): what a style photo can then steer.
    skip_bad_files: a training pair whose file cannot be read (truncated, damaged, gone) is replaced by
        the next readable one, with a note naming the file and a count; off: the run stops naming it.
    """

    dataset: str = "folder"
    root: str = "data/landscapes"
    split: str = "train"
    labels: str | None = None
    use_instance: bool | None = None
    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    aspect_ratio: float = 1.0
    flip: bool = True
    num_workers: int = 2
    limit: int | None = None
    color_grading: float = 0.0
    skip_bad_files: bool = False


@dataclass
class OptimConfig:
    """Losses, optimisers, schedule, precision, EMA and reproducibility.

    gan_mode: hinge | ls | original. lambda_*: loss weights (0 turns a loss off). lambda_color: L1
        between fake and real averaged over an 8x8 grid (spadekit.losses.color_loss; 0 = off).
        lambda_color_global: the same with one cell (the frame's mean colour, per square of side
        min(H, W)): a pull on the global colour cast alone, at full strength whatever the local errors.
        lambda_detail: L1 between the local fine-detail energies (mean |Laplacian| over a 16x16 grid,
        at full and half size) of fake and real (spadekit.losses.detail_loss; 0 = off): asks for the
        photo's amount of texture in each region, not its exact edges.
    perceptual_arch: vgg16 (cached ImageNet weights, `python -m spadekit.weights --prepare`) or vgg19
        (give `perceptual_weights`, the torchvision file). perceptual_size: compute the perceptual
        loss on images resized to this side (None = full size; smaller is much faster on a CPU).
    ttur: G 1e-4 / D 4e-4 with betas (0, 0.9); off: 2e-4 both with betas (0.5, 0.999).
        lr_g / lr_d / beta1 / beta2 override these when set; adam_eps: Adam's epsilon.
    steps or epochs: training length (one step = one global batch; steps wins when both are set).
    decay_start: fraction of training after which the learning rate decays linearly to 0 (1 = never).
    d_steps_per_g: D is updated every step, G every d_steps_per_g steps.
    batch_size: the global batch (split across processes); grad_accum: micro-batches per step
        (batch_size must be divisible by world_size * grad_accum).
    precision: fp32 | bf16 (autocast, CPU and CUDA) | fp16 (CUDA only, with a grad scaler) | auto (bf16 where the
        hardware runs it natively: CUDA, or a CPU with AVX-512 BF16 / AMX; else fp32 — emulated bf16 is ~10x slower).
    ema_decay: EMA of the generator (and encoder) weights; None = off (samples and export then use
        the trained weights). ema_start: steps before which the EMA just copies the weights.
    seed; deterministic: torch.use_deterministic_algorithms (exactly repeatable runs, slower on GPU).
    device: auto | cpu | cuda. num_threads: torch CPU threads per process (None = torch's choice).
    activation_checkpointing: recompute the generator blocks' activations in backward instead of
        keeping them (SPADE generator; much less memory, about one more generator forward of time).
    fast_path: feed the SPADE generator label maps, so its convs over the one-hot map run as table
        lookups (`spadekit.layers.lookup`; the same parameters and checkpoints), with fused Adam and
        spectral norm's fused gradient; same losses within float tolerance, faster on a CPU (see
        docs/performance.md).
    init_from: a model folder (config.json + *.safetensors, e.g. from `spadekit export-run`) or a
        bundled model's name ("default") whose weights start a new run (fine-tuning, or switching an
        option that adds no parameters, such as model.norm). Normalisation statistics the folder lacks start fresh; a missing
        discriminator file leaves the discriminator freshly initialised. Ignored when resuming.
    diffaug: differentiable augmentation of everything the discriminator sees, real and fake, the
        label map moved with the image (`spadekit.augment`): a comma-separated policy such as
        "translation,cutout,color" ("" = off). diffaug_p: the probability of each operation per image
        (fixed; ADA's starting value when ada_target > 0). ada_target: adapt p as ADA does, towards
        E[sign(D(real))] = ada_target (0.6 in ADA; 0 = fixed p); ada_ramp_images: images over which p
        may move from 0 to 1 (ADA: 500k; small runs need far fewer).
    labelmix: weight of OASIS's LabelMix consistency loss (10 in the paper; 0 = off), with
        model.d_arch oasis. That discriminator brings its own losses (class-balanced N+1
        cross-entropy instead of gan_mode) and no features to match (lambda_feat 0).
    skip_nonfinite: a step whose losses are NaN or Inf stops the run (0), or has its updates skipped, at
        most this many times over the run (the run stops at the next one). A checkpoint with a
        non-finite weight is never written.
    """

    gan_mode: str = "hinge"
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    lambda_kld: float = 0.05
    lambda_color: float = 0.0
    lambda_color_global: float = 0.0
    lambda_detail: float = 0.0
    perceptual_arch: str = "vgg16"
    perceptual_weights: str | None = None
    perceptual_size: int | None = None
    ttur: bool = True
    lr_g: float | None = None
    lr_d: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    adam_eps: float = 1e-8
    steps: int | None = None
    epochs: int | None = None
    decay_start: float = 0.5
    d_steps_per_g: int = 1
    batch_size: int = 1
    grad_accum: int = 1
    precision: str = "fp32"
    ema_decay: float | None = 0.999
    ema_start: int = 0
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    num_threads: int | None = None
    activation_checkpointing: bool = False
    fast_path: bool = False
    init_from: str | None = None
    diffaug: str = ""
    diffaug_p: float = 1.0
    ada_target: float = 0.0
    ada_ramp_images: int = 10000
    labelmix: float = 0.0
    skip_nonfinite: int = 0

    @property
    def learning_rates(self) -> tuple[float, float]:
        default = (1e-4, 4e-4) if self.ttur else (2e-4, 2e-4)
        return (self.lr_g if self.lr_g is not None else default[0], self.lr_d if self.lr_d is not None else default[1])

    @property
    def betas(self) -> tuple[float, float]:
        default = (0.0, 0.9) if self.ttur else (0.5, 0.999)
        return (self.beta1 if self.beta1 is not None else default[0], self.beta2 if self.beta2 is not None else default[1])


@dataclass
class LogConfig:
    """What is written to the run folder, and how often.

    log_every: steps between metrics.jsonl lines (and progress-bar updates of the losses).
    sample_every: steps between sample grids (samples/step_XXXXXX.png, EMA generator, fixed batch).
    num_samples: pairs in the fixed sample batch.
    checkpoint_every: steps between checkpoints (None = only by time);
    checkpoint_seconds: also checkpoint when this much wall time passed since the last one (None = off).
    keep_last: checkpoints kept (older ones are deleted once a newer one is safely written).
    tensorboard: write TensorBoard scalars and images when the package is installed.
    """

    log_every: int = 50
    sample_every: int = 1000
    num_samples: int = 8
    checkpoint_every: int | None = 5000
    checkpoint_seconds: float | None = 300.0
    keep_last: int = 3
    tensorboard: bool = True


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["model"] = {k: v for k, v in self.model.to_dict().items() if k in MODEL_OPTIONS}
        return data

    def model_config(self, labels: LabelSet, use_instance: bool) -> ModelConfig:
        """The model to train: the model section with what the data decides filled in (the dataset's label
        set and instance edges, the data section's crop size and aspect ratio)."""
        try:
            return dataclasses.replace(self.model, labels=labels.to_dict(), use_instance=bool(use_instance),
                                       crop_size=self.data.crop_size, aspect_ratio=self.data.aspect_ratio)
        except ValueError as error:
            raise SpadekitError(f"model section: {error}") from None

    @classmethod
    def from_dict(cls, data: dict | None, source: str = "config") -> TrainConfig:
        data = data or {}
        if not isinstance(data, dict):
            raise SpadekitError(f"{source}: a training config is a mapping with sections {', '.join(SECTIONS)}")
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise SpadekitError(f"{source}: unknown section(s) {unknown}; known sections: {', '.join(SECTIONS)}")
        sections = {}
        for name, section_cls in SECTIONS.items():
            values = data.get(name) or {}
            if not isinstance(values, dict):
                raise SpadekitError(f"{source}: section {name!r} must be a mapping of options, got {values!r}")
            sections[name] = _build_section(section_cls, values, name, source)
        config = cls(**sections)
        validate(config, source)
        return config


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": OptimConfig, "log": LogConfig}
# The model section is `spadekit.config.ModelConfig` less what the data decides (and free-form notes).
MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in DATA_FIELDS + ("extra",))
FROM_DATA = {"labels": "data.labels (or the dataset's palette)", "use_instance": "data.use_instance",
             "crop_size": "data.crop_size", "aspect_ratio": "data.aspect_ratio"}
GAN_MODES = ("hinge", "ls", "original")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Check / convert one value to a field type (int, float, bool, str, or X | None)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (kind,) = [a for a in args if a is not type(None)]
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    expected = getattr(kind, "__name__", str(kind)) + (" or null" if type(None) in args else "")
    raise SpadekitError(f"{where}: expected {expected}, got {value!r}")


def _build_section(cls, values: dict, name: str, source: str):
    types_ = _field_types(cls)
    if cls is ModelConfig:
        from_data = sorted(set(values) & set(FROM_DATA))
        if from_data:
            raise SpadekitError(f"{source}: model.{from_data[0]} comes from the data; set {FROM_DATA[from_data[0]]} instead")
        types_ = {k: v for k, v in types_.items() if k in MODEL_OPTIONS}
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise SpadekitError(
            f"{source}: unknown option(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
            f"options of {name!r}: {', '.join(types_)}"
        )
    try:
        return cls(**{k: _coerce(v, types_[k], f"{source}: {name}.{k}") for k, v in values.items()})
    except ValueError as error:  # the model config's own checks
        raise SpadekitError(f"{source}: {name} section: {error}") from None


def validate(config: TrainConfig, source: str = "config") -> None:
    """Value checks that do not need the data or the model."""
    t, log = config.train, config.log

    def fail(key: str, message: str):
        raise SpadekitError(f"{source}: {key} {message}")

    if t.gan_mode not in GAN_MODES:
        fail("train.gan_mode", f"must be one of {', '.join(GAN_MODES)}, got {t.gan_mode!r}")
    if t.precision not in PRECISIONS:
        fail("train.precision", f"must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    if t.device not in ("auto", "cpu", "cuda"):
        fail("train.device", f"must be auto, cpu or cuda, got {t.device!r}")
    if t.perceptual_arch not in ("vgg16", "vgg19"):
        fail("train.perceptual_arch", f"must be vgg16 or vgg19, got {t.perceptual_arch!r}")
    if t.steps is None and t.epochs is None:
        fail("train.steps", "or train.epochs must be set (how long to train)")
    for key in ("steps", "epochs", "batch_size", "grad_accum", "d_steps_per_g", "perceptual_size", "num_threads", "ada_ramp_images"):
        value = getattr(t, key)
        if value is not None and value < 1:
            fail(f"train.{key}", f"must be a positive integer, got {value}")
    if t.skip_nonfinite < 0:
        fail("train.skip_nonfinite", f"is how many non-finite steps may be skipped (0 = stop at the first), got {t.skip_nonfinite}")
    if not 0.0 <= t.decay_start <= 1.0:
        fail("train.decay_start", f"is a fraction of training in [0, 1], got {t.decay_start}")
    if t.ema_decay is not None and not 0.0 <= t.ema_decay < 1.0:
        fail("train.ema_decay", f"must lie in [0, 1) (or null = no EMA), got {t.ema_decay}")
    if t.batch_size % t.grad_accum:
        fail("train.batch_size", f"({t.batch_size}) must be divisible by train.grad_accum ({t.grad_accum})")
    for key in ("lambda_feat", "lambda_vgg", "lambda_kld", "lambda_color", "lambda_color_global", "lambda_detail", "labelmix"):
        if getattr(t, key) < 0 or not math.isfinite(getattr(t, key)):
            fail(f"train.{key}", f"must be a finite number >= 0, got {getattr(t, key)}")
    for key in ("log_every", "sample_every", "num_samples", "keep_last"):
        if getattr(log, key) < 1:
            fail(f"log.{key}", f"must be a positive integer, got {getattr(log, key)}")
    if log.checkpoint_every is not None and log.checkpoint_every < 1:
        fail("log.checkpoint_every", f"must be a positive integer or null, got {log.checkpoint_every}")
    if log.checkpoint_seconds is not None and log.checkpoint_seconds <= 0:
        fail("log.checkpoint_seconds", f"must be positive or null, got {log.checkpoint_seconds}")
    from spadekit.augment import parse_policy
    from spadekit.models.registry import DISCRIMINATORS, GENERATORS

    try:
        parse_policy(t.diffaug)
    except SpadekitError as error:
        fail("train.diffaug", f"is not a policy: {error}")
    if not 0.0 <= t.diffaug_p <= 1.0:
        fail("train.diffaug_p", f"is a probability in [0, 1], got {t.diffaug_p}")
    if not 0.0 <= t.ada_target < 1.0:
        fail("train.ada_target", f"must lie in [0, 1) (0 = fixed probability; ADA uses 0.6), got {t.ada_target}")
    if t.ada_target > 0 and not parse_policy(t.diffaug):
        fail("train.ada_target", "adapts the augmentation probability, so it needs a train.diffaug policy (e.g. translation,cutout,color)")
    d_arch = config.model.d_arch
    if d_arch not in DISCRIMINATORS:
        fail("model.d_arch", f"must be one of {', '.join(sorted(DISCRIMINATORS))}, got {d_arch!r}")
    if t.labelmix > 0 and d_arch != "oasis":
        fail("train.labelmix", f"is OASIS's loss: it needs model.d_arch oasis (got {d_arch!r}); set it to 0")
    if d_arch == "oasis" and t.lambda_feat > 0:
        fail("train.lambda_feat", "must be 0 with model.d_arch oasis: the segmentation discriminator has no feature layers to match")
    if config.model.arch not in GENERATORS:
        fail("model.arch", f"must be one of {', '.join(sorted(GENERATORS))}, got {config.model.arch!r}")
    for key in ("activation_checkpointing", "fast_path"):
        if getattr(t, key) and config.model.arch not in ("spade", "clade"):
            fail(f"train.{key}", f"works with model.arch spade or clade only (got {config.model.arch!r}); turn it off")
    if config.model.use_vae and config.model.z_dim < 1:
        fail("model.z_dim", f"must be a positive integer, got {config.model.z_dim}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.batch_size=2' -> (['train', 'batch_size'], 2); the value is read as YAML (null, true, 1e-4, ...)."""
    if "=" not in text:
        raise SpadekitError(f"override {text!r} is not of the form section.key=value (e.g. train.batch_size=2)")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if len(path) != 2 or not all(path):
        raise SpadekitError(f"override {text!r}: the key must be section.key with a section of {', '.join(SECTIONS)}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return path, value


PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"


def preset_names() -> list[str]:
    """Names of the presets shipped with spadekit (`spadekit train --config NAME`)."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """The YAML file of a config: an existing file, or a preset by name ("landscapes" or "landscapes.yaml")."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = os.fspath(name_or_path)
    presets = ", ".join(preset_names())
    if os.sep in text or "/" in text:
        raise SpadekitError(f"config file {text} does not exist; give an existing YAML file or a preset name ({presets})")
    name = text[: -len(".yaml")] if text.endswith(".yaml") else text
    if not (PRESET_DIR / f"{name}.yaml").is_file():
        raise SpadekitError(f"config {text!r}: no such file and no preset of that name; presets: {presets}")
    return PRESET_DIR / f"{name}.yaml"


def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (a file or a preset name, see `resolve_config`; None = defaults) and apply
    `section.key=value` overrides."""
    data: dict = {}
    source = "config"
    if path is not None:
        path = resolve_config(path)
        source = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise SpadekitError(f"{path}: cannot read YAML: {error}") from None
        if not isinstance(data, dict):
            raise SpadekitError(f"{path}: a training config is a mapping with sections {', '.join(SECTIONS)}")
    for text in overrides:
        (section, key), value = parse_override(text)
        if section not in SECTIONS:
            raise SpadekitError(f"override {text!r}: unknown section {section!r}; known: {', '.join(SECTIONS)}")
        data.setdefault(section, {})
        if data[section] is None:
            data[section] = {}
        data[section][key] = value
    return TrainConfig.from_dict(data, source)


def save_config(config: TrainConfig, path: str | Path) -> None:
    from spadekit.fileio import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False), what="the run's config")
