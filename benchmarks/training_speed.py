"""Training throughput of `RestorationModule` on this machine, and the share of step time spent waiting for data.

Runs real `Trainer.fit` steps (default blind degradation, patch 64, batch 32) for each variant and reads Lightning's
SimpleProfiler: samples/s from the training-batch time, data wait from the time spent in the dataloader's `next`.

    python benchmarks/training_speed.py --data ../shared/data/bsds500/train --steps 30
    python benchmarks/training_speed.py --accelerator gpu --precision bf16-mixed    # on a GPU machine
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.profilers import SimpleProfiler

from dcicnn import DCICNN, DegradationDataModule
from dcicnn.train.module import RestorationModule

DATA_NEXT = "[_TrainingEpochLoop].train_dataloader_next"
BATCH = "run_training_batch"


def measure(args: argparse.Namespace, precision: str, batch_norm: bool, channels_last: bool) -> tuple[float, float]:
    L.seed_everything(0, verbose=False)
    data = DegradationDataModule(
        train_dirs=[str(args.data)],
        patch_size=args.patch,
        batch_size=args.batch,
        num_workers=args.workers,
        patches_per_image=64,
    )
    module = RestorationModule(
        DCICNN(width=64, depth=8, batch_norm=batch_norm), channels_last=channels_last, log_images=0
    )
    with tempfile.TemporaryDirectory() as tmp:
        profiler = SimpleProfiler(dirpath=tmp, filename="profile")  # its report goes to a file, not stdout
        trainer = L.Trainer(
            accelerator=args.accelerator,
            devices=1,
            precision=precision,
            max_steps=args.steps + args.warmup,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            profiler=profiler,
            default_root_dir=tmp,
        )
        trainer.fit(module, datamodule=data)
    batch = profiler.recorded_durations[BATCH][args.warmup :]
    wait = profiler.recorded_durations[DATA_NEXT][args.warmup : args.warmup + len(batch)]
    step = statistics.fmean(batch) + statistics.fmean(wait)
    return args.batch / step, statistics.fmean(wait) / step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/bsds500/train"))
    parser.add_argument("--steps", type=int, default=30, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="steps discarded first")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    print(
        f"device: {args.accelerator}; torch threads: {torch.get_num_threads()}; patch {args.patch}, "
        f"batch {args.batch}, loader workers {args.workers}, {args.steps} measured steps\n"
    )
    print("| precision | memory format | BatchNorm | samples/s | data wait share |")
    print("|---|---|---|---|---|")
    variants = [
        ("32-true", False, True),
        ("32-true", True, True),
        ("bf16-mixed", True, True),
        ("bf16-mixed", True, False),
    ]
    for precision, channels_last, batch_norm in variants:
        rate, wait = measure(args, precision, batch_norm, channels_last)
        layout = "channels-last" if channels_last else "contiguous"
        print(f"| {precision} | {layout} | {'yes' if batch_norm else 'no'} | {rate:.1f} | {wait:.1%} |")


if __name__ == "__main__":
    main()
