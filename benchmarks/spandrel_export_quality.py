"""What chaiNNer / ComfyUI users get from `dcicnn export --format spandrel`: PSNR on JPEG-compressed images of the
network exported at a JPEG quality (the condition folded into its weights, run as spandrel runs DnCNN: zero-padded,
fp32, clamped to 0..1), against the full `DCICNN.restore` (which reads each file's quality, projects onto its JPEG
bins, and tapers above q85) and the input.

    python benchmarks/spandrel_export_quality.py --data ../shared/data/kodak24 --qualities 10 30 75 90

Columns: `restore()` with the file's quality; the export folded at the image's own quality (what a user who knows
their JPEGs' quality exports); the export folded with the quality withheld (`--jpeg-quality none`: one file for all
JPEGs); and the export at q30 applied to every quality (one file, a typical choice, mismatched elsewhere).
Mean RGB PSNR (dB) over the images, on 8-bit outputs.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcicnn import DCICNN
from dcicnn.damage.conditions import condition_vector
from dcicnn.evaluate.evaluation import psnr
from dcicnn.export.spandrel import fold_condition


def run_folded(network: DCICNN, pixels: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float().div(255)
    with torch.inference_mode():
        y = network(x).clamp(0, 1)
    return (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/kodak24"))
    parser.add_argument("--model", default=None, help="a conditioned model (default: the bundled default)")
    parser.add_argument("--qualities", type=int, nargs="+", default=[10, 30, 75, 90])
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    args = parser.parse_args()
    model = DCICNN.from_pretrained(args.model)
    fixed = {
        "none": fold_condition(model, condition_vector(model.conditions, jpeg_quality=None)),
        30: fold_condition(model, condition_vector(model.conditions, jpeg_quality=30)),
    }
    paths = sorted(args.data.glob("*.png"))[: args.limit or None]
    print(f"{len(paths)} images of {args.data}; model {args.model or 'bundled default'}; fp32\n")
    print("| JPEG | input | `restore()` (file's quality) | export at that quality | export `none` | export q30 |")
    print("|---|---|---|---|---|---|")
    for quality in args.qualities:
        at_quality = fold_condition(model, condition_vector(model.conditions, jpeg_quality=quality))
        rows = []
        for path in paths:
            clean = np.asarray(Image.open(path).convert("RGB"))
            buffer = io.BytesIO()
            Image.fromarray(clean).save(buffer, "JPEG", quality=quality)
            decoded = Image.open(io.BytesIO(buffer.getvalue()))
            decoded.load()
            degraded = np.asarray(decoded.convert("RGB"))
            restored = np.asarray(model.restore(decoded, dtype="fp32"))
            rows.append(
                [
                    psnr(degraded, clean),
                    psnr(restored, clean),
                    psnr(run_folded(at_quality, degraded), clean),
                    psnr(run_folded(fixed["none"], degraded), clean),
                    psnr(run_folded(fixed[30], degraded), clean),
                ]
            )
        means = np.mean(rows, axis=0)
        print(f"| q{quality} | " + " | ".join(f"{m:.2f}" for m in means) + " |", flush=True)


if __name__ == "__main__":
    main()
