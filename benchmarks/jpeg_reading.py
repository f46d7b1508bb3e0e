"""How well the pixels' JPEG reading (`jpeg_quality="auto"` on an array) finds the quality a photo was saved at.

    python benchmarks/jpeg_reading.py --data ../shared/data/mcmaster ../shared/data/kodak24
    python benchmarks/jpeg_reading.py --data DIR --qualities 85 90 95 --noise 2 --blur 1

Each image is saved by Pillow (4:2:0, its default) at each quality, decoded to an RGB array, and read as `restore()`
reads an array (`dcicnn.restore.policy.measure`: no file, so only the pixels speak). The clean image is read too
(it must read "not a JPEG"), and so are the clean image with Gaussian noise (`--noise`, sigma on 0..255) and blurred
(`--blur`, sigma in pixels): neither has a lattice. One row per case: how many images read exactly the saved quality,
within 2 of it, higher (less damage than there is: the taper then gives too little), lower, and "not a JPEG"; the
range read. The reading's errors matter most at 85-95, where the high-quality taper turns a quality into a
share of the correction.
"""

from __future__ import annotations

import argparse
import io
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from dcicnn.imageio import readable_extensions
from dcicnn.restore.policy import measure


def decoded_jpeg(image: Image.Image, quality: int) -> np.ndarray:
    """``image`` saved by Pillow as a JPEG of ``quality`` and decoded to a uint8 RGB array."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def read_quality(array: np.ndarray) -> int | None:
    """The JPEG quality ``restore(jpeg_quality="auto")`` acts on for this array; ``None``: not a JPEG."""
    tensor = torch.from_numpy(np.array(array)).permute(2, 0, 1).float()
    _, _, reading = measure(tensor, "auto", scale=255.0)
    return reading.used


def images(folders: list[Path]) -> list[Path]:
    """The readable images in ``folders``, sorted."""
    extensions = readable_extensions()
    found = [p for folder in folders for p in sorted(folder.iterdir()) if p.suffix.lower() in extensions]
    if not found:
        raise SystemExit(f"no images in {', '.join(map(str, folders))}")
    return found


def summarise(name: str, truth: int | None, readings: list[int | None]) -> str:
    """One table row for the readings of one case."""
    if truth is None:
        wrong = [r for r in readings if r is not None]
        counts = Counter(wrong)
        detail = ", ".join(f"q{q} x{n}" for q, n in sorted(counts.items())) or "-"
        return f"| {name} | {len(readings)} | {len(readings) - len(wrong)} not a JPEG | {detail} |"
    exact = sum(r == truth for r in readings)
    near = sum(r is not None and abs(r - truth) <= 2 for r in readings)
    higher = sum(r is not None and r > truth + 2 for r in readings)
    lower = sum(r is not None and r < truth - 2 for r in readings)
    missing = sum(r is None for r in readings)
    found = [r for r in readings if r is not None]
    span = f"read q{min(found)}-q{max(found)}" if found else "-"
    return (
        f"| {name} | {len(readings)} | exact {exact}, within 2 {near}, higher {higher}, lower {lower}, "
        f"none {missing} | {span} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="folders of clean images")
    parser.add_argument("--qualities", type=int, nargs="+", default=[30, 50, 75, 85, 88, 90, 92, 95, 97])
    parser.add_argument("--noise", type=float, nargs="*", default=[1.0, 2.0, 5.0])
    parser.add_argument("--blur", type=float, nargs="*", default=[1.0])
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    args = parser.parse_args()

    paths = images(args.data)
    if args.limit:
        paths = paths[: args.limit]
    rows: dict[str, tuple[int | None, list[int | None]]] = {}
    generator = np.random.default_rng(0)
    for path in paths:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        clean = np.asarray(image)
        rows.setdefault("clean", (None, []))[1].append(read_quality(clean))
        for sigma in args.noise:
            noisy = np.clip(clean + generator.normal(0.0, sigma, clean.shape), 0, 255).round().astype(np.uint8)
            rows.setdefault(f"clean + noise {sigma:g}", (None, []))[1].append(read_quality(noisy))
        for radius in args.blur:
            blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)))
            rows.setdefault(f"clean, blur {radius:g}", (None, []))[1].append(read_quality(blurred))
        for quality in args.qualities:
            rows.setdefault(f"q{quality}", (quality, []))[1].append(read_quality(decoded_jpeg(image, quality)))
    print(f"{len(paths)} images from {', '.join(map(str, args.data))}\n")
    print("| case | images | readings | range or misreadings |\n|---|---|---|---|")
    for name, (truth, readings) in rows.items():
        print(summarise(name, truth, readings))


if __name__ == "__main__":
    main()
