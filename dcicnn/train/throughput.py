"""``TrainingThroughput``: how fast a run trains and whether the accelerator waits for data.

Lightning's ``ThroughputMonitor`` counts samples per second; a restoration run also needs pixels per second (patch
sizes differ between recipes), the share of wall time the training process spends outside the training step
(waiting for the loader workers, mostly) and the GPU's utilisation, written where a batch job can pick them up.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from dcicnn.errors import InvalidArgumentError

__all__ = ["TrainingThroughput"]

log = logging.getLogger(__name__)


class TrainingThroughput(L.Callback):
    """Measures training throughput after a warm-up and logs it; writes a JSON summary at the end of ``fit``.

    Per window of ``log_every_n_steps`` steps it logs ``speed/patches_per_s``, ``speed/megapixels_per_s``,
    ``speed/data_wait`` (the share of wall time between the end of one training step and the start of the next:
    fetching the batch, plus Lightning's own bookkeeping) and, on CUDA, ``speed/gpu_util`` (NVML's utilisation, in
    percent, sampled about once a second). Validation time is excluded. Figures are per process; the summary
    multiplies patches and pixels by the world size.

    Args:
        warmup_steps: steps ignored at the start (loader workers starting, cuDNN choosing kernels).
        summary_path: where the JSON summary is written (``None``: ``<trainer log_dir>/throughput.json``).
    """

    def __init__(self, warmup_steps: int = 20, summary_path: str | None = None) -> None:
        if warmup_steps < 0:
            raise InvalidArgumentError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.summary_path = summary_path
        self._reset_totals()

    def _reset_totals(self) -> None:
        self.steps = 0
        self.patches = 0
        self.pixels = 0
        self.step_seconds = 0.0
        self.wait_seconds = 0.0
        self.gpu_samples: list[float] = []
        self._window = [0, 0, 0.0, 0.0]  # patches, pixels, step seconds, wait seconds
        self._seen = 0
        self._last_end: float | None = None
        self._start: float | None = None
        self._last_gpu_sample = 0.0

    # ------------------------------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset_totals()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._seen >= self.warmup_steps and self._last_end is not None:
            wait = now - self._last_end
            self.wait_seconds += wait
            self._window[3] += wait
        self._start = now

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self._seen += 1
        if self._seen > self.warmup_steps and self._start is not None:
            inputs = batch[0]
            patches = int(inputs.shape[0])
            pixels = patches * int(inputs.shape[-1]) * int(inputs.shape[-2])
            seconds = now - self._start
            self.steps += 1
            self.patches += patches
            self.pixels += pixels
            self.step_seconds += seconds
            self._window[0] += patches
            self._window[1] += pixels
            self._window[2] += seconds
            if now - self._last_gpu_sample >= 1.0:
                self._last_gpu_sample = now
                utilisation = _gpu_utilisation(pl_module.device)
                if utilisation is not None:
                    self.gpu_samples.append(utilisation)
            # set by the Trainer at run time (not a declared attribute)
            if self._seen % max(1, int(getattr(trainer, "log_every_n_steps", 50))) == 0:
                self._log_window(pl_module)
        self._last_end = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = None  # validation is not data wait

    def _log_window(self, pl_module: L.LightningModule) -> None:
        patches, pixels, step, wait = self._window
        wall = step + wait
        if wall > 0:
            values = {
                "speed/patches_per_s": patches / wall,
                "speed/megapixels_per_s": pixels / wall / 1e6,
                "speed/data_wait": wait / wall,
            }
            if self.gpu_samples:
                values["speed/gpu_util"] = self.gpu_samples[-1]
            pl_module.log_dict(values, on_step=True, on_epoch=False)
        self._window = [0, 0, 0.0, 0.0]

    # ------------------------------------------------------------------------------------------------------------------
    def summary(self, world_size: int = 1) -> dict[str, Any]:
        """The measured figures since the warm-up, as a JSON-ready dict."""
        wall = self.step_seconds + self.wait_seconds
        rate = (lambda count: count * world_size / wall) if wall > 0 else (lambda count: math.nan)
        return {
            "steps_measured": self.steps,
            "warmup_steps": self.warmup_steps,
            "world_size": world_size,
            "patches_per_s": rate(self.patches),
            "megapixels_per_s": rate(self.pixels) / 1e6,
            "data_wait_share": self.wait_seconds / wall if wall > 0 else math.nan,
            "step_ms": 1000 * self.step_seconds / self.steps if self.steps else math.nan,
            "gpu_util_mean": sum(self.gpu_samples) / len(self.gpu_samples) if self.gpu_samples else None,
            "gpu_util_samples": len(self.gpu_samples),
            "device": _device_name(),
        }

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # `trainer.log_dir` is a collective call under DDP: every rank asks, rank zero writes.
        root = trainer.log_dir or trainer.default_root_dir
        self._write(trainer, Path(self.summary_path) if self.summary_path else Path(root) / "throughput.json")

    @rank_zero_only
    def _write(self, trainer: L.Trainer, path: Path) -> None:
        summary = self.summary(trainer.world_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
        log.info(
            "training throughput: %.0f patches/s, %.1f megapixels/s, data wait %.1f%%, GPU utilisation %s (%s)",
            summary["patches_per_s"],
            summary["megapixels_per_s"],
            100 * summary["data_wait_share"],
            "n/a" if summary["gpu_util_mean"] is None else f"{summary['gpu_util_mean']:.0f}%",
            path,
        )


def _gpu_utilisation(device: torch.device) -> float | None:
    """NVML's GPU utilisation in percent, or ``None`` off CUDA or without NVML (``nvidia-ml-py``)."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no NVML library or bindings, or a driver that refuses: the figure is optional
        return None


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "CPU")
    except OSError:
        name = "CPU"
    return f"{name} ({torch.get_num_threads()} threads)"
