"""A photo saved twice off the grid (cropped between the saves): what to tell the network, the earlier save's quality
(what `restore` reads and acts on, without the consistency projection) or the last save's (the file's tables, with or
without projecting onto its bins)?

    python docs/experiments/offgrid_hint.py jpeg-q10+shift+q30 8      # protocol, number of Kodak24 images

Decided (2026-12-04, v4, 8 images): the earlier save's quality, without the projection, +0.93 dB; told the last
save's q30 with its bins +0.81, without them +0.74: `restore` keeps acting on the heavier save it reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dcicnn import DCICNN, apply_protocol, protocol_target
from dcicnn.damage.conditions import central_window, luma255
from dcicnn.damage.reading import read_jpeg
from dcicnn.evaluate.evaluation import psnr

KODAK = Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak24"


def main() -> None:
    protocol, count = sys.argv[1], int(sys.argv[2])
    model = DCICNN.from_pretrained()
    last = int(protocol.rsplit("q", 1)[1])
    settings = {
        "auto (as restore acts)": {},
        f"told q{last} + its bins": {"jpeg_quality": last},
        f"told q{last}, no projection": {"jpeg_quality": last, "jpeg_consistency": False},
    }
    gains: dict[str, list[float]] = {name: [] for name in settings}
    for path in sorted(KODAK.glob("*.png"))[:count]:
        clean = np.asarray(Image.open(path).convert("RGB"))
        degraded = np.clip(np.round(apply_protocol(protocol, clean, path.name) * 255), 0, 255).astype(np.uint8)
        target = protocol_target(protocol, clean)
        before = psnr(degraded, target)
        for name, options in settings.items():
            restored = np.asarray(model.restore(degraded, dtype="fp32", **options))
            gains[name].append(psnr(restored, target) - before)
        print(path.name, read_jpeg(central_window(luma255(degraded))).describe(), flush=True)
    for name, values in gains.items():
        print(f"{protocol} {name}: gain {np.mean(values):+.3f} dB, worst {np.min(values):+.3f}")


if __name__ == "__main__":
    main()
