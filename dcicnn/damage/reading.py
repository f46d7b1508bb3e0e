"""What a JPEG's file and its pixels say of its compression, and the quality to act on.

A file's quantisation tables describe its last save only, and most JPEGs people have were saved more than once
(edited, shared, re-uploaded, resized by a site). The pixels keep an earlier, heavier save's trace:

* on the same 8x8 grid, the coefficients still sit on the earlier save's coarser lattice, so the steps read on the
  last save's grid are the heavier save's (``quality_at``);
* off the grid (the photo was cropped between the saves), the earlier save leaves its own block edges at another
  offset, and the coefficients there still sit on its coarse steps wherever the later save's rounding is finer
  (``quality_at(..., coarse_only=True)``).

``read_jpeg`` reads all three (tables, the last grid, the heaviest other grid) and ``JpegReading.used`` is the heaviest
damage they show. A resize between the saves leaves no lattice: then only the tables speak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcicnn.damage.conditions import best_grid, quality_at

__all__ = ["TOLERANCE", "JpegReading", "read_jpeg"]

#: A pixel reading counts against the file's tables only when its quantisation steps are this many times the
#: tables' (IJG scaling): the pixels' reading of a single save lands a few steps low at low qualities (q40 reads 35 on
#: a small image: 1.14 times the steps), while a save at q74 under q96 shows 6.5 times the steps.
TOLERANCE = 1.3
#: A grid offset is a candidate earlier save when its rows' or columns' block edges are this much stronger than the
#: median offset's (a clean photo's offsets differ by up to 10%).
_EDGE_CONTRAST = 1.05
_MIN_BLOCKS = 64


@dataclass(frozen=True)
class JpegReading:
    """What was read of one image's JPEG compression.

    Attributes:
        tables: the quality of the file's luma table (IJG equivalent); ``None`` when it did not come from a JPEG file.
        grid: the offset ``(dy, dx)`` of the last save's 8x8 grid: the file's, else the one its pixels show best;
            ``None`` when no grid is known.
        pixels: the quality the pixels show on that grid (an earlier save on the same grid reads here); ``None``:
            no lattice.
        earlier: the quality of a heavier save on another grid (the photo was cropped between saves), or ``None``.
        earlier_grid: that save's grid offset.
    """

    tables: int | None = None
    grid: tuple[int, int] | None = None
    pixels: int | None = None
    earlier: int | None = None
    earlier_grid: tuple[int, int] | None = None

    @property
    def last(self) -> int | None:
        """The quality of the last save: the tables', else what the pixels show on its grid."""
        return self.tables if self.tables is not None else self.pixels

    @property
    def used(self) -> int | None:
        """The heaviest damage read: the lowest of the qualities read, a pixel reading counting against the tables
        only when its steps are more than ``TOLERANCE`` times theirs; ``None``: not a JPEG."""
        found = [q for q in (self.pixels, self.earlier) if q is not None]
        if self.tables is None:
            return min(found) if found else None
        heavier = [q for q in found if _scaling(q) > TOLERANCE * _scaling(self.tables)]
        return min(heavier) if heavier else self.tables

    @property
    def resaved(self) -> bool:
        """Whether the damage acted on is an earlier save's, heavier than the last save's."""
        used, last = self.used, self.last
        return used is not None and last is not None and used < last

    @property
    def off_grid(self) -> bool:
        """Whether the damage acted on lies on another grid than the last save's (``earlier``)."""
        return self.resaved and self.used == self.earlier and self.used != self.pixels

    def describe(self) -> str:
        """One line for people: what was read and what is acted on, e.g. ``"tables q96, pixels q74: restored as
        q74"``."""
        parts = []
        if self.tables is not None:
            parts.append(f"tables q{self.tables}")
        if self.pixels is not None and (self.tables is None or self.pixels != self.tables):
            parts.append(f"pixels q{self.pixels}")
        if self.earlier is not None and self.earlier_grid is not None:
            dy, dx = self.earlier_grid
            parts.append(f"an earlier save q{self.earlier} on a grid shifted by ({dy}, {dx})")
        used = self.used
        if used is None:
            return "no JPEG grid in the pixels"
        return f"{', '.join(parts)}: restored as q{used}"


def _scaling(quality: int) -> int:
    """libjpeg's table scaling (percent) for a quality: the tables' steps are proportional to it."""
    return 5000 // quality if quality < 50 else max(1, 200 - 2 * quality)


def read_jpeg(
    luma: np.ndarray, *, tables: int | None = None, grid: tuple[int, int] | None = None
) -> JpegReading:
    """Read the JPEG compression of an image's luma (0..255, ``(H, W)``; a window of about 768 px is plenty).

    Args:
        luma: ``dcicnn.damage.conditions.luma255`` of the image (its ``central_window`` is plenty).
        tables: the file's quality (``quality_from_tables``), if it came from a JPEG file.
        grid: where the file's blocks lie, if known (``(0, 0)`` for a file as decoded; ``None`` after a crop or a
            turn): the pixels' best grid is searched otherwise.
    """
    h, w = luma.shape
    if (h // 8) * (w // 8) < _MIN_BLOCKS:
        return JpegReading(tables=tables, grid=grid)
    last = grid if grid is not None else best_grid(luma)
    pixels = quality_at(luma, *last)
    if pixels is None and tables is None:  # no lattice anywhere it should be: not a JPEG
        return JpegReading()
    earlier = _earlier_save(luma, last)
    return JpegReading(
        tables=tables,
        grid=last,
        pixels=pixels,
        earlier=None if earlier is None else earlier[0],
        earlier_grid=None if earlier is None else earlier[1:],
    )


def _earlier_save(luma: np.ndarray, last: tuple[int, int]) -> tuple[int, int, int] | None:
    """``(quality, dy, dx)`` of the heaviest save the pixels show on a grid other than ``last``, or ``None``.

    Candidates are the offsets where block edges are strongest (two row and two column phases, the last grid's
    aside); a candidate counts only where its coefficients sit on coarse steps (``quality_at(coarse_only=True)``).
    """
    if min(luma.shape) < 16:  # fewer than two blocks across: no phase to compare
        return None
    rows, cols = _edge_strength(luma, 0), _edge_strength(luma, 1)
    row_phases = [int(p) for p in np.argsort(-rows)[:2] if rows[p] >= _EDGE_CONTRAST * np.median(rows)]
    col_phases = [int(p) for p in np.argsort(-cols)[:2] if cols[p] >= _EDGE_CONTRAST * np.median(cols)]
    found: tuple[int, int, int] | None = None
    for dy in set(row_phases) | {last[0]}:
        for dx in set(col_phases) | {last[1]}:
            if (dy, dx) == last:
                continue
            quality = quality_at(luma, dy, dx, coarse_only=True)
            if quality is not None and (found is None or quality < found[0]):
                found = (quality, dy, dx)
    return found


def _edge_strength(luma: np.ndarray, axis: int) -> np.ndarray:
    """Mean absolute step across each of the 8 phases of pixel boundaries along ``axis``: phase ``p`` is the boundary
    before row (column) ``8k + p``; a JPEG grid at offset ``p`` makes it stand out."""
    steps = np.abs(np.diff(luma, axis=axis)).mean(axis=1 - axis)  # steps[i]: between i and i + 1
    strength = np.empty(8)
    for phase in range(8):
        start = (phase - 1) % 8  # the boundary before index p is steps[p - 1]
        strength[phase] = steps[start::8].mean()
    return strength
