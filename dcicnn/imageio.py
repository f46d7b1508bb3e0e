"""Safe image files: reading to RGB arrays and atomic writing (a failure never leaves a partial file)."""

from __future__ import annotations

import contextlib
import functools
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
    "WIDE_COLOUR",
    "ImageReadError",
    "atomic_path",
    "from_sixteen_bit",
    "is_wide_colour",
    "read_wide_colour",
    "readable_extensions",
    "write_wide_colour",
    "image_to_uint8",
    "levels",
    "open_image",
    "read_image",
    "save_image_atomic",
    "to_image",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


#: ``image.info`` key that ``open_image`` sets on files with 16 bits per colour channel (``is_wide_colour``).
WIDE_COLOUR = "dcicnn.wide_colour"


@functools.cache
def readable_extensions() -> frozenset[str]:
    """Every file extension Pillow can open here (gif, ppm, tga, jp2, ico, ... beside ``IMAGE_EXTENSIONS``)."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def is_wide_colour(image: Image.Image) -> bool:
    """Whether an opened (not yet loaded) file holds 16 bits per channel of colour: 48/64-bit PNG or TIFF, which
    Pillow can only decode to 8 bits (its modes have no 16-bit RGB)."""
    tiles = getattr(image, "tile", None) or []  # an ImageFile before load(): how its data is laid out
    return image.mode in ("RGB", "RGBA") and any(";16" in str(getattr(tile, "args", "")) for tile in tiles)


def read_wide_colour(path: str | Path, image: Image.Image) -> np.ndarray:
    """The uint16 ``(H, W, 3|4)`` RGB(A) pixels of a 48/64-bit file (OpenCV's decoder), EXIF orientation applied."""
    import cv2  # a dependency of albumentations; only wide-colour files need it

    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16 or pixels.ndim != 3:
        raise ImageReadError(f"{path}: cannot decode its 16-bit colour")
    pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(_orient(pixels, image.getexif().get(0x0112, 1)))


def write_wide_colour(pixels: np.ndarray, path: str | Path) -> Path:
    """Write uint16 RGB(A) pixels as a 48/64-bit PNG or TIFF, atomically (OpenCV's encoder)."""
    import cv2

    path = Path(path)
    if path.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise InvalidArgumentError(f"{path}: only PNG and TIFF hold 16 bits per channel; use --format png or tiff")
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        ok, encoded = cv2.imencode(path.suffix.lower(), bgr)
        if not ok:
            raise OSError(f"{path}: OpenCV could not encode the image")
        tmp.write_bytes(encoded.tobytes())
    return path


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``ImageOps.exif_transpose`` for an array: turn pixels stored with EXIF ``orientation`` upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, -1)[::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return ops[orientation](pixels) if orientation in ops else pixels


def image_to_uint8(image: Image.Image, channels: int = 3) -> np.ndarray:
    """uint8 ``(H, W, channels)`` array of a PIL image of any common mode, with EXIF orientation applied.

    Gray, palette, CMYK and other modes are converted to RGB (or to luma for ``channels=1``); alpha is dropped;
    16-bit and 32-bit integer images are scaled from 0..65535 to 0..255 (Pillow's own conversion would clip them).
    """
    if channels not in (1, 3):
        raise InvalidArgumentError(f"channels must be 1 or 3, got {channels}")
    image = ImageOps.exif_transpose(image) or image
    if image.mode.startswith("I"):
        image = Image.fromarray(from_sixteen_bit(np.asarray(image)))
    elif image.mode == "F":  # float images are on the 0..1 scale, as float arrays are everywhere in dcicnn
        image = Image.fromarray(levels(np.asarray(image)).astype(np.uint8))
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


def from_sixteen_bit(pixels: np.ndarray) -> np.ndarray:
    """uint8 levels of 16-bit pixels (0..65535 scaled to 0..255 and rounded): how every wide image becomes 8-bit here
    (Pillow's own conversion would clip instead)."""
    return np.clip(np.rint(np.asarray(pixels, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)


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
            # Pillow warns, and goes on with what it could read, when a file's structure (a TIFF's directory, say)
            # is cut short or corrupt: that is a damaged file, said in one line, not a warning and a guess
            warnings.simplefilter("error", UserWarning)
            image = Image.open(path)
            try:
                if is_wide_colour(image):  # decided before loading, while the file's raw mode is still known
                    image.info[WIDE_COLOUR] = True
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
    except (OSError, SyntaxError, ValueError, UserWarning) as err:
        detail = " ".join(str(err).split())
        if "truncated" in detail:
            raise ImageReadError(f"{path}: truncated image data ({detail})") from None
        raise ImageReadError(f"{path}: corrupt or unreadable image ({detail})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
