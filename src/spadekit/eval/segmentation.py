"""Semantic-consistency metrics: a segmentation network reads the generated images, and its label
map is compared to the input label map (mIoU, pixel accuracy), as in the SPADE paper.

Conventions
- Confusion matrix `conf[t, p]`: pixels of ground-truth class t predicted as p.
- IoU of class c = TP / (TP + FP + FN). mIoU averages over the classes that occur in the ground
  truth *or* the prediction of the whole evaluated set (a class absent from both has 0/0 and is
  left out; a class only predicted counts with IoU 0). Pixels whose ground truth is the ignore
  index (the dontcare channel) count nowhere.
- Pixel accuracy = correctly labelled pixels / all counted pixels.

Segmenters (anything with `predict(images) -> labels`): images float [B,3,H,W] RGB in [-1, 1],
labels long [B,H,W] holding channel indices of the model's label set. Loadable by path
(`load_segmenter`): our own folder (`config.json` + `model.safetensors`, from
`spadekit train-segmenter`), a TorchScript file (.pt / .ts / .torchscript), or an ONNX file.
TorchScript and ONNX networks take the same input and return either logits [B,C,h,w]
(bilinearly resized to HxW, then argmax) or an integer label map [B,H,W].
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spadekit import SpadekitError
from spadekit.models.folder import load_network_folder, save_network_folder

# ---- metrics -----------------------------------------------------------------------------------


def confusion_matrix(target, prediction, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """int64 [C,C] counts, rows = ground truth, columns = prediction. Ground-truth pixels equal to
    `ignore_index` are skipped; any other value outside 0..C-1 is an error."""
    target = np.asarray(target.cpu() if torch.is_tensor(target) else target).reshape(-1).astype(np.int64)
    prediction = np.asarray(prediction.cpu() if torch.is_tensor(prediction) else prediction).reshape(-1).astype(np.int64)
    if target.shape != prediction.shape:
        raise SpadekitError(f"label maps differ in size: {target.size} ground-truth pixels vs {prediction.size} predicted")
    if ignore_index is not None:
        keep = target != ignore_index
        target, prediction = target[keep], prediction[keep]
    for name, values in (("ground truth", target), ("prediction", prediction)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = int(values.max() if values.max() >= num_classes else values.min())
            raise SpadekitError(f"{name} holds class {bad}, outside 0..{num_classes - 1}")
    return np.bincount(target * num_classes + prediction, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN for classes absent from both ground truth and prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean IoU over classes present in ground truth or prediction (module docstring)."""
    ious = iou_per_class(conf)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def pixel_accuracy(conf: np.ndarray) -> float:
    conf = np.asarray(conf)
    total = conf.sum()
    return float(np.trace(conf) / total) if total else float("nan")


def segmentation_scores(conf: np.ndarray, class_names: list[str] | None = None) -> dict:
    """{"miou", "pixel_accuracy", "iou_per_class": {name: iou}} (classes absent from both left out)."""
    ious = iou_per_class(conf)
    names = class_names or [str(i) for i in range(len(ious))]
    return {
        "miou": mean_iou(conf),
        "pixel_accuracy": pixel_accuracy(conf),
        "iou_per_class": {names[i]: float(v) for i, v in enumerate(ious) if np.isfinite(v)},
    }


# ---- our segmentation network -------------------------------------------------------------------


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    groups = 8 if out_channels % 8 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(inplace=True),
    )


@dataclass
class SegmenterConfig:
    """num_classes / width / depth: the U-Net; input_size: the image width it was trained at (predict
    resizes to it and back; None = run at whatever size it is given). backbone: None for the U-Net
    trained from scratch, "vgg16" for a head on frozen ImageNet VGG16 features (width = its channels;
    depth unused)."""

    num_classes: int
    width: int = 32
    depth: int = 3
    class_names: list[str] | None = None
    input_size: int | None = None
    backbone: str | None = None


