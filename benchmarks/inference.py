"""Inference speed and memory of `DCICNN.restore` against image size, tiled vs whole-image, fp32 vs bf16.

Each case runs in a fresh process, so its peak RSS is its own. Prints a markdown table with megapixels/s, peak RSS,
peak RSS beyond the input and output buffers (flat if memory does not grow with the image), and the achieved FLOP/s
as a fraction of a large matmul of the same dtype measured in the same run (comparable across machines).

    python benchmarks/inference.py                        # CPU: 0.25, 1, 4, 12 and 24 MP
    python benchmarks/inference.py --device cuda --sizes 1 4 12 24 --compile off on --compile-sizes 4
    python benchmarks/inference.py --model docs/results/gpu-h200-wide --sizes 1 --dtypes bf16   # saved weights

On CUDA the table adds the peak GPU memory; ``--compile on`` runs ``restore(..., compile=True)`` (the warm-up call
pays the compilation; the timed calls reuse it).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dcicnn import DCICNN

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_flops(dtype: torch.dtype, device: str, n: int = 4096, reps: int = 5) -> float:
    """FLOP/s of an n x n x n matmul, best of ``reps``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = math.inf
    for _ in range(reps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def load(model: str | None) -> DCICNN:
    """The network to time: saved weights (a folder or Hub id), or the untrained default architecture."""
    return (DCICNN.from_pretrained(model) if model else DCICNN()).eval()


def describe(network: DCICNN) -> str:
    """The network's shape in a few words, e.g. ``width-64 depth-8 downscale-1`` or ``unet width-32 scales-3``."""
    if network.arch == "unet":
        return f"unet width-{network.width} scales-{network.scales} blocks-{network.blocks}"
    return f"width-{network.width} depth-{network.depth} downscale-{network.downscale}"


def run_case(
    megapixels: float,
    mode: str,
    dtype: str,
    device: str,
    tile: int,
    batch: int,
    compile: bool = False,
    model_path: str | None = None,
) -> dict[str, float]:
    """One measurement (in this process): restore a random uint8 RGB image of ``megapixels``."""
    model = load(model_path)
    height = int(round(math.sqrt(megapixels * 1e6 / 1.5)))
    width = int(round(height * 1.5))
    image = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    tile_size = max(height, width) if mode == "whole" else tile
    options = {"tile": tile_size, "batch_size": batch, "device": device, "dtype": dtype, "compile": compile}
    # warm-up (and compilation) on the shapes the timed calls use
    model.restore(image[: min(height, tile_size), : min(width, tile_size)], **options)
    reps = 3 if megapixels <= 1 else 1
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        model.restore(image, **options)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    pixels = height * width
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu_peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    return {
        "pixels": pixels,
        "seconds": best,
        "peak_rss": peak,
        "buffers": 2 * image.nbytes,
        "gpu_peak": gpu_peak,
        "flops": model.flops_per_pixel * pixels / best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1, 4, 12, 24], help="megapixels")
    parser.add_argument("--whole-max", type=float, default=4, help="largest size also run as one whole-image pass")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"], help="torch.compile")
    parser.add_argument("--compile-sizes", type=float, nargs="+", help="sizes also run compiled (default: all)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--model", help="weights to time (folder or Hub id; default: the untrained default network)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case and print JSON
    args = parser.parse_args()
    if args.case:
        size, mode, dtype, compiled = args.case.split(",")
        result = run_case(
            float(size), mode, dtype, args.device, args.tile, args.batch_size, compiled == "on", args.model
        )
        print(json.dumps(result))
        return

    reference = {name: matmul_flops(dtype, args.device) for name, dtype in DTYPES.items() if name in args.dtypes}
    cpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "CPU"
    if args.device == "cpu" and Path("/proc/cpuinfo").exists():
        names = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    network = load(args.model)
    print(
        f"device: {args.device} ({cpu}); torch {torch.__version__}, {torch.get_num_threads()} threads; tile "
        f"{args.tile}, batch {args.batch_size}; {args.model or 'untrained'}: {describe(network)} DCI-CNN, "
        f"{network.flops_per_pixel / 1e6:.3f} MFLOP/pixel, tile overlap {network.receptive_radius}"
    )
    print("matmul 4096^3: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in reference.items()) + "\n")
    cuda = args.device.startswith("cuda")
    gpu_column = " peak GPU memory (MB) |" if cuda else ""
    header = f"| MP | mode | dtype | compile | MP/s | peak RSS (MB) | RSS beyond buffers (MB) |{gpu_column} GFLOP/s |"
    print(header + " of matmul |")
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if cuda else ""))
    cases = [
        (size, mode, dtype, compiled)
        for compiled in args.compile
        for size in (args.sizes if compiled == "off" or not args.compile_sizes else args.compile_sizes)
        for mode in (("tiled", "whole") if size <= args.whole_max else ("tiled",))
        for dtype in args.dtypes
    ]
    for size, mode, dtype, compiled in cases:
        command = [
            sys.executable,
            __file__,
            "--case",
            f"{size},{mode},{dtype},{compiled}",
            "--device",
            args.device,
            "--tile",
            str(args.tile),
            "--batch-size",
            str(args.batch_size),
            *(["--model", args.model] if args.model else []),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        gpu = f" {r['gpu_peak'] / 2**20:.0f} |" if cuda else ""
        print(
            f"| {size:g} | {mode} | {dtype} | {compiled} | {r['pixels'] / r['seconds'] / 1e6:.3f} | "
            f"{r['peak_rss'] / 2**20:.0f} | {(r['peak_rss'] - r['buffers']) / 2**20:.0f} |{gpu} "
            f"{r['flops'] / 1e9:.1f} | {r['flops'] / reference[dtype]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
