"""``dcicnn demo``: damage the bundled sample photo, restore it, and write a before/after comparison."""

from __future__ import annotations

import argparse
import importlib.resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from dcicnn.errors import InvalidArgumentError
from dcicnn.imageio import image_to_uint8, save_image_atomic
from dcicnn.train.degradations import jpeg
from dcicnn_cli.restore import load_model_source

SAMPLE = "sample.png"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="restore the bundled sample photo and write a before/after comparison",
        description="Compress the bundled sample photo (a crop of Kodak image 23) as JPEG (Pillow, 4:2:0), "
        "restore it with the bundled default weights (or --model), print PSNRs and write degraded.png, "
        "restored.png, clean.png and comparison.png.",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="output directory")
    parser.add_argument("--model", help="weights: a bundled name (`dcicnn models`), a directory or a Hub repo id "
        "(default: default)")
    parser.add_argument("--quality", type=int, default=20, help="JPEG quality of the damaged input (1-95)")
    parser.set_defaults(run=run)


def sample_photo(mode: str = "RGB") -> Image.Image:
    """The bundled sample photo (a 384 x 256 crop of Kodak image 23), decoded, in ``mode``."""
    with (
        importlib.resources.files("dcicnn").joinpath("assets").joinpath(SAMPLE).open("rb") as file,
        Image.open(file) as sample,
    ):
        return sample.convert(mode)


def run(args: argparse.Namespace) -> int:
    from dcicnn.evaluate.evaluation import psnr

    if not 1 <= args.quality <= 95:
        raise InvalidArgumentError(f"--quality must be in 1..95, got {args.quality}")
    clean = sample_photo()
    degraded = Image.fromarray(jpeg(image_to_uint8(clean), args.quality))
    model = load_model_source(args.model, None)
    label = args.model or "bundled default weights (dcicnn/pretrained/default)"
    restored = model.restore(degraded)

    args.output.mkdir(parents=True, exist_ok=True)
    for name, image in (("clean", clean), ("degraded", degraded), ("restored", restored)):
        save_image_atomic(image, args.output / f"{name}.png")
    psnr_in, psnr_out = (psnr(np.asarray(image), np.asarray(clean)) for image in (degraded, restored))
    save_image_atomic(
        _side_by_side(
            [
                (degraded, f"JPEG q{args.quality}: {psnr_in:.2f} dB"),
                (restored, f"restored: {psnr_out:.2f} dB"),
                (clean, "clean"),
            ]
        ),
        args.output / "comparison.png",
    )
    print(f"model: {label}")
    print(
        f"PSNR vs clean  JPEG q{args.quality} input: {psnr_in:.2f} dB  restored: {psnr_out:.2f} dB "
        f"({psnr_out - psnr_in:+.2f} dB)"
    )
    print(f"wrote {args.output / 'comparison.png'} (degraded | restored | clean) and the three images beside it")
    return 0


def _side_by_side(panels: list[tuple[Image.Image, str]], gap: int = 8, caption: int = 22) -> Image.Image:
    width = sum(p.width for p, _ in panels) + gap * (len(panels) - 1)
    height = max(p.height for p, _ in panels) + caption
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for panel, text in panels:
        canvas.paste(panel, (x, caption))
        draw.text((x + 4, 4), text, fill="black")
        x += panel.width + gap
    return canvas
