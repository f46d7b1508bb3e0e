"""Safe image files: reading to RGB arrays and atomic writing (a failure never leaves a partial file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["save_image_atomic", "to_array", "to_image"]


def to_array(image: Image.Image) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` array of a PIL image of any mode."""
    return np.array(image.convert("RGB"), dtype=np.uint8)


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
