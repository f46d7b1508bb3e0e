"""``ModelSpec``: what inference and model cards need to know about a network, without importing the network.

In the spirit of spandrel's ``ImageModelDescriptor``: code that runs or describes a model asks its spec (channels,
scale, the receptive radius that sets the tile overlap, the dtypes it runs in, the conditions it takes) instead of
reaching into the model class, so ``inference`` and ``card`` never import ``model``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from dcicnn.errors import InvalidArgumentError

__all__ = ["DTYPE_NAMES", "ModelSpec", "Tuning", "check_taper"]

#: Inference dtypes by the names users write (``restore(dtype=...)``, ``--dtype``); "auto" picks one at run time.
DTYPE_NAMES = ("fp32", "bf16", "fp16")


def check_taper(value: object) -> tuple[int, int] | None:
    """``None`` or two JPEG qualities ``full < off`` in 1..100 (a list, as configs write it, is accepted)."""
    if value is None:
        return None
    if isinstance(value, tuple | list) and len(value) == 2:
        full, off = value
        if all(isinstance(q, int) and not isinstance(q, bool) and 1 <= q <= 100 for q in (full, off)) and full < off:
            return int(full), int(off)
    raise InvalidArgumentError(
        f"high_quality_taper must be None or two JPEG qualities (full, off) with 1 <= full < off <= 100, got {value!r}"
    )


def check_gate(value: object) -> tuple[float, float] | None:
    """``None`` or two shares ``full < off`` in 0..1 (a list, as configs write it, is accepted)."""
    if value is None:
        return None
    if isinstance(value, tuple | list) and len(value) == 2:
        full, off = value
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (full, off)) and 0 <= full < off <= 1:
            return float(full), float(off)
    raise InvalidArgumentError(
        f"consistency_gate must be None or two shares (full, off) with 0 <= full < off <= 1, got {value!r}"
    )


@dataclass(frozen=True)
class Tuning:
    """What ``restore()`` does around a network, measured for one set of weights and saved with them (the
    ``tuning`` entry of their ``config.json``), so that another set of weights does not inherit it.

    The defaults are what the bundled v3 was tuned with on McMaster; the default v4 keeps them but for its taper,
    (85, 98), re-measured for it; a network trained on another recipe measures its own (``benchmarks/taper_probe.py``).

    Attributes:
        high_quality_taper: ``(full, off)``: a JPEG whose only measurable damage is its compression gets
            ``(off - q) / (off - full)`` of the correction (clipped to 0..1); ``None``: all of it. What
            ``RestoreOptions.high_quality_taper="auto"`` means for these weights.
        undamaged_noise: below this noise reading (0..255 scale), an image without a JPEG lattice has nothing the
            network was trained to remove and is returned untouched (``RestoreOptions.skip_undamaged``); v3's recipe
            adds no noise below sigma 5, which reads 4.85 or more.
        texture_noise: noise readings below this are within what clean photos read from their texture alone
            (BSDS500: 99% below 8.9), so they do not stop the taper.
        consistency_gate: ``(full, off)``: how much of the JPEG consistency projection to apply, from the share of
            the network's correction (its energy) that the projection would remove (the median over the busier
            half of the image's 16x16 cells): all of it up to ``full``, none from ``off``, linear between. A
            deblurring network moves a blurred-then-compressed photo out of the file's bins (they hold the blurred
            photo), and the projection would undo that; where the network only deblocks, the projection removes
            little. ``None``: always all of it.
        tile: the tile side ``restore()`` uses for these weights (``RestoreOptions.tile="auto"``): images up to it run
            in one pass; each tile also computes a margin of the receptive radius on every side, so a network that
            sees far may want larger tiles (memory grows with the square).
    """

    high_quality_taper: tuple[int, int] | None = (85, 95)
    undamaged_noise: float = 4.5
    texture_noise: float = 9.0
    consistency_gate: tuple[float, float] | None = (0.15, 0.35)
    tile: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "high_quality_taper", check_taper(self.high_quality_taper))
        object.__setattr__(self, "consistency_gate", check_gate(self.consistency_gate))
        for name in ("undamaged_noise", "texture_noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 255.0:
                raise InvalidArgumentError(f"tuning {name} must be a noise level in 0..255, got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or self.tile < 16:
            raise InvalidArgumentError(f"tuning tile must be an int >= 16, got {self.tile!r}")

    @classmethod
    def from_config(cls, values: dict[str, Any] | None) -> Tuning:
        """From a ``config.json`` entry (``None``: the defaults); unknown keys are an error, not ignored."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise InvalidArgumentError(f"unknown tuning setting(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        return cls(**values)

    def to_config(self) -> dict[str, Any]:
        """As ``config.json`` stores it (JSON types)."""
        values = asdict(self)
        for name in ("high_quality_taper", "consistency_gate"):
            if values[name] is not None:
                values[name] = list(values[name])
        return values


@dataclass(frozen=True)
class ModelSpec:
    """A restoration network's description for inference.

    Attributes:
        in_channels: channels of the input image (1 gray, 3 RGB); the output has ``out_channels``.
        out_channels: channels of the restored image.
        scale: output size / input size.
        receptive_radius: pixels of context each output pixel needs on every side; tiles that overlap by at least
            this much give the same result as a whole-image pass.
        flops_per_pixel: multiply-adds x 2 per output pixel at inference (BatchNorm folded).
        dtypes: the inference dtypes it runs in (names of ``DTYPE_NAMES``).
        conditions: names of the extra inputs it takes beside the image (none: a blind restorer).
        alignment: the network works on blocks of this many pixels (a pixel-unshuffled network, a U-Net); tiles
            must start on multiples of it, and images are padded to multiples of it, for tiles to equal a whole-image
            pass.
        tuning: what ``restore()`` does around the network for these weights (``Tuning``).
    """

    in_channels: int
    out_channels: int
    receptive_radius: int
    flops_per_pixel: int
    scale: int = 1
    dtypes: tuple[str, ...] = DTYPE_NAMES
    conditions: tuple[str, ...] = ()
    alignment: int = 1
    tuning: Tuning = Tuning()

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input window one output pixel depends on."""
        return 2 * self.receptive_radius + 1
