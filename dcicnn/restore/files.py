"""Restore one image file into another: what ``dcicnn restore`` does per file and ``dcicnn serve`` per upload.

The input is decoded as ``open_image`` does (Pillow's decompression-bomb guard on, one clear error for every way a
file can be unreadable); a JPEG keeps its quantisation tables, so the model is told the file's own quality; 48/64-bit
colour is read and written with 16 bits per channel; the output carries the input's colour profile, resolution and
EXIF, and is written atomically (a failure never leaves a partial file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from dcicnn.errors import InvalidArgumentError
from dcicnn.imageio import (
    WIDE_COLOUR,
    from_sixteen_bit,
    open_image,
    read_wide_colour,
    save_image_atomic,
    write_wide_colour,
)
from dcicnn.restore.options import RestoreOptions

if TYPE_CHECKING:
    from dcicnn.restore.runner import Restorer

__all__ = ["FLOAT_SUFFIXES", "output_path", "restore_file", "save_options"]

#: The output formats that hold floating-point pixels (Pillow mode ``F``).
FLOAT_SUFFIXES = (".tif", ".tiff")


def output_path(mode: str, target: Path) -> Path:
    """Where an image of Pillow ``mode`` asked for at ``target`` is written: ``target``, except that a floating-point
    image goes to a TIFF of the same name when ``target``'s format cannot hold it (as the web page does)."""
    if mode == "F" and target.suffix.lower() not in FLOAT_SUFFIXES:
        return target.with_suffix(".tif")
    return target


def save_options(image: Image.Image, target: Path, quality: int) -> dict[str, Any]:
    """Pillow ``save`` keywords for writing ``image`` to ``target``: its metadata where the format holds it, and
    ``quality`` (1..100) for JPEG and WebP. A mode the format cannot store is an ``InvalidArgumentError``."""
    options: dict[str, Any] = {}
    suffix = target.suffix.lower()
    # the input's colour profile, resolution and EXIF (orientation already applied and reset) go with the output
    if "icc_profile" in image.info:
        options["icc_profile"] = image.info["icc_profile"]
    if "dpi" in image.info and suffix in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
        options["dpi"] = image.info["dpi"]
    if "exif" in image.info and suffix in (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"):
        options["exif"] = image.info["exif"]
    if image.mode == "F" and suffix not in (".tif", ".tiff"):
        raise InvalidArgumentError(f"{target}: a floating-point image can only be saved as TIFF; use --format tiff")
    if suffix in (".jpg", ".jpeg"):
        if image.mode not in ("RGB", "L"):
            raise InvalidArgumentError(f"JPEG cannot store a {image.mode} image; use --format png")
        options.update(quality=quality, subsampling=0)  # 4:4:4: no new colour bleeding
    elif suffix == ".webp":
        options.update(quality=quality)
    return options


def restore_file(
    model: Restorer,
    source: str | Path,
    target: str | Path,
    options: RestoreOptions | None = None,
    *,
    max_pixels: int | None = None,
    quality: int = 95,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Restore the image file ``source`` into ``target`` (its format from the suffix) and return ``target``.

    ``note`` receives what the user should know that is not an error: only the first frame of a multi-frame file is
    restored; a 16-bit image saved to a format of 8 bits per channel; a JPEG whose pixels show heavier damage than
    its tables (saved more than once), and the quality it was restored as. ``max_pixels``: see ``open_image``.
    """
    from dcicnn.restore.inference import restore
    from dcicnn.restore.policy import recorded_readings

    source, target = Path(source), Path(target)
    options = options or RestoreOptions()
    say = note or (lambda message: None)
    with open_image(source, max_pixels) as image:  # multi-frame formats keep their file open
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            say(f"{source}: restoring the first of its {frames} frames")
        if image.info.get(WIDE_COLOUR):  # 48/64-bit colour: Pillow would decode 8 bits, so read and write 16
            pixels = restore(model, read_wide_colour(source, image), options)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.suffix.lower() in (".png", ".tif", ".tiff"):
                return write_wide_colour(pixels, target)
            say(f"{target}: 8 bits per channel ({target.suffix} holds no more)")
            restored = Image.fromarray(from_sixteen_bit(pixels))
        else:
            with recorded_readings() as readings:
                restored = restore(model, image, options)
            resaved = [r for r in readings if r.resaved]
            if resaved and options.jpeg_quality == "auto":
                say(f"{source}: {resaved[0].describe()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        return save_image_atomic(restored, target, **save_options(restored, target, quality))
