"""Restore images of any size and kind: ``restore_tensor`` (one ``(C, H, W)`` image, tile by tile, with what
``dcicnn.restore.policy`` decides for it) and the adapters around it (PIL, numpy, torch; gray, alpha, 16-bit, float).

Tiles overlap by at least the model's receptive radius and only their cores are kept (``dcicnn.restore.tiling``), so
the result equals a whole-image pass (up to float rounding) while memory stays bounded by the tile size; the network
runs prepared once per model, device and dtype (``dcicnn.restore.runner``).
"""

from __future__ import annotations

import struct
import warnings
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.nn import functional as F

from dcicnn.damage import conditions as cond
from dcicnn.damage.consistency import JpegGrid, project
from dcicnn.errors import InvalidArgumentError
from dcicnn.restore.options import RestoreOptions
from dcicnn.restore.policy import (
    FileJpeg,
    consistency_share,
    measure,
    record_reading,
    taper,
    taper_span,
    undamaged,
)
from dcicnn.restore.runner import Restorer, prepared_runner, resolve_device_dtype
from dcicnn.restore.tiling import batched, dihedral_mean, plan_tiles

__all__ = ["ImageLike", "file_jpeg_quality", "restore", "restore_tensor"]

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)


@torch.inference_mode()
def restore_tensor(
    model: Restorer,
    source: torch.Tensor,
    options: RestoreOptions,
    out: torch.Tensor | None = None,
    *,
    scale: float = 1.0,
    file_jpeg: FileJpeg | None = None,
) -> torch.Tensor:
    """Restore one ``(C, H, W)`` image tile by tile into ``out`` (allocated if ``None``).

    ``source`` may be uint8, uint16 or float, on any device, and a strided view (e.g. of a numpy HWC array): each
    tile is converted on its own, divided by ``scale`` to the 0..1 range. ``out`` receives ``result * scale``,
    rounded and clamped to ``[0, scale]`` for an integer dtype, unclipped for a float one. Peak memory beyond
    ``source`` and ``out`` is that of ``batch_size`` tiles. ``ensemble``: the mean over the 8 flips and rotations
    (``dihedral_mean``), 8 times the work. A conditioned model is told the damage found on the whole image
    (``image_damage``; ``file_jpeg``: what the file it came from says), once, before tiling. When the image is
    known to be a JPEG (from its file or its pixels) and ``options.jpeg_consistency`` holds, the result's luma is
    projected onto the file's quantisation bins (``dcicnn.damage.consistency.project``) before it is rounded; a JPEG of
    high quality with no other measurable damage gets less of the correction (``taper``).
    """
    spec = model.spec
    if source.ndim != 3 or source.shape[0] != spec.in_channels:
        raise InvalidArgumentError(f"expected a ({spec.in_channels}, H, W) image, got shape {tuple(source.shape)}")
    if source.shape[1] < 1 or source.shape[2] < 1:
        raise InvalidArgumentError(f"the image is empty ({source.shape[1]}x{source.shape[2]} pixels)")
    overlap = spec.receptive_radius if options.overlap is None else options.overlap
    if overlap < spec.receptive_radius:
        raise InvalidArgumentError(
            f"overlap {overlap} is below the model's receptive radius {spec.receptive_radius}: tiles would show seams"
        )
    device_dtype = resolve_device_dtype(model, options)
    _, height, width = source.shape
    if out is None:
        out = torch.empty(source.shape, dtype=torch.float32)
    integer = not out.dtype.is_floating_point
    if options.strength == 0.0:  # nothing to apply: the input, exactly
        out.copy_(source.to(out.device))
        return out
    run = prepared_runner(model, *device_dtype, options.compile)
    strength = options.strength
    condition, grid = None, None
    if spec.conditions or options.jpeg_consistency or options.high_quality_taper:
        damage, grid, reading = measure(source, options.jpeg_quality, file_jpeg=file_jpeg, scale=scale)
        record_reading(reading)
        if options.skip_undamaged and undamaged(spec.conditions, damage, spec.tuning):
            strength = 0.0
        strength *= taper(damage, taper_span(options, spec.tuning), spec.tuning)
        if strength == 0.0:  # nothing to remove, or a JPEG of a quality the model has nothing to give: the input
            out.copy_(source.to(out.device))
            return out
        if spec.conditions:
            condition = damage.condition(spec.conditions)[None]
        if not options.jpeg_consistency:
            grid = None
    original = source
    target = out if grid is None else torch.empty(source.shape, dtype=torch.float32, device=out.device)

    def network(x: torch.Tensor) -> torch.Tensor:
        return run(x, condition)

    align = spec.alignment
    if align > 1 and (height % align or width % align):  # pad as the network itself would, so tiles can align
        padded = (-height) % align, (-width) % align
        source = F.pad(source.float()[None], (0, padded[1], 0, padded[0]), mode="replicate")[0]
    side = spec.tuning.tile if options.tile == "auto" else int(options.tile)
    tile = max(side, (2 * -(-overlap // align) + 2) * align)
    tiles = plan_tiles(source.shape[1], source.shape[2], tile, overlap, align)
    for group in batched(tiles, options.batch_size):
        windows = torch.stack([source[:, t.y0 : t.y1, t.x0 : t.x1] for t in group]).float().div_(scale)
        restored = dihedral_mean(network, windows) if options.ensemble else network(windows)
        if strength != 1.0:
            restored = windows.to(restored.device).add_(restored.sub_(windows.to(restored.device)), alpha=strength)
        if grid is None:
            restored = restored.mul_(scale)
            if integer:
                restored = restored.round_().clamp_(0, scale)
        restored = restored.to(target.device)
        for t, result in zip(group, restored, strict=True):
            cy1, cx1 = min(t.cy1, height), min(t.cx1, width)  # the padding, if any, is cropped away
            if cy1 > t.cy0 and cx1 > t.cx0:
                target[:, t.cy0 : cy1, t.cx0 : cx1] = result[:, t.cy0 - t.y0 : cy1 - t.y0, t.cx0 - t.x0 : cx1 - t.x0]
    if grid is not None:  # whole blocks, after every tile: the projection sees the whole image, as without tiles
        degraded = original.to(target.device).float().div(scale)
        projected = project(target, degraded, grid)
        share = consistency_share(target, projected, degraded, spec.tuning.consistency_gate)
        if share < 1.0:
            projected = target.add_(projected.sub_(target), alpha=share)
        out.copy_(_cast(projected.mul_(scale), out.dtype, scale))
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Images of every kind in, the same kind out.
def restore(
    model: Restorer, image: ImageLike, options: RestoreOptions | None = None, *, file_jpeg: FileJpeg | None = None
) -> ImageLike:
    """Restore a PIL image, numpy array or tensor of any size; see ``DCICNN.restore`` for the rules. ``file_jpeg``:
    what the JPEG file an array or tensor was decoded from says (a PIL image opened from a file carries its own)."""
    options = options or RestoreOptions()
    if isinstance(image, Image.Image):
        return _restore_pil(model, image, options)
    if isinstance(image, np.ndarray):
        return _restore_numpy(model, image, options, file_jpeg)
    if isinstance(image, torch.Tensor):
        return _restore_torch(model, image, options, file_jpeg)
    raise TypeError(f"expected a PIL image, numpy array or torch tensor, got {type(image).__name__}")


def _restore_torch(
    model: Restorer, image: torch.Tensor, options: RestoreOptions, file_jpeg: FileJpeg | None = None
) -> torch.Tensor:
    if image.ndim == 3:
        return _restore_torch(model, image[None], options, file_jpeg)[0]
    if image.ndim != 4 or not image.dtype.is_floating_point:
        raise InvalidArgumentError(
            f"expected a float (C, H, W) or (N, C, H, W) tensor on the 0..1 scale, got {image.dtype} "
            f"{tuple(image.shape)}"
        )
    out = torch.empty_like(image)
    for i in range(image.shape[0]):
        _restore_channels(model, image[i], options, out[i], file_jpeg=file_jpeg)
    return out


def _restore_numpy(
    model: Restorer, image: np.ndarray, options: RestoreOptions, file_jpeg: FileJpeg | None = None
) -> np.ndarray:
    """HW, HW1, HW3 or HW4 arrays; uint8 (0..255), uint16 (0..65535) or float (0..1). Alpha passes through."""
    if image.ndim == 2:
        return _restore_numpy(model, image[:, :, None], options, file_jpeg)[:, :, 0]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise InvalidArgumentError(f"expected an (H, W) or (H, W, C) image with C in 1..4, got shape {image.shape}")
    if image.dtype == np.uint8:
        scale = 255.0
    elif image.dtype == np.uint16:
        scale = 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        scale = 1.0
    else:
        raise InvalidArgumentError(f"unsupported image dtype {image.dtype}: use uint8, uint16 or float")
    colour = 3 if image.shape[2] >= 3 else 1
    out = image.copy()  # alpha (the 4th or 2nd channel) passes through untouched
    with warnings.catch_warnings():  # a read-only array (e.g. from a PIL image) is fine: the source is only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        source = torch.from_numpy(np.ascontiguousarray(image[:, :, :colour])).permute(2, 0, 1)
    target = torch.from_numpy(out).permute(2, 0, 1)[:colour]
    _restore_channels(model, source, options, target, scale=scale, file_jpeg=file_jpeg)
    return out


def _restore_channels(
    model: Restorer,
    source: torch.Tensor,
    options: RestoreOptions,
    out: torch.Tensor | None = None,
    *,
    scale: float = 1.0,
    file_jpeg: FileJpeg | None = None,
) -> torch.Tensor:
    """Restore ``(C, H, W)`` with C = 1 or 3 by a model of 1 or 3 channels into ``out`` (gray <-> colour as documented:
    a gray image through a colour model keeps the mean of the restored channels; a colour image through a gray
    model has its BT.601 luma restored and its chroma kept)."""
    if out is None:
        dtype = source.dtype if source.dtype.is_floating_point else torch.float32
        out = torch.empty(source.shape, dtype=dtype, device=source.device)
    if source.shape[0] == model.spec.in_channels == 3 and _achromatic(source):
        # A gray picture stored as RGB: the colour model would tint it slightly; achromatic in, achromatic out.
        restored = restore_tensor(model, source, options, scale=scale, file_jpeg=file_jpeg)
        restored = restored.mean(dim=0, keepdim=True).expand(3, -1, -1)
        out.copy_(_cast(restored, out.dtype, scale))
        return out
    if source.shape[0] == model.spec.in_channels:
        return restore_tensor(model, source, options, out, scale=scale, file_jpeg=file_jpeg)
    if source.shape[0] == 1:
        restored = restore_tensor(model, source.expand(3, -1, -1), options, scale=scale, file_jpeg=file_jpeg)
        restored = restored.mean(dim=0, keepdim=True)
    else:
        rgb = source.float()
        r, g, b = cond.LUMA_WEIGHTS
        luma = (r * rgb[0] + g * rgb[1] + b * rgb[2])[None]
        restored = rgb + (restore_tensor(model, luma, options, scale=scale, file_jpeg=file_jpeg) - luma)
    out.copy_(_cast(restored, out.dtype, scale))
    return out


def _achromatic(rgb: torch.Tensor) -> bool:
    """Whether every pixel of a ``(3, H, W)`` image has R = G = B."""
    return bool(torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2]))


def _cast(values: torch.Tensor, dtype: torch.dtype, scale: float) -> torch.Tensor:
    if dtype.is_floating_point:
        return values.to(dtype)
    return values.round().clamp(0, scale).to(dtype)


#: The mode other Pillow modes are restored in, where it is not RGB (or RGBA for a palette with transparency):
#: bilevel as gray, premultiplied alpha un-premultiplied (the alpha kept), a palette's alpha kept.
_WORKING_MODE = {"1": "L", "La": "LA", "RGBa": "RGBA", "PA": "RGBA"}


def _restore_pil(model: Restorer, image: Image.Image, options: RestoreOptions) -> Image.Image:
    """Any PIL mode: EXIF orientation applied, alpha kept, ICC profile carried over, 16-bit kept 16-bit. A JPEG's
    quality is read from its quantisation tables before anything converts the image."""
    quality = file_jpeg_quality(image)
    tables = getattr(image, "quantization", None) or {}  # the file's, before a copy or a turn loses them
    image, turned = _upright(image)
    file_jpeg = None
    if quality is not None:  # a turned JPEG's blocks are no longer where its file put them
        file_jpeg = FileJpeg(quality, None if turned else JpegGrid.from_file_table(tables.get(0)))
    info = {k: v for k, v in image.info.items() if k in ("icc_profile", "dpi", "exif")}
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image)
        wide = np.clip(array, 0, 65535).astype(np.uint16) if mode == "I" else array.astype(np.uint16)
        result = Image.fromarray(_restore_numpy(model, wide, options, file_jpeg))
    elif mode == "F":  # float pixels on the 0..1 scale, as float arrays; unclipped, as they are
        result = Image.fromarray(_restore_numpy(model, np.asarray(image, dtype=np.float32), options), mode="F")
    else:
        if mode not in ("L", "LA", "RGB", "RGBA"):
            image = image.convert(_WORKING_MODE.get(mode) or ("RGBA" if "transparency" in image.info else "RGB"))
        result = Image.fromarray(_restore_numpy(model, np.asarray(image), options, file_jpeg), mode=image.mode)
    result.info.update(info)
    return result


def _upright(image: Image.Image) -> tuple[Image.Image, bool]:
    """``image`` turned as its EXIF orientation says (its EXIF then says "no rotation"), and whether it was turned
    (a turned JPEG's blocks are no longer where its file put them). EXIF that cannot be read is dropped: nothing
    is known of the orientation, and nothing unreadable is written into an output."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # Pillow warns, then guesses, on corrupt EXIF
            orientation = image.getexif().get(0x0112, 1)
            upright = ImageOps.exif_transpose(image) or image
    except (UserWarning, SyntaxError, ValueError, OSError, struct.error):
        image.info.pop("exif", None)
        return image, False
    return upright, orientation not in (0, 1)


def file_jpeg_quality(image: Image.Image) -> int | None:
    """The IJG quality of a PIL image decoded from a JPEG file (its quantisation tables); ``None`` for others."""
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables:
        return None
    return cond.quality_from_tables(tables)
