"""What a conditioned network is told about the damage it faces, and how that is found out.

A blind 8-layer network sees 17 pixels of context: it cannot tell fine texture from noise, or a q95 JPEG from a clean
photo, so it always removes something, even from a q95 JPEG that has nothing left to give (docs/quality.md). A few
numbers about the *whole* image fix that (after FFDNet's noise map): they enter the network as constant extra input
channels.

Conditions (``ModelSpec.conditions`` names them; each adds the channels listed in ``CHANNELS``):

* ``"jpeg"``: two channels, the JPEG strength ``(100 - Q) / 100`` and an "unknown" flag. The quality comes from the
  file's quantisation tables (exact, ``quality_from_tables``), from the user (``jpeg_quality=Q``), or from the pixels
  (``estimate_jpeg_quality``: a decoded JPEG's 8x8 DCT coefficients sit on multiples of its quantisation steps).
  An image found not to be a JPEG gets strength 0 (Q = 100, nearly lossless); ``jpeg_quality=None`` withholds the
  hint (flag 1, strength 0) and the network runs blind, as it was trained to for part of its samples.
* ``"noise"``: one channel, ``estimate_noise(image) / 50``: a robust noise level measured on the whole image (the
  same estimator runs on every training patch, so the network learns what the estimate means, texture bias
  included, rather than trusting it as the truth).

Everything here is computed once per image, before tiling, so tiled and whole-image results stay identical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from dcicnn.errors import InvalidArgumentError

#: BT.601 luma weights of R, G and B: JPEG's Y, on which its blocks are quantised (here, in the consistency
#: projection and when a gray model restores a colour image).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

__all__ = [
    "CHANNELS",
    "DAMAGE_FIELDS",
    "NOT_JPEG",
    "channel_count",
    "check_conditions",
    "condition_from_damage",
    "estimate_jpeg_grid",
    "estimate_jpeg_quality",
    "estimate_noise",
    "best_grid",
    "central_window",
    "ijg_table",
    "luma255",
    "quality_at",
    "quality_from_tables",
]

#: Channels each condition adds to the network's input, in order.
CHANNELS: dict[str, tuple[str, ...]] = {
    "jpeg": ("jpeg_strength", "jpeg_unknown"),
    "noise": ("noise_level",),
}

#: The noise channel is the estimated sigma (0..255 scale) divided by this.
NOISE_SCALE = 50.0


# The IJG (libjpeg) luminance table at quality 50, in natural (row-major) order, as Pillow reports tables.
_IJG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)


#: The fields of the float tensor form of a damage record (``dcicnn.damage.record.Damage.tensor``), which the data
#: loader batches into ``(N, 2)``: the JPEG quality (NaN: withheld; ``NOT_JPEG``: not a JPEG) and the noise sigma.
#: Each network turns it into its own condition channels (``condition_from_damage``); a blind one ignores it.
DAMAGE_FIELDS = ("jpeg_quality", "noise_sigma")
NOT_JPEG = 100


def condition_from_damage(conditions: Sequence[str], damage: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` condition channel values from ``(N, 2)`` damage records (``Damage.tensor``, batched)."""
    columns: list[torch.Tensor] = []
    quality, sigma = damage[:, 0].float(), damage[:, 1].float()
    for name in conditions:
        if name == "jpeg":
            unknown = torch.isnan(quality)
            columns.append(torch.where(unknown, 0.0, (100.0 - quality) / 100.0))
            columns.append(unknown.float())
        elif name == "noise":
            columns.append(sigma / NOISE_SCALE)
        else:
            raise InvalidArgumentError(f"unknown condition {name!r}")
    return torch.stack(columns, dim=1) if columns else damage.new_zeros(len(damage), 0)


def check_conditions(conditions: Sequence[str]) -> tuple[str, ...]:
    """``conditions`` as a tuple of known, distinct names, or one clear error."""
    names = tuple(conditions)
    unknown = [c for c in names if c not in CHANNELS]
    if unknown or len(set(names)) != len(names):
        raise InvalidArgumentError(f"conditions must be distinct names among {sorted(CHANNELS)}, got {list(names)}")
    return names


