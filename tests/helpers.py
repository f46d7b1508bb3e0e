"""Test helpers: the model variants every model-level test runs over, and the callbacks the training tests load into
`dcicnn fit` subprocesses (``--trainer.callbacks+=tests.helpers...``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from dcicnn import DCICNN

#: Every network configuration the package supports, for tests to parametrise over (spandrel/timm style). A new
#: network option gets a row here, and with it the round-trip, fusion and tiling tests.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},  # residual, BatchNorm: the paper's layers with DnCNN's residual output
    "paper": {"residual": False},  # the paper's direct mapping
    "no-batchnorm": {"batch_norm": False},  # the bundled default's configuration
    "dilated": {"dilation": [1, 2, 3, 2, 1]},
    "gray": {"in_channels": 1},
    "conditioned": {"conditions": ["jpeg", "noise"]},  # told the JPEG quality and noise level (issue 12)
    "unshuffled": {"downscale": 2},  # convolutions at half resolution, FFDNet style
    "unshuffled-conditioned": {"downscale": 2, "conditions": ["jpeg", "noise"], "batch_norm": False},
    "unet": {"arch": "unet", "scales": 3, "blocks": 1},  # the multi-scale member (issue 22)
    "unet-conditioned": {"arch": "unet", "scales": 2, "blocks": 2, "conditions": ["jpeg", "noise"]},
    "unet-gray-direct": {"arch": "unet", "scales": 4, "blocks": 1, "in_channels": 1, "residual": False},
}


def variant(name: str, width: int = 8, depth: int = 5, seed: int = 0) -> DCICNN:
    """A small network of one of ``VARIANTS`` with random weights and non-trivial BatchNorm statistics, in eval mode.
    A U-Net (which has no ``depth``) gets random weights everywhere: a new one starts as the identity."""
    torch.manual_seed(seed)
    settings = VARIANTS[name]
    if settings.get("arch") == "unet":
        model = DCICNN(width=width, **settings)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0.0, 0.5 / max(1, parameter[0].numel()) ** 0.5 if parameter.ndim > 1 else 0.05)
        return model.eval()
    return randomise_batchnorm(DCICNN(width=width, depth=depth, **settings), seed)


def randomise_batchnorm(model: DCICNN, seed: int = 0) -> DCICNN:
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def optimizer_digest(state_dict: dict[str, Any]) -> str:
    """A hash of every tensor in an optimiser state dict: equal digests mean an identical Adam state."""
    digest = hashlib.sha256()
    for index in sorted(state_dict["state"]):
        state = state_dict["state"][index]
        for key in sorted(state):
            value = state[key]
            digest.update(
                value.detach().float().cpu().numpy().tobytes() if torch.is_tensor(value) else str(value).encode()
            )
    return digest.hexdigest()


class RecordStart(L.Callback):
    """Writes the global step and an optimiser-state digest when training starts (after any resume)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.write_text(
            json.dumps(
                {"global_step": trainer.global_step, "optimizer": optimizer_digest(trainer.optimizers[0].state_dict())}
            )
        )


class RecordBatches(L.Callback):
    """Appends, per rank, the mean colour of every clean training patch (the test images are flat colours)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        _, clean, _ = batch
        colours = [round(float(c[0].mean()) * 255) for c in clean]
        with (self.directory / f"rank{trainer.global_rank}.txt").open("a") as handle:
            handle.write("".join(f"{c}\n" for c in colours))
