"""``RestoreOptions``: every option of ``restore()`` in one frozen, validated object (no torch import, so the CLI
can build and check it before it loads anything)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dcicnn.errors import InvalidArgumentError
from dcicnn.spec import DTYPE_NAMES, check_taper

__all__ = ["RestoreOptions"]

_DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass(frozen=True)
class RestoreOptions:
    """How ``restore()`` runs; invalid values raise ``ValueError`` when the object is made.

    Attributes:
        tile: tile side in pixels; images up to this size run in one pass. Memory grows with ``tile**2 *
            batch_size``, not with the image. ``"auto"`` (default): the weights' own (``Tuning.tile``; 512 for both
            bundled weights).
        overlap: context kept around each tile; ``None`` (default) is the model's receptive radius, the least that
            makes the result equal to a whole-image pass (a smaller value is refused).
        batch_size: tiles per forward pass.
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...; ``None``: where the model is).
        dtype: ``"auto"`` (bf16 where the hardware runs it fast, else fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"``
            (``torch.float32`` and the like, and their long names, are accepted and normalised).
        compile: ``torch.compile`` the inference network (slow first call, faster after).
        ensemble: average the outputs for the 8 flips and 90-degree rotations (geometric self-ensemble): 8 times
            the work for a small gain (measured in the README's Results).
        jpeg_quality: what a conditioned model is told of JPEG damage. ``"auto"`` (default): the heaviest damage
            read (``dcicnn.damage.reading.read_jpeg``): the quality in the file's quantisation tables (a PIL image
            opened from a JPEG), or a heavier earlier save its pixels show (saved twice, on the same grid or off it);
            for an array, what its pixels show (none found: not a JPEG); an int 1..100: that quality; ``None``:
            withheld, the model runs blind to JPEG. Blind models ignore it.
        strength: how much of the correction to apply: ``input + strength * (restored - input)``; 0 returns the
            input untouched, 1 the model's output, up to 2 exaggerates it.
        skip_undamaged: a conditioned model (JPEG and noise conditions) returns an image untouched when it shows no
            JPEG lattice and its noise level reads below its weights' ``Tuning.undamaged_noise``: what its training
            says to do there, done exactly rather than approximately (the network alone took fine saturated
            texture for noise). A blurred image without JPEG or noise is left alone too.
        jpeg_consistency: when the image is known to be a JPEG (its file, or the lattice its pixels show), clip the
            result's luma DCT coefficients into the file's quantisation bins (``dcicnn.damage.consistency``): the
            original lies in them, so this can only bring the luma closer to it. Applied in proportion to how little
            it removes of the network's correction (``Tuning.consistency_gate``: a blurred photo's bins hold the blur),
            and not for an earlier save on another grid.
        high_quality_taper: ``"auto"`` (default: what the weights were tuned with, ``Tuning.high_quality_taper``;
            ``(85, 98)`` for the bundled default, ``(85, 95)`` for v3), ``(full, off)`` JPEG qualities, or ``None``.
            An image whose only measurable damage is JPEG (a quality known or read from its pixels, a noise reading
            within what clean photos' texture reads, ``Tuning.texture_noise``) gets ``strength`` times
            ``(off - q) / (off - full)`` of the correction, clipped to 0..1: all of it up to q ``full``, none from q
            ``off``. Measured on McMaster for each set of weights (``benchmarks/taper_probe.py``): at full strength a
            high-quality JPEG's worst image loses 0.4-0.5 dB (q95-q98, v4), while a share of the correction gains
            at q90-q96 with no image worse than -0.02 dB.
    """

    tile: int | str = "auto"
    overlap: int | None = None
    batch_size: int = 4
    device: str | None = None
    dtype: str = "auto"
    compile: bool = False
    ensemble: bool = False
    jpeg_quality: int | str | None = "auto"
    strength: float = 1.0
    jpeg_consistency: bool = True
    skip_undamaged: bool = True
    high_quality_taper: tuple[int, int] | str | None = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tile", _tile(self.tile))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        if self.overlap is not None and (
            isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or self.overlap < 0
        ):
            raise InvalidArgumentError(f"overlap must be None or an int >= 0, got {self.overlap!r}")
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))
        for name in ("compile", "ensemble", "jpeg_consistency", "skip_undamaged"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(f"{name} must be a bool, got {getattr(self, name)!r}")
        object.__setattr__(self, "jpeg_quality", parse_jpeg_quality(self.jpeg_quality))
        strength = self.strength
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0.0 <= strength <= MAX_STRENGTH:
            raise InvalidArgumentError(f"strength must be a number in [0, {MAX_STRENGTH:g}], got {strength!r}")
        object.__setattr__(self, "strength", float(strength))
        object.__setattr__(self, "high_quality_taper", _taper(self.high_quality_taper))


#: The largest ``strength``: beyond twice the model's correction, artefacts of the correction itself dominate.
MAX_STRENGTH = 2.0


def _tile(value: object) -> int | str:
    """``"auto"`` or a tile side >= 1 from what users write (``"512"`` included)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit():
            value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"tile must be 'auto' or an int >= 1, got {value!r}")
    return value


def _taper(value: object) -> tuple[int, int] | str | None:
    """``"auto"`` (the weights' own, ``Tuning.high_quality_taper``), ``None`` or two JPEG qualities."""
    return "auto" if value == "auto" else check_taper(value)


def parse_jpeg_quality(value: object) -> int | str | None:
    """``"auto"``, ``None`` or an int 1..100 from what users write (``"none"``, ``"75"`` and the like included)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text in ("none", "blind"):
            return None
        if text.isdigit():
            value = int(text)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return value
    raise InvalidArgumentError(f"jpeg_quality must be 'auto', None ('none') or an int in 1..100, got {value!r}")


def _dtype_name(dtype: Any) -> str:
    """``"auto"`` or one of ``DTYPE_NAMES`` for a name, an alias or a ``torch.dtype`` (``None`` means auto)."""
    if dtype is None:
        return "auto"
    name = str(dtype).removeprefix("torch.")
    name = _DTYPE_ALIASES.get(name, name)
    if name != "auto" and name not in DTYPE_NAMES:
        raise InvalidArgumentError(f"dtype must be 'auto' or one of {', '.join(DTYPE_NAMES)}, got {dtype!r}")
    return name
