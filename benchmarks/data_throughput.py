"""Can the data pipeline keep the model fed? Pair generation per CPU core vs. the model's training step per sample.

Prints a markdown table: for patch sizes 64/128/256, training pairs per second made by one process (decode, crop,
flip, blur/noise/JPEG with the default blind distribution), and the model's training step time per sample on this
CPU (fp32, and bf16 autocast + channels-last where supported). ``workers needed`` is how many loader processes keep
one training process busy; for a GPU, divide its samples/s by the per-core figure.

    python benchmarks/data_throughput.py --data ../shared/data/bsds500/train
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from dcicnn import DCICNN, Degradation
from dcicnn.train.data import TrainPatches
from dcicnn.train.sources import FolderSource, InMemorySource


def pairs_per_second(dataset: TrainPatches, seconds: float) -> float:
    torch.manual_seed(0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dataset[count % len(dataset)]
        count += 1
    return count / (time.perf_counter() - start)


def step_seconds_per_sample(patch: int, batch: int, bf16: bool, steps: int) -> float:
    model = DCICNN().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, patch, patch)
    y = torch.rand(batch, 3, patch, patch)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.mse_loss(model(x).float(), y)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / (steps * batch)


def workers(step_seconds: float, pairs_per_core: float) -> str:
    """Loader processes needed to make pairs as fast as one training process consumes them."""
    return f"{1.0 / (step_seconds * pairs_per_core):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bsds500/train"))
    parser.add_argument("--seconds", type=float, default=5.0, help="time spent measuring each pipeline")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(os.cpu_count() or 1)
    source = FolderSource(args.data)
    bf16_ok = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(
        f"images: {len(source)} from {args.data}; torch threads: {torch.get_num_threads()}; "
        f"bf16 on CPU: {'yes' if bf16_ok else 'no'}\n"
    )
    cached = InMemorySource(source)  # `data.cache_images`: decoded once instead of once per pair
    print(
        "| patch | pairs/s per core | in memory | step ms/sample fp32 | workers for fp32 | step ms/sample bf16+CL "
        "| workers for bf16 |"
    )
    print("|---|---|---|---|---|---|---|")
    for patch in (64, 128, 256):
        torch.set_num_threads(1)
        rate = pairs_per_second(TrainPatches(source, patch, Degradation()), args.seconds)
        in_memory = pairs_per_second(TrainPatches(cached, patch, Degradation()), args.seconds)
        torch.set_num_threads(os.cpu_count() or 1)
        fp32 = step_seconds_per_sample(patch, args.batch, False, args.steps)
        bf16 = step_seconds_per_sample(patch, args.batch, True, args.steps) if bf16_ok else float("nan")
        print(
            f"| {patch} | {rate:.0f} | {in_memory:.0f} | {fp32 * 1e3:.2f} | {workers(fp32, rate)} | {bf16 * 1e3:.2f} "
            f"| {workers(bf16, rate)} |"
        )


if __name__ == "__main__":
    main()