def channel_count(conditions: Sequence[str]) -> int:
    """Input channels the conditions add."""
    return sum(len(CHANNELS[c]) for c in conditions)


def check_quality(quality: object) -> int:
    """A JPEG quality as an int in 1..100, or one clear error."""
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= int(quality) <= 100:
        raise InvalidArgumentError(f"a JPEG quality must be an int in 1..100, got {quality!r}")
    return int(quality)


# ----------------------------------------------------------------------------------------------------------------------
# Noise.
_LAPLACE_DIFF = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_MAX_SAMPLES = 1 << 20


def estimate_noise(image: torch.Tensor) -> torch.Tensor:
    """Noise sigma (0..255 scale) of ``(C, H, W)`` or ``(N, C, H, W)`` images on the 0..1 scale; one value each.

    Immerkaer's (1996) operator (the difference of two Laplacians cancels smooth image content; on i.i.d. Gaussian
    noise its response has standard deviation 6 sigma), made robust to edges by taking the median of its magnitude
    instead of the mean: ``sigma = median|M * I| / (6 * 0.6745)``, pooled over channels. Texture biases it upward
    (a clean textured photo reads 1-3), which is why the network is trained on the estimate, not on the true sigma.
    Images under 3x3 pixels read 0.
    """
    batch = image[None] if image.ndim == 3 else image
    if batch.ndim != 4:
        raise InvalidArgumentError(f"expected (C, H, W) or (N, C, H, W) images, got shape {tuple(image.shape)}")
    n, c, h, w = batch.shape
    if h < 3 or w < 3:
        result = torch.zeros(n, dtype=torch.float32, device=batch.device)
        return result[0] if image.ndim == 3 else result
    kernel = _LAPLACE_DIFF.to(batch.device).expand(c, 1, 3, 3)
    sigmas = []
    for item in batch:
        response = F.conv2d(item[None].float(), kernel, groups=c).abs().flatten()
        step = max(1, math.ceil(response.numel() / _MAX_SAMPLES))
        sigmas.append(response[::step].median() * (255.0 / (6.0 * 0.6745)))
    result = torch.stack(sigmas).float()
    return result[0] if image.ndim == 3 else result


# ----------------------------------------------------------------------------------------------------------------------
# JPEG quality.
def ijg_table(quality: int, base: np.ndarray = _IJG_LUMA) -> np.ndarray:
    """The IJG quantisation table for ``quality`` (libjpeg's ``jpeg_quality_scaling``, baseline-clamped to 1..255)."""
    quality = check_quality(quality)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


_TABLES = np.stack([ijg_table(q) for q in range(1, 101)]).reshape(100, 64)


def quality_from_tables(quantization: Mapping[int, Sequence[int]]) -> int | None:
    """The IJG quality whose luminance table is nearest (in log steps) to a file's, from Pillow's
    ``Image.quantization`` (natural order). Exact for libjpeg/Pillow/OpenCV files; the nearest equivalent for a
    camera's own tables. ``None`` when there is no 64-entry luminance table."""
    luma = quantization.get(0) if quantization else None
    if luma is None or len(luma) != 64:
        return None
    table = np.log(np.maximum(np.asarray(luma, dtype=np.float64), 1.0))
    distance = np.abs(np.log(_TABLES) - table).sum(axis=1)
    return int(np.argmin(distance)) + 1


# The orthonormal 8x8 DCT-II basis (JPEG's FDCT): coefficients = D @ block @ D.T.
_DCT = np.array(
    [
        [
            (math.sqrt(1 / 8) if k == 0 else math.sqrt(2 / 8)) * math.cos((2 * n + 1) * k * math.pi / 16)
            for n in range(8)
        ]
        for k in range(8)
    ]
)
# Low frequencies (row, column) whose quantisation steps are read from the pixels: the ones with enough energy in
# natural images to show the lattice of multiples (the high ones are mostly quantised to zero).
_PROBE = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2), (0, 3), (3, 0)]
_MAX_SIDE = 768
_PERIODICITY = 0.5  # mean cos(2 pi c / q) above which step q is taken as present, before rounding noise
# The decoded pixels' rounding (8-bit output, and RGB's rounding and clipping when the luma is recomputed from an
# array) moves every coefficient by noise of about this standard deviation: it lowers the expected mean cosine of a
# true step q by exp(-2 pi^2 s^2 / q^2) (0.29 at q = 2), so small steps are judged against a threshold lowered as much.
_ROUNDING_NOISE = 0.5
# Random values give a mean cosine of 0 with a standard error of 0.71 / sqrt(n); the reading tries 11 frequencies, 63
# steps and picks the best of 64 grids, so a step counts only this many standard errors clear of chance.
_CHANCE = 5.0


