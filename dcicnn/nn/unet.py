"""The multi-scale member of the DCI-CNN family: a U-Net of residual blocks without BatchNorm.

After DRUNet (Zhang et al., 2021) and NAFNet: ``scales`` resolutions, channels doubling at each, ``blocks`` residual
blocks per scale on each side, strided 2x2 convolutions down, transposed 2x2 convolutions up, additive skips. The
plain stack sees ``2 * depth + 1`` pixels; this one sees about ``(4 blocks + 1) * 2**scales`` for a similar cost per
pixel, most of its convolutions running at reduced resolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ResidualBlock", "UNet"]


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` with 3x3 convolutions; ``conv2`` starts at zero, so a new block is the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class _Down(nn.Module):
    """One encoder scale: residual blocks (their output is the skip), then a strided 2x2 convolution."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        self.down = nn.Conv2d(channels, 2 * channels, 2, stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.blocks(x)
        return skip, self.down(skip)


class _Up(nn.Module):
    """One decoder scale: a transposed 2x2 convolution, the skip added, residual blocks."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(2 * channels, channels, 2, stride=2)
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.up(x) + skip)


class UNet(nn.Module):
    """A U-Net of residual blocks from ``in_channels`` to ``out_channels`` at the input's size (any H, W >= 1).

    Args:
        in_channels: input channels (the image's and any condition maps).
        out_channels: output channels.
        width: channels at full resolution; scale ``s`` has ``width * 2**s``.
        scales: resolutions (2 or more); the lowest is ``1 / 2**(scales - 1)`` of the input.
        blocks: residual blocks per scale on each side (and in the middle).

    Sides that are not multiples of ``alignment`` are padded by replicating the edge, and the output cropped back.
    A new network starts with He-initialised convolutions, every residual block at the identity and the last
    convolution at zero (a residual restorer starts as the identity and learns only corrections).
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, scales: int, blocks: int) -> None:
        super().__init__()
        self.scales = scales
        self.blocks = blocks
        self.head = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders = nn.ModuleList(_Down(width * 2**s, blocks) for s in range(scales - 1))
        self.middle = nn.Sequential(*[ResidualBlock(width * 2 ** (scales - 1)) for _ in range(blocks)])
        # deepest first, in the order forward runs them
        self.decoders = nn.ModuleList(_Up(width * 2**s, blocks) for s in reversed(range(scales - 1)))
        self.tail = nn.Conv2d(width, out_channels, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He normal convolutions with zero biases; each block's second convolution and the tail at zero."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
            for module in self.modules():
                if isinstance(module, ResidualBlock):
                    nn.init.zeros_(module.conv2.weight)
            nn.init.zeros_(self.tail.weight)

    @property
    def alignment(self) -> int:
        """The network works on blocks of ``2**(scales - 1)`` pixels: tiles start on multiples of it."""
        return 2 ** (self.scales - 1)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel needs on every side (an upper bound, exact for aligned tiles).

        A 3x3 convolution at scale ``s`` adds ``2**s``; the transposed convolution into scale ``s`` adds ``2**s``
        (an output pixel's low-resolution parent covers pixels up to that far from it); a strided 2x2 convolution
        adds nothing beyond the block its output stands for.
        """
        radius = 2  # head and tail
        for s in range(self.scales - 1):
            radius += (4 * self.blocks + 1) * 2**s  # encoder and decoder blocks, and the way up
        return radius + 2 * self.blocks * 2 ** (self.scales - 1)  # the middle

    @staticmethod
    def macs_per_pixel(in_channels: int, out_channels: int, width: int, scales: int, blocks: int) -> float:
        """Multiply-adds per input pixel of the convolutions (a convolution at scale ``s`` runs on ``1/4**s``)."""
        macs = 9.0 * width * (in_channels + out_channels)
        for s in range(scales - 1):
            c = width * 2**s
            macs += 2 * blocks * 2 * 9 * c * c / 4**s  # encoder and decoder residual blocks
            macs += 2 * 4 * c * 2 * c / 4 ** (s + 1)  # strided down and transposed up, 2x2 each
        c = width * 2 ** (scales - 1)
        return macs + blocks * 2 * 9 * c * c / 4 ** (scales - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        a = self.alignment
        # always padded (by nothing when the sides are multiples already), so exports stay shape-generic
        y = self.head(F.pad(x, (0, (-width) % a, 0, (-height) % a), mode="replicate"))
        skips: list[torch.Tensor] = []
        for encoder in self.encoders:
            skip, y = encoder(y)
            skips.append(skip)
        y = self.middle(y)
        for decoder in self.decoders:
            y = decoder(y, skips.pop())
        return self.tail(y)[:, :, :height, :width]