class TrainedSegmenter(nn.Module):
    """What our segmenters share: `config`, predict() at the training width, save/load as a folder.

    forward(images [B,3,H,W] in [-1,1]) -> logits [B,num_classes,H,W]; any H, W.
    """

    config: SegmenterConfig
    frozen_prefix: str | None = None  # state-dict keys under it are not saved (loaded from elsewhere)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,3,H,W] in [-1,1] -> labels [B,H,W]; at the training width (config.input_size) when set."""
        was_training = self.training
        self.eval()
        images = images.to(next(self.parameters()).device)
        size = tuple(images.shape[-2:])
        width = self.config.input_size
        if width is not None and width != size[1]:
            scaled = (max(1, round(size[0] * width / size[1])), width)
            logits = self(F.interpolate(images, size=scaled, mode="bilinear", align_corners=False, antialias=True))
            labels = F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)
        else:
            labels = self(images).argmax(1)
        self.train(was_training)
        return labels

    def _saved_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not (self.frozen_prefix and k.startswith(self.frozen_prefix))}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        return save_network_folder(directory, self._saved_state(), asdict(self.config))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> TrainedSegmenter:
        """The segmenter saved in `directory` (the class its config names: U-Net or VGG16 head)."""
        model, state = load_network_folder(directory, "a segmenter", "train one with `spadekit train-segmenter`",
                                           lambda fields: build_segmenter(SegmenterConfig(**fields)),
                                           lambda net: net._saved_state())
        model.load_state_dict(state, strict=model.frozen_prefix is None)
        return model.to(map_location).eval()


