"""What a fraction of the correction is worth on high-quality JPEGs: the figures behind `high_quality_taper`.

    python benchmarks/taper_probe.py                        # McMaster, q85/q90/q95, file and pixel modes
    python benchmarks/taper_probe.py --data ../shared/data/mcmaster --qualities 88 92 --modes file
    python benchmarks/taper_probe.py --qualities 90 95 97 --strengths --tapers 85,98 85,100

Each image is saved by Pillow as a JPEG of each quality and restored by the bundled default (or `--model`) as a
user's call does: `[file]` passes the opened file (its tables give the quality and grid), `[auto]` its decoded
array (the quality read from the pixels). Rows: the taper off at several strengths, then the weights' own taper
(`Tuning.high_quality_taper`) and any `--tapers` to compare. Columns: mean and worst change in RGB PSNR over the
decoded JPEG, in dB. Choose the taper on a validation set (McMaster),
never on Kodak24, which the model card reports once.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from dcicnn import DCICNN, RestoreOptions
from dcicnn.evaluate.evaluation import psnr
from dcicnn.imageio import readable_extensions

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mcmaster"


def saved(image: Image.Image, quality: int) -> Image.Image:
    """``image`` saved by Pillow as a JPEG of ``quality`` (4:2:0, its default) and opened again."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    opened = Image.open(io.BytesIO(buffer.getvalue()))
    opened.load()
    return opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="weights (default: the bundled default)")
    parser.add_argument("--qualities", type=int, nargs="+", default=[85, 90, 95])
    parser.add_argument("--modes", nargs="+", choices=["file", "auto"], default=["file", "auto"])
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.25])
    parser.add_argument(
        "--tapers",
        nargs="*",
        default=[],
        metavar="FULL,OFF",
        help="tapers to compare at strength 1 beside the weights' own (e.g. 85,98 85,100)",
    )
    parser.add_argument("--dtype", default="bf16")
    args = parser.parse_args()
    model = DCICNN.from_pretrained(args.model) if args.model else DCICNN.from_pretrained()
    extensions = readable_extensions()
    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in extensions)
    settings = [
        (f"strength {s:g}, taper off", RestoreOptions(dtype=args.dtype, strength=s, high_quality_taper=None))
        for s in args.strengths
    ]
    settings.append(
        (f"strength 1, the weights' taper {model.tuning.high_quality_taper}", RestoreOptions(dtype=args.dtype))
    )
    for text in args.tapers:
        full, off = (int(v) for v in text.split(","))
        settings.append(
            (f"strength 1, taper ({full}, {off})", RestoreOptions(dtype=args.dtype, high_quality_taper=(full, off)))
        )
    print(f"{args.data.name}, {len(files)} images; change in RGB PSNR over the decoded JPEG (dB)\n")
    print("| quality | mode | setting | mean | worst |")
    print("|---|---|---|---|---|")
    cleans = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    for quality in args.qualities:
        jpegs = [saved(Image.fromarray(clean), quality) for clean in cleans]
        for mode in args.modes:
            for label, options in settings:
                gains = []
                for clean, jpeg in zip(cleans, jpegs, strict=True):
                    decoded = np.asarray(jpeg.convert("RGB"))
                    restored = np.asarray(model.restore(jpeg if mode == "file" else decoded, options=options))
                    gains.append(psnr(restored, clean) - psnr(decoded, clean))
                print(f"| q{quality} | [{mode}] | {label} | {np.mean(gains):+.3f} | {np.min(gains):+.3f} |", flush=True)


if __name__ == "__main__":
    main()
