"""One digest of Pillow's JPEG encoder and decoder on Kodak24 at qualities 10-95: run it under two Pillow builds to
see whether they compress and decode identically (every JPEG protocol and figure here depends on the codec).

    python benchmarks/jpeg_codec_digest.py --data ../shared/data/kodak24

Prints Pillow's version, its libjpeg-turbo version and a SHA-256 over every encoded file and decoded image.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

from PIL import Image, features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/kodak24"))
    parser.add_argument("--qualities", type=int, nargs="+", default=[10, 20, 30, 50, 75, 90, 95])
    args = parser.parse_args()
    digest = hashlib.sha256()
    paths = sorted(args.data.glob("*.png"))
    for path in paths:
        image = Image.open(path).convert("RGB")
        for quality in args.qualities:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            digest.update(buffer.getvalue())
            digest.update(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").tobytes())
    print(
        f"Pillow {Image.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}: {len(paths)} images x "
        f"{len(args.qualities)} qualities, sha256 {digest.hexdigest()}"
    )


if __name__ == "__main__":
    main()
