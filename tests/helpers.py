"""Callbacks the training tests load into `dcicnn fit` subprocesses (``--trainer.callbacks+=tests.helpers...``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch


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
        _, clean = batch
        colours = [round(float(c[0].mean()) * 255) for c in clean]
        with (self.directory / f"rank{trainer.global_rank}.txt").open("a") as handle:
            handle.write("".join(f"{c}\n" for c in colours))
