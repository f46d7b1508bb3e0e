"""``ModelSpec``: what inference and model cards need to know about a network, without importing the network.

In the spirit of spandrel's ``ImageModelDescriptor``: code that runs or describes a model asks its spec (channels,
scale, the receptive radius that sets the tile overlap, the dtypes it runs in, the conditions it takes) instead of
reaching into the model class, so ``inference`` and ``card`` never import ``model``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DTYPE_NAMES", "ModelSpec"]

#: Inference dtypes by the names users write (``restore(dtype=...)``, ``--dtype``); "auto" picks one at run time.
DTYPE_NAMES = ("fp32", "bf16", "fp16")


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
        alignment: the network works on blocks of this many pixels (a pixel-unshuffled network); tiles must start
            on multiples of it, and images are padded to multiples of it, for tiles to equal a whole-image pass.
    """

    in_channels: int
    out_channels: int
    receptive_radius: int
    flops_per_pixel: int
    scale: int = 1
    dtypes: tuple[str, ...] = DTYPE_NAMES
    conditions: tuple[str, ...] = ()
    alignment: int = 1

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input window one output pixel depends on."""
        return 2 * self.receptive_radius + 1
