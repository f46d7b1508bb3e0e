"""A grid of one photo restored at several strengths (`restore(..., strength=S)`), with each tile's PSNR against the
clean photo, for the README.

    python benchmarks/strength_grid.py -o docs/results/strength-grid.png
    python benchmarks/strength_grid.py --image ../shared/data/kodak24/kodim23.png --protocol jpeg-q20 --crop 192

The photo is degraded by an evaluation protocol (default: the bundled sample under `jpeg-q20`), restored with the
bundled weights (or `--model`), and shown as: degraded | strength 0.5 | 1.0 | 1.5 | 2.0 | clean, centre crop,
upscaled 2x without interpolation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dcicnn import DCICNN
from dcicnn.evaluate.evaluation import psnr
from dcicnn.imageio import levels, save_image_atomic
from dcicnn.train.degradations import apply_protocol, protocol_target

SAMPLE = Path(__file__).resolve().parents[1] / "dcicnn" / "assets" / "sample.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=SAMPLE)
    parser.add_argument("--protocol", default="jpeg-q20")
    parser.add_argument("--model", default=None, help="model directory or Hub id (default: the bundled weights)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--crop", type=int, default=160, help="side of the centre crop shown")
    parser.add_argument("-o", "--output", type=Path, default=Path("strength-grid.png"))
    args = parser.parse_args()

    model = DCICNN.from_pretrained(args.model) if args.model else DCICNN.from_pretrained()
    image = np.asarray(Image.open(args.image).convert("RGB"))
    clean = protocol_target(args.protocol, image)
    degraded = apply_protocol(args.protocol, image, key=args.image.name)
    tiles = [("input", levels(degraded))]
    for strength in args.strengths:
        restored = model.restore(degraded, strength=strength, dtype="fp32")
        tiles.append((f"strength {strength:g}", levels(restored)))
    tiles.append(("clean", clean))

    h, w = clean.shape[:2]
    side = min(args.crop, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    scale, label = 2, 18
    canvas = Image.new("RGB", (len(tiles) * side * scale, side * scale + label), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (name, tile) in enumerate(tiles):
        crop = Image.fromarray(np.ascontiguousarray(tile[top : top + side, left : left + side]).astype(np.uint8))
        canvas.paste(crop.resize((side * scale, side * scale), Image.Resampling.NEAREST), (i * side * scale, label))
        score = "" if name == "clean" else f" {psnr(tile, clean):.2f} dB"
        draw.text((i * side * scale + 4, 3), name + score, fill="black")
    save_image_atomic(canvas, args.output)
    print(f"wrote {args.output}: " + ", ".join(f"{n} {psnr(t, clean):.2f} dB" for n, t in tiles[:-1]))


if __name__ == "__main__":
    main()
