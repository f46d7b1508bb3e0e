"""Can a pixel-unshuffled DCI-CNN learn JPEG deblocking as fast as the plain one? A small, isolated probe.

    python docs/experiments/unshuffle_jpeg_probe.py

Trains DCICNN(width=32, depth=6) and the same with downscale=2 for 300 Adam steps (lr 1e-3, batches of 16 crops of
64 x 64 from 60 BSDS500 training photos, JPEG q10 through Pillow, fp32, the same crops for both) and prints the
PSNR of 64 further such crops before and after each network. Used to tell a broken code path (no gain at all) from slow
learning (a smaller gain) when configs/v3-wide.yaml learned no JPEG in 4,000 steps.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcicnn import DCICNN

BSDS = Path(__file__).resolve().parents[3] / "shared" / "data" / "bsds500" / "train"


def crops(images: list[np.ndarray], rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random 64 x 64 crops, saved at JPEG q10 (degraded) and as they were (clean), on the 0..1 scale."""
    degraded, clean = [], []
    for _ in range(n):
        image = images[rng.integers(len(images))]
        y, x = rng.integers(0, image.shape[0] - 64), rng.integers(0, image.shape[1] - 64)
        crop = image[y : y + 64, x : x + 64]
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=10)
        degraded.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
        clean.append(crop)
    return tuple(torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255 for a in (degraded, clean))  # type: ignore[return-value]


def psnr(output: torch.Tensor, clean: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((output.clamp(0, 1) - clean) ** 2).mean()))


def main() -> None:
    rng = np.random.default_rng(0)
    images = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(BSDS.iterdir())[:60]]
    val_degraded, val_clean = crops(images, rng, 64)
    print(f"JPEG q10 crops: input {psnr(val_degraded, val_clean):.3f} dB")
    for downscale in (1, 2):
        torch.manual_seed(0)
        batches = np.random.default_rng(1)  # the same training crops for both networks
        net = DCICNN(width=32, depth=6, batch_norm=False, downscale=downscale)
        optimiser = torch.optim.Adam(net.parameters(), 1e-3)
        for _ in range(300):
            degraded, clean = crops(images, batches, 16)
            loss = ((net(degraded) - clean) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            print(f"downscale={downscale}: after 300 steps {psnr(net(val_degraded), val_clean):.3f} dB")


if __name__ == "__main__":
    main()
