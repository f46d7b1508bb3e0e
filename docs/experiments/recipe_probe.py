"""Probe a blind training recipe in minutes: train a few hundred steps, print McMaster PSNR gains as it goes.

    python docs/experiments/recipe_probe.py --mix independent --steps 900   # configs/blind.yaml before: one
                                                                           # Degradation, independent stages
    python docs/experiments/recipe_probe.py --mix mixture --steps 900       # configs/blind.yaml's DegradationMix
    python docs/experiments/recipe_probe.py --mix mixture --steps 900 --dilated  # with dilation 1-2-3-4-4-3-2-1

A bare training loop (Adam, bf16 autocast, channels-last, gradient clipping 1.0, batch 32 of 64x64 BSDS500 crops,
constant learning rate) over the package's own data pipeline, network and losses, so that recipes can be ranked
before a long `dcicnn fit`. Every ``--eval-every`` steps it restores the top-left 256x256 crop of every McMaster
image under six protocols and prints mean RGB PSNR (gain over the degraded input). Short runs rank how fast a
recipe learns, not where it ends.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from dcicnn import DCICNN, Degradation, DegradationMix, apply_protocol
from dcicnn.evaluate.evaluation import psnr
from dcicnn.train.data import TrainPatches
from dcicnn.train.module import LOSSES
from dcicnn.train.sources import FolderSource

PROTOCOLS = ["jpeg-q10", "noise-s25", "blur-s2+jpeg-q30", "mixed-heavy", "mixed-light"]
TRAIN = ["../shared/data/bsds500/train", "../shared/data/bsds500/test"]


def blind_mix() -> Degradation | DegradationMix:
    """The degradation of configs/blind.yaml, built by the same LightningCLI `dcicnn fit` uses."""
    from dcicnn_cli.train import build

    cli = build(["--config", "configs/default.yaml", "--config", "configs/blind.yaml"], run=False)
    return cli.datamodule.degradation


def mixes() -> dict[str, Degradation | DegradationMix]:
    return {
        # the blind mix of the interim weights (one distribution, every stage drawn independently)
        "independent": Degradation(
            blur_prob=0.4,
            blur_sigma=(0.3, 2.0),
            noise_prob=0.5,
            noise_sigma=(1.0, 30.0),
            jpeg_prob=0.7,
            jpeg_quality=(10, 90),
        ),
        "mixture": blind_mix(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mix", choices=["independent", "mixture"], default="mixture")
    parser.add_argument("--dilated", action="store_true", help="dilation 1-2-3-4-4-3-2-1 (receptive field 41)")
    parser.add_argument("--bn", action="store_true", help="BatchNorm after each hidden convolution")
    parser.add_argument("--loss", choices=sorted(LOSSES), default="mse")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--eval-every", type=int, default=300)
    parser.add_argument("--val", type=Path, default=Path("../shared/data/mcmaster"))
    args = parser.parse_args()

    torch.manual_seed(0)
    data = TrainPatches(FolderSource(TRAIN), patch_size=64, degradation=mixes()[args.mix], patches_per_image=16)
    loader = torch.utils.data.DataLoader(
        data, batch_size=32, shuffle=True, num_workers=1, drop_last=True, persistent_workers=True
    )
    dilation = [1, 2, 3, 4, 4, 3, 2, 1] if args.dilated else None
    model = DCICNN(batch_norm=args.bn, dilation=dilation).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = LOSSES[args.loss]

    clean = [np.asarray(Image.open(f).convert("RGB"))[:256, :256] for f in sorted(args.val.iterdir())]
    degraded = {p: [apply_protocol(p, c, f"{p}-{i}") for i, c in enumerate(clean)] for p in PROTOCOLS}

    def evaluate() -> str:
        model.eval()
        cells = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for protocol in PROTOCOLS:
                before, after = [], []
                for target, inp in zip(clean, degraded[protocol], strict=True):
                    x = torch.from_numpy(np.ascontiguousarray(inp)).permute(2, 0, 1)[None].float()
                    out = model(x).float().clamp(0, 1)[0].permute(1, 2, 0).numpy()
                    after.append(psnr(np.rint(out * 255), target))
                    before.append(psnr(np.clip(inp, 0, 1) * 255, target))
                cells.append(f"{protocol} {np.mean(after):.2f} ({np.mean(after) - np.mean(before):+.2f})")
        model.train()
        return " | ".join(cells)

    print(f"mix={args.mix} dilated={args.dilated} bn={args.bn} loss={args.loss} lr={args.lr}", flush=True)
    step, start = 0, time.perf_counter()
    while step < args.steps:
        for x, y, _ in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x.contiguous(memory_format=torch.channels_last))
            loss = loss_fn(out.float(), y)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            step += 1
            if step % args.eval_every == 0:
                print(f"step {step} ({time.perf_counter() - start:.0f} s): {evaluate()}", flush=True)
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
