"""``Damage``: what is known of one image's damage, from the reading to the network's input.

``restore()`` measures it once per image (``dcicnn.restore.policy.measure``) and decides on it (skip an undamaged
image, taper a high-quality JPEG); the training data builds one per sample. A conditioned network takes it as a
float tensor (``Damage.tensor``, batched by the data loader), which ``condition_from_damage`` turns into its
condition channels; only that tensor keeps the two sentinels (NaN: withheld; ``NOT_JPEG``: not a JPEG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dcicnn.damage.conditions import NOT_JPEG, check_quality, condition_from_damage
from dcicnn.errors import InvalidArgumentError

__all__ = ["Damage"]


@dataclass(frozen=True)
class Damage:
    """What is known of one image's damage; invalid values raise ``ValueError`` when it is made.

    Attributes:
        jpeg_quality: the JPEG quality to act on (1..100); ``None``: not a JPEG (no tables, no lattice in the
            pixels), or withheld.
        noise_sigma: the noise level read from the image (0..255 scale; a clean photo's texture reads 1-3).
        withheld: the JPEG quality was withheld (``jpeg_quality=None`` from the user, or in training): the network
            runs blind to JPEG, and nothing is decided on the quality.
    """

    jpeg_quality: int | None = None
    noise_sigma: float = 0.0
    withheld: bool = False

    def __post_init__(self) -> None:
        if self.jpeg_quality is not None:
            if self.withheld:
                raise InvalidArgumentError(f"a withheld JPEG quality has no value, got {self.jpeg_quality!r}")
            object.__setattr__(self, "jpeg_quality", check_quality(self.jpeg_quality))
        sigma = float(self.noise_sigma)
        if not math.isfinite(sigma) or sigma < 0:
            raise InvalidArgumentError(f"noise_sigma must be a finite number >= 0, got {self.noise_sigma!r}")
        object.__setattr__(self, "noise_sigma", sigma)

    @classmethod
    def blind(cls, noise_sigma: float = 0.0) -> Damage:
        """A record with the JPEG quality withheld."""
        return cls(None, noise_sigma, withheld=True)

    @property
    def is_jpeg(self) -> bool:
        """Whether a JPEG quality is known (given, or read from the file or the pixels)."""
        return self.jpeg_quality is not None

    @property
    def no_jpeg_damage(self) -> bool:
        """Whether the image is known to carry no JPEG damage: found not to be a JPEG, or given quality 100, which the
        network is told alike (not when the quality is withheld: then nothing is known)."""
        return not self.withheld and (self.jpeg_quality is None or self.jpeg_quality == NOT_JPEG)

    def tensor(self) -> torch.Tensor:
        """The float32 record a conditioned network is told (``dcicnn.damage.conditions.DAMAGE_FIELDS``): the quality,
        NaN when withheld, ``NOT_JPEG`` when not a JPEG (told as a quality of 100: nearly lossless); the sigma."""
        quality = math.nan if self.withheld else float(NOT_JPEG if self.jpeg_quality is None else self.jpeg_quality)
        return torch.tensor([quality, self.noise_sigma], dtype=torch.float32)

    def condition(self, conditions: Sequence[str]) -> torch.Tensor:
        """The ``(K,)`` condition channel values a network with ``conditions`` is given for this image."""
        return condition_from_damage(conditions, self.tensor()[None])[0]