class SegmenterNet(TrainedSegmenter):
    """A compact U-Net: `depth` downsamplings, widths width * 2**level, GroupNorm, skip connections."""

    def __init__(self, num_classes: int, width: int = 32, depth: int = 3, class_names: list[str] | None = None,
                 input_size: int | None = None):
        super().__init__()
        if num_classes < 1 or width < 1 or depth < 1:
            raise SpadekitError(f"segmenter needs num_classes, width, depth >= 1 (got {num_classes}, {width}, {depth})")
        if input_size is not None and input_size < 8:
            raise SpadekitError(f"segmenter input_size must be at least 8 pixels, got {input_size}")
        self.config = SegmenterConfig(num_classes, width, depth, class_names, input_size)
        widths = [width * 2**level for level in range(depth + 1)]
        self.stem = _conv_block(3, widths[0])
        self.down = nn.ModuleList(_conv_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(_conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        skips = [x]
        for block in self.down:
            x = block(F.max_pool2d(x, 2, ceil_mode=True))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


class FeatureSegmenter(TrainedSegmenter):
    """A small head on frozen ImageNet VGG16 features (relu2_2, relu3_3, relu4_3, relu5_3): each map
    projected to `width` channels (1x1), resized to relu2_2's grid (half the input), concatenated,
    a 3x3 conv block and a 1x1 classifier, logits resized to the input. Only the head is trained
    and saved; the VGG16 weights come from `spadekit.weights` (the LPIPS network's). Few labelled
    photos suffice, where a network trained from scratch learns their colours rather than their content.
    """

    frozen_prefix = "backbone."
    feature_channels = (128, 256, 512, 512)

    def __init__(self, num_classes: int, width: int = 48, class_names: list[str] | None = None,
                 input_size: int | None = None, backbone: str = "vgg16", vgg_weights: str | Path | None = None,
                 random_backbone: bool = False):
        super().__init__()
        from spadekit.models.vgg import VGGFeatures

        if backbone != "vgg16":
            raise SpadekitError(f"unknown segmenter backbone {backbone!r}; the one available is vgg16")
        if num_classes < 1 or width < 1:
            raise SpadekitError(f"segmenter needs num_classes, width >= 1 (got {num_classes}, {width})")
        if input_size is not None and input_size < 16:
            raise SpadekitError(f"segmenter input_size must be at least 16 pixels, got {input_size}")
        self.config = SegmenterConfig(num_classes, width, 0, class_names, input_size, backbone)
        self.backbone = VGGFeatures("vgg16", weights=vgg_weights, random_init=random_backbone)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.feature_channels)
        self.fuse = _conv_block(width * len(self.feature_channels), width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.backbone(images)[1:]
        grid = features[0].shape[-2:]
        maps = [F.interpolate(lateral(f), size=grid, mode="bilinear", align_corners=False) if f.shape[-2:] != grid else lateral(f)
                for lateral, f in zip(self.lateral, features)]
        logits = self.head(self.fuse(torch.cat(maps, dim=1)))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def build_segmenter(config: SegmenterConfig) -> TrainedSegmenter:
    """The segmenter a config describes, untrained (a VGG16 head gets the ImageNet backbone)."""
    if config.backbone is None:
        return SegmenterNet(config.num_classes, config.width, config.depth, config.class_names, config.input_size)
    return FeatureSegmenter(config.num_classes, config.width, config.class_names, config.input_size, config.backbone)


# ---- training ----------------------------------------------------------------------------------


def _image_and_label(item) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset item -> (image [3,H,W] in [-1,1], label [H,W] long channel indices)."""
    if isinstance(item, dict):
        image, label = item["image"], item["label"]
    else:
        image, label = item[0], item[1]
    image, label = torch.as_tensor(image).float(), torch.as_tensor(label).long()
    if label.dim() == 3:
        label = label[0]
    return image, label


def photometric_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Random exposure, gamma and colour balance per image ([B,3,H,W] in [-1,1] -> same), so the
    segmenter reads a dark or a tinted photo by its content. strength s: brightness gain
    exp(U(-s, s)), gamma exp(U(-s/2, s/2)), per-channel gain exp(U(-s/4, s/4)); 0 leaves images as they are."""
    if strength <= 0:
        return images
    count = images.shape[0]

    def uniform(*shape, half):
        return (torch.rand(*shape, generator=generator) * 2 - 1) * half

    brightness = torch.exp(uniform(count, 1, 1, 1, half=strength))
    gamma = torch.exp(uniform(count, 1, 1, 1, half=strength / 2))
    balance = torch.exp(uniform(count, 3, 1, 1, half=strength / 4))
    unit = ((images + 1) / 2).clamp(0, 1)
    out = unit.pow(gamma.to(images.device)) * (brightness * balance).to(images.device)
    return out.clamp(0, 1) * 2 - 1


def train_segmenter(
    dataset,
    num_classes: int,
    steps: int = 2000,
    batch_size: int = 8,
    lr: float = 1e-3,
    width: int = 32,
    depth: int = 3,
    ignore_index: int | None = None,
    class_names: list[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    input_size: int | None = None,
    color_jitter: float = 0.0,
    backbone: str | None = None,
) -> TrainedSegmenter:
    """Train a SegmenterNet on real (image, label map) pairs with cross-entropy and Adam.

    dataset: indexable; item = {"image": [3,H,W] in [-1,1], "label": [H,W] or [1,H,W] channel
        indices} (or a tuple (image, label, ...)). ignore_index: label value left out of the loss
        (the dontcare channel). Random horizontal flips augment, and `photometric_jitter` with
        strength color_jitter when > 0. input_size: recorded in the config (the training width, so
        predict() resizes other images to it). backbone: None trains a SegmenterNet (U-Net) from
        scratch; "vgg16" trains a FeatureSegmenter's head (width = its channels, depth unused).
        Returns the model in eval mode.
    """
    from tqdm import tqdm

    if len(dataset) == 0:
        raise SpadekitError("the segmenter training set is empty")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_segmenter(SegmenterConfig(num_classes, width, depth, class_names, input_size, backbone)).to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index)
    bar = tqdm(range(steps), desc="train segmenter", unit="step", disable=not progress)
    for _ in bar:
        # Initialize the batch: random items, random flips.
        indices = torch.randint(len(dataset), (min(batch_size, len(dataset)),), generator=generator).tolist()
        pairs = [_image_and_label(dataset[i]) for i in indices]
        images = torch.stack([p[0] for p in pairs]).to(device)
        labels = torch.stack([p[1] for p in pairs]).to(device)
        flip = torch.rand(len(indices), generator=generator) < 0.5
        images[flip], labels[flip] = images[flip].flip(-1), labels[flip].flip(-1)
        images = photometric_jitter(images, color_jitter, generator)
        valid = labels if ignore_index is None else labels[labels != ignore_index]
        if valid.numel() and (valid.min() < 0 or valid.max() >= num_classes):
            raise SpadekitError(f"a label map holds class {int(valid.max())} but the segmenter has {num_classes} classes (0..{num_classes - 1})")
        # Train.
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


# ---- loading segmenters by path ------------------------------------------------------------------


class Segmenter(Protocol):
    def predict(self, images: torch.Tensor) -> torch.Tensor: ...


def _labels_from_output(output, size: tuple[int, int], source: str) -> torch.Tensor:
    if isinstance(output, (list, tuple)):
        output = output[0]
    output = torch.as_tensor(output)
    if output.dim() == 4:
        if output.shape[-2:] != size:
            output = F.interpolate(output.float(), size=size, mode="bilinear", align_corners=False)
        return output.argmax(1)
    if output.dim() == 3 and not output.is_floating_point():
        if tuple(output.shape[-2:]) != size:
            output = F.interpolate(output[:, None].float(), size=size, mode="nearest")[:, 0]
        return output.long()
    raise SpadekitError(f"segmenter {source} returned shape {tuple(output.shape)}; expected logits [B,C,h,w] or an integer label map [B,H,W]")


class TorchScriptSegmenter:
    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        from spadekit.eval.fid import load_torchscript

        try:
            self.module = load_torchscript(path, device).eval()
        except Exception as error:
            raise SpadekitError(f"cannot load the TorchScript segmenter {path}: {error}") from error
        self.path, self.device = str(path), torch.device(device)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return _labels_from_output(self.module(images.to(self.device)), tuple(images.shape[-2:]), self.path)


class OnnxSegmenter:
    def __init__(self, path: str | Path):
        try:
            import onnxruntime
        except ImportError:
            raise SpadekitError("ONNX segmenters need onnxruntime: pip install 'spadekit[onnx]'") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:
            raise SpadekitError(f"cannot load the ONNX segmenter {path}: {error}") from error
        self.input_name = self.session.get_inputs()[0].name
        self.path = str(path)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        output = self.session.run(None, {self.input_name: images.detach().cpu().float().numpy()})[0]
        return _labels_from_output(torch.from_numpy(output), tuple(images.shape[-2:]), self.path)


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> Segmenter:
    """A segmenter from a spadekit folder, a TorchScript file (.pt/.ts/.torchscript) or an .onnx file."""
    path = Path(path)
    if path.is_dir():
        return TrainedSegmenter.from_pretrained(path, map_location=device)
    if not path.is_file():
        raise SpadekitError(f"segmenter {path} does not exist; give a folder from `spadekit train-segmenter`, a TorchScript .pt or an .onnx file")
    if path.suffix == ".onnx":
        return OnnxSegmenter(path)
    if path.suffix in (".pt", ".ts", ".torchscript", ".jit"):
        return TorchScriptSegmenter(path, device)
    raise SpadekitError(f"segmenter {path}: unknown file type {path.suffix!r}; use a TorchScript .pt, an .onnx file or a spadekit segmenter folder")


@torch.no_grad()
def segmentation_confusion(
    segmenter: Segmenter, images: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Confusion matrix of the segmenter's labels of `images` ([B,3,H,W], [-1,1]) against `labels` ([B,H,W])."""
    if labels.dim() == 4:
        labels = labels[:, 0]
    prediction = segmenter.predict(images)
    if prediction.shape != labels.shape:
        prediction = F.interpolate(prediction[:, None].float(), size=labels.shape[-2:], mode="nearest")[:, 0].long()
    if prediction.numel() and (prediction.min() < 0 or prediction.max() >= num_classes):
        raise SpadekitError(
            f"the segmenter predicts class {int(prediction.max())}, but the model's label set has {num_classes} classes; "
            "a segmenter must output the channel indices of the model's label set"
        )
    return confusion_matrix(labels, prediction, num_classes, ignore_index)
