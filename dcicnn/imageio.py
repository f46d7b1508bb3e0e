"""Safe image files: reading to RGB arrays and atomic writing (a failure never leaves a partial file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IMAGE_EXTENSIONS", "image_to_uint8", "read_image", "save_image_atomic", "to_image"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_to_uint8(image: Image.Image, channels: int = 3) -> np.ndarray:
    """uint8 ``(H, W, channels)`` array of a PIL image of any common mode, with EXIF orientation applied.

    Gray, palette, CMYK and other modes are converted to RGB (or to luma for ``channels=1``); alpha is dropped;
    16-bit and 32-bit integer images are scaled from 0..65535 to 0..255 (Pillow's own conversion would clip them).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    image = ImageOps.exif_transpose(image) or image
    if image.mode.startswith("I"):
        wide = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        image = Image.fromarray(gray)
    elif image.mode == "F":
        raise ValueError("floating-point images (mode F) are not supported")
    array = np.array(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Decode an image file to a uint8 ``(H, W, channels)`` array (see ``image_to_uint8``). Raises ``OSError``
    (or ``ValueError``) with the path in the message for an unreadable file."""
    try:
        with Image.open(path) as image:
            image.load()
            return image_to_uint8(image, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise OSError(f"{path}: cannot read image ({err})") from None


def to_image(array: np.ndarray) -> Image.Image:
    """PIL image of an ``(H, W, C)`` or ``(H, W)`` array on the 0..1 float or 0..255 uint8 scale."""
    if array.dtype != np.uint8:
        array = np.clip(np.rint(np.asarray(array, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def save_image_atomic(image: Image.Image, path: str | Path, **save_kwargs: object) -> Path:
    """Save ``image`` to ``path`` through a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image format {path.suffix!r}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt, **save_kwargs)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
