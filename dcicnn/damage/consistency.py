"""JPEG consistency: keep a restored JPEG within what its file allows.

A JPEG file says, for every 8x8 block and frequency of its luma, that the original image's DCT coefficient lay in one
quantisation bin: ``[(k - 1/2) q, (k + 1/2) q]``, ``k`` the stored integer, ``q`` the table's step. Those bins form a
convex set that contains the original (the quantisation constraint set of POCS deblocking, Zakhor 1992), and the
DCT is orthonormal, so clipping a restored image's luma coefficients into their bins is a projection onto that set:
it brings the luma closer to the original, whatever the network did. (Closer up to what the bins read from the
decoded pixels miss: libjpeg's integer transforms, rounding and pixels clipped at 0 or 255 put the original's
coefficient outside its bin by more than one level for about 0.1-0.8% of Kodak24's coefficients; the bins are
widened by one level.) It is what stops a network that mistakes fine periodic texture for blocking (the shutters of
Kodak's kodim07 lost 5 dB at q75) from harming a photo: its correction is cut back to what the file permits.

Applied to the luma (BT.601 as JPEG's YCbCr), by adding the same change to R, G and B, which leaves Cb and Cr as they
were; chroma, subsampled before its transform, is left as the network made it. Blocks cut by the image's edge, and
blocks with a decoded pixel at 0 or 255 (whose clipping hides where the coefficients were), are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dcicnn.damage.conditions import _DCT, LUMA_WEIGHTS, ijg_table

__all__ = ["JpegGrid", "project"]


@dataclass(frozen=True)
class JpegGrid:
    """Where a JPEG's blocks lie and how finely each frequency was quantised.

    Attributes:
        table: the luma quantisation table, 8x8 in natural order (0..255 pixel units).
        dy, dx: offset of the first whole block from the image's top-left corner (0, 0 for an uncropped file).
    """

    table: np.ndarray
    dy: int = 0
    dx: int = 0

    @classmethod
    def from_quality(cls, quality: int, dy: int = 0, dx: int = 0) -> JpegGrid:
        """The IJG (libjpeg) table of ``quality``, e.g. from the pixels' estimate or the user."""
        return cls(ijg_table(quality).astype(np.float64), dy % 8, dx % 8)

    @classmethod
    def from_file_table(cls, luma: object) -> JpegGrid | None:
        """A file's own luma table (Pillow's ``Image.quantization[0]``, natural order); ``None`` if it is not one."""
        values = np.asarray(luma, dtype=np.float64).ravel()
        return cls(values.reshape(8, 8)) if values.size == 64 and (values > 0).all() else None


def project(restored: torch.Tensor, degraded: torch.Tensor, grid: JpegGrid, slack: float = 1.0) -> torch.Tensor:
    """``restored`` with the luma DCT coefficients of every whole block clipped into the quantisation bin that
    ``degraded`` (the decoded JPEG) shows for it, widened by ``slack`` (pixel units).

    Both are ``(C, H, W)`` float tensors on the 0..1 scale, C = 3 (RGB) or 1 (gray: the luma itself). Returns a new
    tensor; ``restored`` is not modified.
    """
    if restored.shape != degraded.shape or restored.ndim != 3 or restored.shape[0] not in (1, 3):
        raise ValueError(f"expected two (1|3, H, W) images of one shape, got {restored.shape} and {degraded.shape}")
    _, h, w = restored.shape
    rows, cols = (h - grid.dy) // 8, (w - grid.dx) // 8
    out = restored.clone()
    if rows < 1 or cols < 1:
        return out
    dtype = torch.float64
    dct = torch.as_tensor(_DCT, dtype=dtype, device=restored.device)
    table = torch.as_tensor(grid.table, dtype=dtype, device=restored.device) / 255.0
    window = (slice(None), slice(grid.dy, grid.dy + rows * 8), slice(grid.dx, grid.dx + cols * 8))

    def luma(image: torch.Tensor) -> torch.Tensor:
        part = image[window].to(dtype)
        if part.shape[0] == 1:
            return part[0]
        r, g, b = LUMA_WEIGHTS
        return r * part[0] + g * part[1] + b * part[2]

    def blocks(plane: torch.Tensor) -> torch.Tensor:
        return plane.reshape(rows, 8, cols, 8).transpose(1, 2)

    ours = dct @ blocks(luma(restored)) @ dct.T
    coded = dct @ blocks(luma(degraded)) @ dct.T
    k = torch.round(coded / table)
    bound = slack / 255.0
    clipped = torch.minimum(torch.maximum(ours, (k - 0.5) * table - bound), (k + 0.5) * table + bound)
    # a decoded pixel clipped at 0 or 255 hides where the block's coefficients really were: leave such blocks be
    saturated = (degraded[window] <= 0.5 / 255) | (degraded[window] >= 254.5 / 255)
    clean_blocks = ~blocks(saturated.any(dim=0).to(dtype)).amax(dim=(2, 3)).bool()
    clipped = torch.where(clean_blocks[:, :, None, None], clipped, ours)
    change = (dct.T @ (clipped - ours) @ dct).transpose(1, 2).reshape(rows * 8, cols * 8)
    out[window] += change.to(out.dtype)  # the same change in R, G and B: Y moves by it, Cb and Cr do not
    return out
