"""Seamless tiling: windows of one size that overlap by the receptive radius, of which only the cores are kept, so
that a tiled pass equals a whole-image pass; and the geometric self-ensemble over the 8 flips and rotations."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass

import torch

from dcicnn.errors import InvalidArgumentError

__all__ = [
    "Tile",
    "batched",
    "dihedral_mean",
    "plan_tiles",
]


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


def batched(items: list[Tile], size: int) -> Iterator[list[Tile]]:
    """``items`` in consecutive groups of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
