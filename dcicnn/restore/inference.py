"""Restore images of any size: seamless tiling, batched tiles, BatchNorm folded, channels-last, bf16 where it pays.

A tile's output equals the whole-image output wherever the tile holds the pixel's whole receptive field, so tiles
overlap by at least the model's receptive radius and only their cores are kept: the result equals a whole-image pass
(up to float rounding), while memory stays bounded by the tile size, not the image size.
"""

from __future__ import annotations

import math
import struct
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import astuple, dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn
from torch.nn import functional as F

from dcicnn.damage import conditions as cond
from dcicnn.damage.consistency import JpegGrid, project
from dcicnn.damage.reading import JpegReading, read_jpeg
from dcicnn.damage.record import Damage
from dcicnn.errors import InvalidArgumentError
from dcicnn.restore.options import RestoreOptions
from dcicnn.spec import ModelSpec, Tuning

__all__ = [
    "ImageLike",
    "Restorer",
    "RestoreOptions",
    "Tile",
    "bf16_supported",
    "dihedral_mean",
    "FileJpeg",
    "file_jpeg_quality",
    "image_damage",
    "measure",
    "plan_tiles",
    "recorded_readings",
    "restore",
    "restore_tensor",
]

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Restorer(Protocol):
    """What ``restore`` needs of a network: its spec, an inference copy of it, and its parameters (for the device).
    ``DCICNN`` is one; nothing here imports it."""

    @property
    def spec(self) -> ModelSpec: ...

    def inference_network(self) -> nn.Module:
        """A copy in eval mode with anything foldable folded (BatchNorm), ready to run."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self) -> dict[str, Any]: ...


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 convolutions are fast on ``device`` (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


@dataclass(frozen=True)
class Tile:
    """One tile: the input window ``[y0:y1, x0:x1]`` and the core ``[cy0:cy1, cx0:cx1]`` whose output is kept."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Windows of one size (at most ``tile``) and the cores they own along one axis.

    The cores partition ``[0, length)`` into as few pieces as windows of ``tile`` allow, of nearly equal size, and
    the window is shrunk to fit them: a 612-pixel side with tile 512 runs as two 316-pixel windows, not two of 512.
    """
    if length <= tile:
        return [(0, length, 0, length)]
    inner = length - 2 * overlap
    count = math.ceil(inner / (tile - 2 * overlap - 1))
    size = min(length, math.ceil(inner / count) + 2 * overlap + 1)
    cuts = [0] + [overlap + round(i * inner / count) for i in range(1, count)] + [length]
    spans = []
    for core0, core1 in zip(cuts[:-1], cuts[1:], strict=True):
        start = min(max(core0 - overlap, 0), length - size)
        spans.append((start, start + size, core0, core1))
    return spans


def plan_tiles(height: int, width: int, tile: int, overlap: int, align: int = 1) -> list[Tile]:
    """Tiles of one size (at most ``tile`` x ``tile``) covering an image; every output pixel lies in exactly one
    core, at least ``overlap`` pixels from its window's edges unless that edge is the image's. With ``align`` > 1
    (the sides must be multiples of it), windows and cores start and end on multiples of ``align``."""
    if align > 1:
        if height % align or width % align:
            raise InvalidArgumentError(f"a {height}x{width} image cannot be tiled in blocks of {align}")
        units = plan_tiles(height // align, width // align, tile // align, -(-overlap // align))
        return [Tile(*(v * align for v in astuple(t))) for t in units]
    if tile <= 2 * overlap + 1:
        raise InvalidArgumentError(f"tile ({tile}) must be larger than twice the overlap ({overlap}) plus one")
    return [
        Tile(y0, y1, x0, x1, cy0, cy1, cx0, cx1)
        for y0, y1, cy0, cy1 in _spans(height, tile, overlap)
        for x0, x1, cx0, cx1 in _spans(width, tile, overlap)
    ]


def _batches(items: list[Tile], size: int) -> Iterator[list[Tile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Runner:
    """The model prepared for inference on one device and dtype: BatchNorm folded, eval mode, channels-last."""

    def __init__(self, model: Restorer, device: torch.device, dtype: torch.dtype, compile: bool) -> None:
        fused = model.inference_network().to(device)
        self.channels_last = device.type in ("cpu", "cuda")
        if self.channels_last:
            fused = fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
        self.model: Any = torch.compile(fused) if compile else fused
        self.device = device
        self.dtype = dtype

    def __call__(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        args = (x,) if condition is None else (x, condition.to(self.device).expand(len(x), -1))
        if self.dtype == torch.float32:
            return self.model(*args)
        # Autocast runs the convolutions in bf16/fp16 but keeps the residual subtraction in fp32.
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.model(*args).float()


#: The prepared network of each model, kept beside it rather than in it, and dropped with it.
_RUNNERS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], _Runner]] = weakref.WeakKeyDictionary()


def _runner(model: Restorer, device: torch.device, dtype: torch.dtype, compile: bool) -> _Runner:
    """A cached ``_Runner``, rebuilt when the model's weights change (tensor version counters)."""
    key = (str(device), dtype, compile, tuple(t._version for t in model.state_dict().values()))
    cached = _RUNNERS.get(model)
    if cached is None or cached[0] != key:
        cached = (key, _Runner(model, device, dtype, compile))
        _RUNNERS[model] = cached
    return cached[1]


