"""Safe image files: reading to RGB arrays and atomic writing (a failure never leaves a partial file)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from dcicnn.errors import ImageReadError, InvalidArgumentError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "atomic_path",
    "image_to_uint8",
    "open_image",
    "read_image",
    "save_image_atomic",
    "to_image",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_to_uint8(image: Image.Image, channels: int = 3) -> np.ndarray:
    """uint8 ``(H, W, channels)`` array of a PIL image of any common mode, with EXIF orientation applied.

    Gray, palette, CMYK and other modes are converted to RGB (or to luma for ``channels=1``); alpha is dropped;
    16-bit and 32-bit integer images are scaled from 0..65535 to 0..255 (Pillow's own conversion would clip them).
    """
    if channels not in (1, 3):
        raise InvalidArgumentError(f"channels must be 1 or 3, got {channels}")
    image = ImageOps.exif_transpose(image) or image
    if image.mode.startswith("I"):
        wide = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        image = Image.fromarray(gray)
    elif image.mode == "F":
        raise InvalidArgumentError("floating-point images (mode F) are not supported")
    array = np.array(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Decode an image file to a uint8 ``(H, W, channels)`` array (see ``image_to_uint8``); an unreadable file
    raises ``ImageReadError`` (an ``OSError``) naming the path, as ``open_image`` does."""
    image = open_image(path)
    try:
        return image_to_uint8(image, channels)
    except ValueError as err:
        raise ImageReadError(f"{path}: {err}") from None
    finally:
        image.close()


def levels(image: np.ndarray) -> np.ndarray:
    """The 0..255 levels an 8-bit file would hold for a float image on the 0..1 scale: scaled, rounded, clipped
    (float64, so scores computed on it are exact)."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255)


def to_image(array: np.ndarray) -> Image.Image:
    """PIL image of an ``(H, W, C)`` or ``(H, W)`` array on the 0..1 float or 0..255 uint8 scale."""
    if array.dtype != np.uint8:
        array = levels(array).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def save_image_atomic(image: Image.Image, path: str | Path, **save_kwargs: object) -> Path:
    """Save ``image`` to ``path`` through a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InvalidArgumentError(f"{path}: unknown image format {path.suffix!r}")
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **save_kwargs)
    return path


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write; moved onto ``path`` atomically, with the permissions
    a new file normally gets (``tempfile.mkstemp`` makes it readable by its owner only), only if the block succeeds,
    and removed otherwise: a failure never leaves a partial file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file, with one clear ``ImageReadError`` for every way that can fail.

    Pillow's decompression-bomb guard stays on: images above ``max_pixels`` (default: Pillow's
    ``Image.MAX_IMAGE_PIXELS``, about 89 megapixels) are refused before they are decoded.
    """
    path = Path(path)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            try:
                image.load()
            except BaseException:
                image.close()
                raise
            return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(
            f"{path}: the image claims more pixels than the limit of {limit:,} (Pillow's decompression-bomb "
            "guard); raise it with --max-pixels if you trust the file"
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image format Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        detail = " ".join(str(err).split())
        if "truncated" in detail:
            raise ImageReadError(f"{path}: truncated image data ({detail})") from None
        raise ImageReadError(f"{path}: corrupt or unreadable image ({detail})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
