"""How much to correct, decided once per image before tiling: what is known of its damage (``measure``: the file's
JPEG tables, the pixels' lattices, the noise level), whether to leave it untouched (``undamaged``), how much of the
correction a high-quality JPEG gets (``taper``) and how much of the JPEG consistency projection to apply
(``consistency_share``); and the record of what was read, for the command line and the web page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

import torch
from torch.nn import functional as F

from dcicnn.damage import conditions as cond
from dcicnn.damage.consistency import JpegGrid
from dcicnn.damage.reading import JpegReading, read_jpeg
from dcicnn.damage.record import Damage
from dcicnn.restore.options import RestoreOptions
from dcicnn.spec import Tuning

__all__ = [
    "FileJpeg",
    "consistency_share",
    "image_damage",
    "measure",
    "record_reading",
    "recorded_readings",
    "taper",
    "taper_span",
    "undamaged",
]


class FileJpeg(NamedTuple):
    """What a JPEG file says: its quality (IJG equivalent of its luma table) and, where its blocks still lie where the
    file put them (no EXIF rotation applied), its exact grid and table."""

    quality: int
    grid: JpegGrid | None


_ESTIMATE_SIDE = 1024


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


def image_damage(
    source: torch.Tensor, jpeg_quality: int | str | None, *, file_jpeg: FileJpeg | None = None, scale: float = 1.0
) -> Damage:
    """The damage of a whole image, as ``restore`` measures it (``measure`` without the grid)."""
    return measure(source, jpeg_quality, file_jpeg=file_jpeg, scale=scale)[0]


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


def record_reading(reading: JpegReading) -> None:
    """Hand ``reading`` to every active ``recorded_readings`` block."""
    for log in _READINGS.get():
        log.append(reading)


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
        {"jpeg", "noise"} <= set(conditions) and damage.no_jpeg_damage and damage.noise_sigma < tuning.undamaged_noise
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
