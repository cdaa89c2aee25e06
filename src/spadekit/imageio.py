"""Images in and out: the one image opener (with the one pixel limit), tensor <-> picture conversion,
label-map colouring and atomic image saving.

    image = open_image("photo.jpg", "style image")      # a loaded PIL image, or a SpadekitError
    pictures = to_pil(generator_output)                  # [B,3,H,W] in [-1,1] -> list of RGB images
    colorize(ids, labels).save("map.png")                # raw-id label map in the label set's colours
    save_image("out/sample.png", pictures[0])            # never a half-written file
"""
from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from spadekit import SpadekitError
from spadekit.fileio import atomic_write

# The one pixel limit for every image we decode (photos, label maps, style images, uploads' ceiling).
# It sits below PIL's own warning level (~89 M pixels), so PIL's decompression-bomb guard never has the
# last word, and above any camera photo (a 48 MP phone photo has 48 M pixels).
MAX_PIXELS = 50_000_000


class ImageTooLarge(SpadekitError):
    """The image has more pixels than the limit (or PIL refused it as a decompression bomb)."""


def open_image(
    source: str | os.PathLike | bytes,
    what: str | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    formats: Sequence[str] | None = None,
) -> Image.Image:
    """Open and fully decode an image file (a path) or the bytes of one (an upload).

    what: how messages name the image ("style image"); with a path the message names both.
    max_pixels: images with more pixels are refused from their header, before decoding.
    formats: PIL format names accepted (default: any PIL reads).
    Returns the loaded PIL image. Raises ImageTooLarge for too many pixels (or a decompression bomb)
    and SpadekitError for a missing, unreadable, empty, damaged or truncated file, naming the file.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if is_bytes:
        name = what or "image"
    else:
        name = f"{what} {Path(source)}" if what else str(Path(source))
    if is_bytes and not source:
        raise SpadekitError(f"{name}: the data is empty; send an image file")
    try:
        with warnings.catch_warnings():
            # PIL warns above Image.MAX_IMAGE_PIXELS: a refusal, unless our limit was raised past it
            # (PIL still refuses twice its own limit with DecompressionBombError).
            over_pil = max_pixels > (Image.MAX_IMAGE_PIXELS or 0)
            warnings.simplefilter("ignore" if over_pil else "error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if is_bytes else Path(source),
                               formats=list(formats) if formats else None)
            width, height = image.size
            if width * height > max_pixels:
                # at the ceiling, so big a header is more likely a decompression bomb than a photo
                bomb = " (a possible decompression bomb)" if max_pixels >= MAX_PIXELS else ""
                raise ImageTooLarge(
                    f"{name}: {width}x{height} = {width * height} pixels is over the limit of {max_pixels}{bomb}; "
                    "shrink the image"
                )
            if width * height == 0:
                raise SpadekitError(f"{name}: the image has no pixels ({width}x{height})")
            image.load()
    except SpadekitError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(f"{name}: refused as a possible decompression bomb ({error}); shrink the image") from None
    except UnidentifiedImageError:
        accepted = f"; accepted: {', '.join(formats)}" if formats else ""
        raise SpadekitError(f"{name}: not an image file that can be read (unknown or damaged format{accepted})") from None
    except FileNotFoundError:
        raise SpadekitError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise SpadekitError(f"{name}: is a folder, not an image file") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        raise SpadekitError(f"{name}: cannot decode the image, the file is damaged or truncated ({str(error)[:120]})") from None
    return image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output [B,3,H,W] in [-1,1] -> uint8 [B,H,W,3] (clamped, rounded to nearest)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Generator output [B,3,H,W] in [-1,1] -> one RGB PIL image per sample."""
    return [Image.fromarray(array) for array in to_uint8(images)]


def from_uint8(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1], the inverse of `to_uint8`."""
    tensor = torch.as_tensor(np.asarray(pixels) if not isinstance(pixels, torch.Tensor) else pixels)
    return tensor.movedim(-1, -3).float() / 127.5 - 1


def colorize(ids: np.ndarray, labels) -> Image.Image:
    """Raw-id label map [H,W] -> RGB image in the colours of `labels` (a LabelSet; unknown ids black)."""
    return Image.fromarray(labels.colorize(ids))


def png_bytes(image: Image.Image, compress_level: int = 6) -> bytes:
    """The image encoded as PNG, in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def save_image(path: str | os.PathLike, image: Image.Image | np.ndarray, format: str | None = None, **params) -> Path:
    """Save atomically (temporary file + rename); the format follows the suffix unless `format` is given.

    `params` go to PIL's save (e.g. quality=95 for JPEG). Returns the path.
    """
    path = Path(path)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if format is None:
        format = Image.registered_extensions().get(path.suffix.lower())
        if format is None:
            raise SpadekitError(f"{path}: cannot tell the image format from the suffix {path.suffix!r}; use .png or .jpg")
    atomic_write(path, lambda tmp: image.save(tmp, format=format, **params))
    return path