def resolve_device_dtype(model: Restorer, options: RestoreOptions) -> tuple[torch.device, torch.dtype]:
    """The device (``None``: the model's) and dtype (``"auto"``: bf16 where ``bf16_supported``, else fp32) to run
    in; one clear ``ValueError`` for a device this machine does not have or a dtype the model does not run in."""
    if options.device is None:
        device = next(model.parameters()).device
    else:
        try:
            device = torch.device(options.device)
        except RuntimeError:
            raise InvalidArgumentError(f"unknown device {options.device!r} (e.g. cpu, cuda, cuda:1, mps)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidArgumentError(f"device {options.device!r}: this machine has no usable CUDA GPU")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise InvalidArgumentError(f"device {options.device!r}: MPS is not available on this machine")
    if options.dtype == "auto":
        return device, torch.bfloat16 if bf16_supported(device) else torch.float32
    if options.dtype not in model.spec.dtypes:
        raise InvalidArgumentError(f"this model runs in {', '.join(model.spec.dtypes)}, not {options.dtype}")
    return device, _DTYPES[options.dtype]


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
    run = _runner(model, *device_dtype, options.compile)
    strength = options.strength
    condition, grid = None, None
    if spec.conditions or options.jpeg_consistency or options.high_quality_taper:
        damage, grid, reading = measure(source, options.jpeg_quality, file_jpeg=file_jpeg, scale=scale)
        for log in _READINGS.get():
            log.append(reading)
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
    tile = max(options.tile, (2 * -(-overlap // align) + 2) * align)
    tiles = plan_tiles(source.shape[1], source.shape[2], tile, overlap, align)
    for group in _batches(tiles, options.batch_size):
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


def consistency_share(
    restored: torch.Tensor, projected: torch.Tensor, degraded: torch.Tensor, gate: tuple[float, float] | None
) -> float:
    """How much of the consistency projection to apply (``Tuning.consistency_gate``): 1 when the projection removes
    at most ``gate[0]`` of the correction's energy, 0 from ``gate[1]``, linear between.

    The share removed is the median over the image's 16x16 cells among the busier half (those where the network
    changed the most): blur under the JPEG is a property of the whole photo, and the projection then undoes the
    network's deblurring in most cells, whereas a network that invents texture where the photo has a fine pattern
    does so in a few cells, which the projection must keep correcting.
    """
    if gate is None:
        return 1.0
    correction = _cell_energy(restored.sub(degraded))
    busy = correction > 0
    if not bool(busy.any()):
        return 1.0
    busy &= correction >= correction[busy].median()
    removed = float((_cell_energy(projected.sub(restored))[busy] / correction[busy]).median())
    full, off = gate
    return min(1.0, max(0.0, (off - removed) / (off - full)))


def _cell_energy(difference: torch.Tensor, cell: int = 16) -> torch.Tensor:
    """The squared ``(C, H, W)`` difference summed over channels and ``cell`` x ``cell`` cells (the image's
    remainder rows and columns form their own, smaller cells), flattened."""
    energy = difference.float().square().sum(0)[None, None]
    return F.avg_pool2d(energy, cell, ceil_mode=True).flatten() * (cell * cell)


_ESTIMATE_SIDE = 1024


class FileJpeg(NamedTuple):
    """What a JPEG file says: its quality (IJG equivalent of its luma table) and, where its blocks still lie where the
    file put them (no EXIF rotation applied), its exact grid and table."""

    quality: int
    grid: JpegGrid | None


def measure(
    source: torch.Tensor,
    jpeg_quality: int | str | None,
    *,
    file_jpeg: FileJpeg | None = None,
    scale: float = 1.0,
) -> tuple[Damage, JpegGrid | None, JpegReading]:
    """The damage (``Damage``) of a whole ``(C, H, W)`` image on the ``0..scale`` range, the JPEG grid to keep the
    result consistent with (``None``: none), and what was read of its JPEG compression
    (``dcicnn.damage.reading.read_jpeg``: the file's tables, the pixels' lattices).

    The JPEG quality follows ``jpeg_quality`` (see ``RestoreOptions``): ``"auto"`` takes the heaviest damage read
    (``JpegReading.used``: the file's, or an earlier save's the pixels show; none: not a JPEG); an int is taken as
    given (its grid from the pixels' lattice, if they show one); ``None`` withholds it (and no grid). The grid is the
    file's own where the damage is its last save's, the pixels' with the acted-on quality's table for an earlier save
    on the same grid, and none for an earlier save on another grid (the file's bins hold that save's blocks in
    place). The noise sigma and the readings are measured on the central 1024x1024 window when the image is larger
    (the window's corner lies on the image's 8x8 grid, and the cost stays bounded).
    """
    h, w = source.shape[1:]
    top, left = max(0, (h - _ESTIMATE_SIDE) // 16 * 8), max(0, (w - _ESTIMATE_SIDE) // 16 * 8)
    window = source[:, top : top + _ESTIMATE_SIDE, left : left + _ESTIMATE_SIDE].float().div(scale)
    sigma = float(cond.estimate_noise(window))
    if jpeg_quality is None:
        return Damage.blind(sigma), None, JpegReading()
    file_grid = file_jpeg.grid if file_jpeg is not None else None
    reading = read_jpeg(
        cond.central_window(cond.luma255(window)),
        tables=None if file_jpeg is None else file_jpeg.quality,
        grid=None if file_grid is None else (file_grid.dy, file_grid.dx),
    )
    grid: JpegGrid | None = None
    if jpeg_quality == "auto":
        used = reading.used
        quality = used
        if used is not None and not reading.off_grid:
            if file_grid is not None and not reading.resaved:
                grid = file_grid
            elif reading.grid is not None and (reading.pixels is not None or file_grid is not None):
                grid = JpegGrid.from_quality(used, *reading.grid)
    else:
        quality = int(jpeg_quality)
        if reading.grid is not None and reading.pixels is not None:
            grid = JpegGrid.from_quality(quality, *reading.grid)
    return Damage(quality, sigma), grid, reading


#: What ``restore`` read of each image's JPEG compression, while ``recorded_readings`` is active.
_READINGS: ContextVar[tuple[list[JpegReading], ...]] = ContextVar("dcicnn_jpeg_readings", default=())


@contextmanager
def recorded_readings() -> Iterator[list[JpegReading]]:
    """Collect what ``restore`` reads of each image's JPEG compression (one ``JpegReading`` per image restored by a
    conditioned model or with the consistency projection, in order) while the block runs: what the CLI and the web
    page tell the user ("tables q96, pixels q74: restored as q74")."""
    readings: list[JpegReading] = []
    token = _READINGS.set((*_READINGS.get(), readings))  # an outer recorder keeps recording too
    try:
        yield readings
    finally:
        _READINGS.reset(token)


def taper_span(options: RestoreOptions, tuning: Tuning) -> tuple[int, int] | None:
    """The high-quality taper ``options`` ask for: the weights' own (``tuning``) for ``"auto"``."""
    value = options.high_quality_taper
    return tuning.high_quality_taper if isinstance(value, str) else value


#: The defaults of ``Tuning``, for callers that give no model's own.
_V3_TUNING = Tuning()


def undamaged(conditions: tuple[str, ...], damage: Damage, tuning: Tuning = _V3_TUNING) -> bool:
    """Whether a conditioned model should leave an image alone: it takes both conditions, the image carries no JPEG
    damage (``Damage.no_jpeg_damage``) and its noise level reads below ``tuning.undamaged_noise``."""
    return (
        {"jpeg", "noise"} <= set(conditions)
        and damage.no_jpeg_damage
        and damage.noise_sigma < tuning.undamaged_noise
    )


def taper(damage: Damage, span: tuple[int, int] | None, tuning: Tuning = _V3_TUNING) -> float:
    """The share of the correction to apply to an image with this damage record (``RestoreOptions.
    high_quality_taper``): below 1 only for a JPEG of quality above ``span[0]`` whose noise reading is within what
    clean photos' texture reads (``tuning.texture_noise``)."""
    if span is None:
        return 1.0
    quality = damage.jpeg_quality
    if quality is None or damage.no_jpeg_damage or damage.noise_sigma >= tuning.texture_noise:
        return 1.0
    full, off = span
    return min(1.0, max(0.0, (off - quality) / (off - full)))


def image_damage(
    source: torch.Tensor, jpeg_quality: int | str | None, *, file_jpeg: FileJpeg | None = None, scale: float = 1.0
) -> Damage:
    """The damage of a whole image, as ``restore`` measures it (``measure`` without the grid)."""
    return measure(source, jpeg_quality, file_jpeg=file_jpeg, scale=scale)[0]


def dihedral_mean(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Geometric self-ensemble: ``run`` on the 8 flips and 90-degree rotations of ``(N, C, H, W)`` images, each
    output turned back and the 8 averaged. A restorer's errors differ between orientations while the image does
    not, so the mean is a little better (measured in the README's Results), at 8 times the work."""

    def oriented(flip: bool, turns: int) -> torch.Tensor:
        y = torch.rot90(run(torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1))), -turns, (-2, -1))
        return y.flip(-1) if flip else y

    total = oriented(False, 0)
    for flip, turns in [(False, 1), (False, 2), (False, 3), (True, 0), (True, 1), (True, 2), (True, 3)]:
        total += oriented(flip, turns)
    return total / 8


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
