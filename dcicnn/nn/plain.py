"""The paper's network body: conv 3x3 (+ BatchNorm) + ReLU, ``depth - 1`` times, then one conv 3x3 to the image."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["PlainNet"]


class PlainNet(nn.Sequential):
    """A plain stack of ``len(dilations)`` 3x3 convolutions from ``in_channels`` to ``out_channels``.

    Convolutions that feed a BatchNorm carry no bias (its shift makes one redundant). Its layers are numbered as
    ``nn.Sequential`` numbers them (``0.weight``, ``1.running_mean``...): the layout of every saved DCI-CNN and of
    spandrel's DnCNN.
    """

    def __init__(
        self, in_channels: int, out_channels: int, width: int, dilations: Sequence[int], batch_norm: bool
    ) -> None:
        layers: list[nn.Module] = []
        channels = in_channels
        for d in dilations[:-1]:
            layers.append(nn.Conv2d(channels, width, 3, stride=1, padding=d, dilation=d, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            channels = width
        d = dilations[-1]
        layers.append(nn.Conv2d(channels, out_channels, 3, stride=1, padding=d, dilation=d, bias=True))
        super().__init__(*layers)
        self.dilations = tuple(dilations)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel needs on every side: the sum of the dilations."""
        return sum(self.dilations)

    @staticmethod
    def macs_per_pixel(in_channels: int, out_channels: int, width: int, depth: int) -> int:
        """Multiply-adds per pixel of the convolutions."""
        return 9 * (in_channels * width + (depth - 2) * width**2 + width * out_channels)
