"""What bf16 inference costs in PSNR: the same model, fp32 vs bf16 autocast, on the same degraded images.

    python benchmarks/bf16_quality.py --model runs/hub --data ../shared/data/mcmaster

Prints, per protocol, the mean RGB PSNR of each dtype (outputs rounded to uint8, as `dcicnn evaluate` scores
them), the mean difference, and the largest per-pixel difference in 8-bit levels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dcicnn import DCICNN
from dcicnn.evaluate.evaluation import psnr
from dcicnn.train.degradations import apply_protocol, protocol_target
from dcicnn.train.sources import FolderSource

PROTOCOLS = ["jpeg-q10", "jpeg-q30", "noise-s25", "blur-s2+jpeg-q30", "mixed-light", "mixed-heavy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mcmaster"))
    parser.add_argument("--protocol", nargs="+", default=PROTOCOLS)
    args = parser.parse_args()
    model = DCICNN.from_pretrained(args.model)
    source = FolderSource(args.data)
    print(f"model: {args.model}; data: {args.data} ({len(source)} images)\n")
    print("| protocol | PSNR fp32 | PSNR bf16 | bf16 - fp32 (dB) | max pixel difference (8-bit levels) |")
    print("|---|---|---|---|---|")
    for protocol in args.protocol:
        scores: dict[str, list[float]] = {"fp32": [], "bf16": []}
        worst = 0.0
        for index in range(len(source)):
            image = source.load(index)
            clean = protocol_target(protocol, image).astype(np.float64)
            degraded = apply_protocol(protocol, image, key=source.key(index))
            outputs = {}
            for dtype in scores:
                out = np.clip(np.rint(model.restore(degraded, dtype=dtype) * 255.0), 0, 255)
                outputs[dtype] = out
                scores[dtype].append(psnr(out, clean))
            worst = max(worst, float(np.abs(outputs["fp32"] - outputs["bf16"]).max()))
        fp32, bf16 = np.mean(scores["fp32"]), np.mean(scores["bf16"])
        print(f"| {protocol} | {fp32:.3f} | {bf16:.3f} | {bf16 - fp32:+.3f} | {worst:.0f} |")


if __name__ == "__main__":
    main()
