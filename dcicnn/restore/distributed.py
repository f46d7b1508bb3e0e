"""Restore many images on many devices: a Lightning ``predict`` over a list of jobs, each done on exactly one rank.

Lightning shards predict data over the ranks with its unrepeated sampler (no padding, so no image twice); each
rank runs the same per-image function as the single-device path (``process``: decode, ``DCICNN.restore``, write
atomically), so the outputs do not depend on the number of ranks. Jobs whose output exists are dropped before the
run (``pending``), so a killed run resumes without redoing finished images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dcicnn.errors import DcicnnError, one_line

__all__ = ["JobRunner", "RestoreDataModule", "RestoreJob", "pending"]

#: The network a run restores with (a ``DCICNN``; this module needs only a module Lightning can move).
Network = TypeVar("Network", bound=nn.Module)


class RestoreJob(NamedTuple):
    """One image to restore into ``target``: the file ``source``, or row ``row`` of a dataset. (A named tuple:
    Lightning moves batches through ``apply_to_collection``, which takes these and refuses frozen dataclasses.)"""

    target: Path
    source: Path | None = None
    row: int | None = None


def pending(jobs: Sequence[RestoreJob]) -> list[RestoreJob]:
    """The jobs whose output does not exist yet."""
    return [job for job in jobs if not job.target.exists()]


def _keep_list(batch: list[RestoreJob]) -> list[RestoreJob]:
    return batch


class _Jobs(Dataset[RestoreJob]):
    def __init__(self, jobs: Sequence[RestoreJob]) -> None:
        self.jobs = list(jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> RestoreJob:
        return self.jobs[index]


class RestoreDataModule(L.LightningDataModule):
    """The jobs of one restore run, for ``Trainer.predict`` (``batch_size`` jobs per step, done one by one: images
    differ in size)."""

    def __init__(self, jobs: Sequence[RestoreJob], batch_size: int = 1) -> None:
        super().__init__()
        self.jobs = list(jobs)
        self.batch_size = batch_size

    def predict_dataloader(self) -> DataLoader[Any]:
        return DataLoader(_Jobs(self.jobs), batch_size=self.batch_size, shuffle=False, collate_fn=_keep_list)


class JobRunner(L.LightningModule, Generic[Network]):
    """A predict step that runs ``process(job, network)`` for each job and returns nothing (no predictions pile up
    in memory). Lightning moves ``network`` to the rank's device. ``done`` and ``failed`` (``(job, reason)``) are
    this rank's; ``totals`` holds (done, failed) summed over all ranks once the run is over."""

    def __init__(self, network: Network, process: Callable[[RestoreJob, Network], None]) -> None:
        super().__init__()
        self.network = network
        self.process = process
        self.done = 0
        self.failed: list[tuple[RestoreJob, str]] = []
        self.totals = (0, 0)

    def predict_step(self, batch: list[RestoreJob], batch_idx: int) -> None:
        for job in batch:
            try:
                self.process(job, self.network)
                self.done += 1
            except (DcicnnError, OSError, ValueError) as err:  # this image's problem: note it, go on
                self.failed.append((job, one_line(err)))

    def on_predict_epoch_end(self) -> None:
        counts = torch.tensor([self.done, len(self.failed)], dtype=torch.long, device=self.device)
        summed = self.trainer.strategy.reduce(counts, reduce_op="sum")
        self.totals = (int(summed[0]), int(summed[1]))