def estimate_jpeg_quality(image: np.ndarray | torch.Tensor, *, min_blocks: int = 64) -> int | None:
    """The JPEG quality an image was last saved at, read from its pixels; ``None`` when it shows no JPEG lattice
    (``estimate_jpeg_grid`` without the grid's offset)."""
    grid = estimate_jpeg_grid(image, min_blocks=min_blocks)
    return None if grid is None else grid[0]


def estimate_jpeg_grid(image: np.ndarray | torch.Tensor, *, min_blocks: int = 64) -> tuple[int, int, int] | None:
    """``(quality, dy, dx)``: the JPEG quality an image was last saved at and the offset of the 8x8 grid it was coded
    on (rows and columns from the top-left corner to the first block's), read from its pixels; ``None`` when it
    shows no JPEG lattice.

    A decoded JPEG's luma, cut on the 8x8 grid it was coded on, has DCT coefficients close to multiples of the
    quantisation step of each frequency (Fan and de Queiroz, 2003): for every probed low frequency the largest step
    ``q`` with ``mean(cos(2 pi c / q))`` over its non-zero coefficients above 0.5 is taken, and the IJG quality whose
    table best matches those steps is returned. All 64 grid offsets are tried (a crop moves the grid). Resized,
    re-noised or heavily filtered JPEGs lose the lattice and read ``None``, as do clean images; so do qualities
    whose steps are all 1 (about 97 and up), which are as good as lossless here.

    Args:
        image: uint8 ``(H, W, C)``/``(H, W)`` array, or a float 0..1 ``(C, H, W)`` tensor/array.
        min_blocks: fewest whole 8x8 blocks needed to decide.
    """
    luma = central_window(luma255(image))
    h, w = luma.shape
    if (h // 8) * (w // 8) < min_blocks:
        return None
    dy, dx = best_grid(luma)
    quality = quality_at(luma, dy, dx)
    return None if quality is None else (quality, dy, dx)


def central_window(luma: np.ndarray) -> np.ndarray:
    """The central part of ``luma`` (at most 768 px a side) that the JPEG readings look at, its corner on the image's
    8x8 grid: plenty to read a lattice, at a bounded cost."""
    h, w = luma.shape
    top, left = max(0, (h - _MAX_SIDE) // 16 * 8), max(0, (w - _MAX_SIDE) // 16 * 8)
    return luma[top : top + _MAX_SIDE, left : left + _MAX_SIDE]


def best_grid(luma: np.ndarray) -> tuple[int, int]:
    """The offset ``(dy, dx)`` of the 8x8 grid whose blocks' low-frequency coefficients sit most strongly on a
    lattice (``_lattice_score``), searched on a central window of ``luma`` (0..255, ``(H, W)``)."""
    h, w = luma.shape
    centre = luma[max(0, h // 16 * 8 - 128) :, max(0, w // 16 * 8 - 128) :][:264, :264]
    best: tuple[float, int, int] | None = None
    for dy in range(8):
        for dx in range(8):
            score = _lattice_score(centre[dy:, dx:])
            if best is None or score > best[0]:
                best = (score, dy, dx)
    assert best is not None
    return best[1], best[2]


def quality_at(luma: np.ndarray, dy: int, dx: int, *, coarse_only: bool = False) -> int | None:
    """The IJG quality whose table best matches the quantisation steps that the blocks of ``luma`` (0..255) on the
    grid at offset ``(dy, dx)`` show; ``None`` when they show none (every step 1).

    ``coarse_only`` reads an earlier save through a later one: the later save's rounding hides that save's finer
    steps (they read 1), so only the frequencies that still show a step of 2 or more (up to 160, q5's) are matched,
    at least two of them, each seen on at least 64 coefficients (on fewer, chance alone puts some large step above
    the threshold).
    """
    coefficients = _block_dct(luma[dy:, dx:])
    # A frequency with too few non-zero coefficients to judge says nothing (a smooth image quantised at q20 has
    # zeros there, which fit every table): only the others are matched against the tables.
    limit, least, rounding = (160, 64, 0.0) if coarse_only else (64, 16, _ROUNDING_NOISE)
    measured = {(r, c): _step(coefficients[:, r, c], limit, least, rounding) for r, c in _PROBE}
    steps = {rc: step for rc, step in measured.items() if step is not None and (step > 1 or not coarse_only)}
    if not steps or max(steps.values()) <= 1 or (coarse_only and len(steps) < 2):
        return None
    index = np.array([r * 8 + c for r, c in steps])
    found = np.array(list(steps.values()), dtype=np.float64)
    distance = np.abs(np.log(_TABLES[:, index]) - np.log(found)).sum(axis=1)
    return int(np.argmin(distance)) + 1


def luma255(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """BT.601 luma (JPEG's Y) on the 0..255 scale, float64 ``(H, W)``."""
    if isinstance(image, torch.Tensor):
        array = image.detach().float().cpu().numpy()
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)
        array = array * 255.0
    else:
        array = np.asarray(image)
        array = array.astype(np.float64) * (255.0 if np.issubdtype(array.dtype, np.floating) else 1.0)
        if array.dtype == np.uint16:
            array = array / 257.0
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        r, g, b = LUMA_WEIGHTS
        array = r * array[:, :, 0] + g * array[:, :, 1] + b * array[:, :, 2]
    return np.asarray(array, dtype=np.float64)


def _block_dct(luma: np.ndarray) -> np.ndarray:
    """DCT coefficients ``(blocks, 8, 8)`` of the whole 8x8 blocks of ``luma``, level-shifted as JPEG does."""
    h, w = (luma.shape[0] // 8) * 8, (luma.shape[1] // 8) * 8
    blocks = (luma[:h, :w] - 128.0).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    return _DCT @ blocks @ _DCT.T


def _lattice_score(luma: np.ndarray) -> float:
    """How strongly the DC, (0, 1) and (1, 0) coefficients sit on the integer lattice of the best even step: high on the
    grid a JPEG was coded on, low off it."""
    coefficients = _block_dct(luma)
    score = 0.0
    for r, c in ((0, 0), (0, 1), (1, 0)):
        values = coefficients[:, r, c]
        values = values[np.abs(values) > 1.5]
        if values.size:
            score += max(float(np.mean(np.cos(2 * np.pi * values / q))) for q in (2, 3, 4, 5, 6, 8))
    return score


def _step(values: np.ndarray, limit: int = 64, least: int = 16, rounding: float = 0.0) -> int | None:
    """The largest quantisation step 2..``limit`` the values sit on (see ``estimate_jpeg_quality``), judged on at
    least ``least`` values; 1 if none shows; ``None`` if too few values are non-zero to tell.

    Step ``q`` shows when the mean of ``cos(2 pi v / q)`` over the values beyond ``q / 2`` exceeds ``_PERIODICITY``
    times what ``rounding`` noise leaves of a true lattice, and stands ``_CHANCE`` standard errors clear of chance
    (random values give 0 with a standard error of ``0.71 / sqrt(n)``). A multiple of the true step reads near 0 or
    below (half its values sit on odd multiples), so the largest step that shows is the step.
    """
    if np.count_nonzero(np.abs(values) > 1.0) < least:
        return None
    best = 1
    for q in range(2, limit + 1):
        sample = values[np.abs(values) > q / 2]
        if sample.size < least:
            break
        chance = min(_PERIODICITY, _CHANCE * 0.71 / math.sqrt(sample.size))
        threshold = max(_PERIODICITY * math.exp(-2.0 * (math.pi * rounding / q) ** 2), chance)
        if float(np.mean(np.cos(2 * np.pi * sample / q))) > threshold:
            best = q
    return best
