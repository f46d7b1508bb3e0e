"""What a conditioned model adds to a restore: measuring the damage once per image (JPEG quality from the pixels, noise
level) and three more input channels, beside the network's own time, per image size.

    python benchmarks/condition_cost.py                       # bundled weights, 0.4 / 1 / 4 / 12 MP
    python benchmarks/condition_cost.py --model runs/v3/hub --sizes 1 24

Prints, per size: the time of `image_damage` (what `restore` measures before tiling), of a whole `restore`, and the
share of the first in the second; and the FLOPs per pixel of the network.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np
import torch

from dcicnn import DCICNN
from dcicnn.restore.policy import image_damage
from dcicnn.train.degradations import jpeg


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory or Hub id (default: the bundled weights)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.4, 1, 4, 12], help="megapixels (3:2 images)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = DCICNN.from_pretrained(args.model) if args.model else DCICNN.from_pretrained()
    print(
        f"conditions {list(model.spec.conditions) or 'none (blind)'}, {model.flops_per_pixel:,} FLOPs per pixel, "
        f"{torch.get_num_threads()} threads"
    )
    print("| megapixels | measuring the damage (s) | restore (s) | share |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for mp in args.sizes:
        height = int(round((mp * 1e6 / 1.5) ** 0.5))
        width = int(round(height * 1.5))
        smooth = np.cumsum(rng.normal(0, 2, (height, width, 3)), axis=1) % 255  # textured, compressible content
        image = jpeg(smooth.astype(np.uint8), 60)
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)
        measure = best_of(functools.partial(image_damage, tensor, "auto", scale=255.0), args.repeats)
        model.restore(image[:64, :64])  # warm the prepared network
        whole = best_of(functools.partial(model.restore, image), args.repeats)
        print(f"| {height * width / 1e6:.1f} | {measure:.3f} | {whole:.3f} | {measure / whole:.0%} |")


if __name__ == "__main__":
    main()
