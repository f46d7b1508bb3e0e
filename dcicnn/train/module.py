"""The training system: ``RestorationModule`` (a LightningModule around a ``DCICNN``) and its callbacks.

The network stays a plain ``DCICNN``; this module adds the loss, the optimiser and schedule, per-protocol
validation metrics (torchmetrics PSNR, SSIM, MSE, synced across DDP ranks), sample images for the logger, a
divergence guard, and the best checkpoint with its export in Hub layout.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import lightning as L
import numpy as np
import torch
from huggingface_hub import EvalResult
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint, Timer, WeightAveraging
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from dcicnn import hub
from dcicnn.damage.conditions import condition_from_damage
from dcicnn.errors import InvalidArgumentError, TrainingDivergedError
from dcicnn.hub import card
from dcicnn.imageio import save_image_atomic, to_image
from dcicnn.model import DCICNN
from dcicnn.train.data import DEFAULT_VAL_PROTOCOLS, ValidationBatch
from dcicnn.train.degradations import check_protocols

__all__ = ["BestCheckpoint", "RestorationModule", "RestoredImageWriter", "TrainingDivergedError", "metric_name"]

log = logging.getLogger(__name__)

Loss = Literal["mse", "l1", "charbonnier"]
Schedule = Literal["constant", "cosine"]


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss ``mean(sqrt((x - y)^2 + eps^2))``: L1 that is smooth at zero."""
    return torch.sqrt((prediction - target).pow(2) + eps * eps).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "charbonnier": charbonnier,
}


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 256 levels of an 8-bit image, as a saved result would be."""
    return images.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


WeightInit = Literal["torch", "he"]


def he_init(network: nn.Module, last_gain: float = 0.1) -> None:
    """He (Kaiming) normal initialisation for ReLU networks, biases at zero: the signal keeps its scale through any
    depth, so a deep network without BatchNorm starts with every channel alive. The last convolution is scaled by
    ``last_gain`` so that a residual network starts close to the identity instead of adding O(1) noise."""
    convs = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        if convs:
            convs[-1].weight.mul_(last_gain)


class RestorationModule(L.LightningModule):
    """Trains a ``DCICNN`` on (degraded, clean) pairs.

    Args:
        network: the network to train (in YAML: ``class_path: dcicnn.DCICNN`` with ``init_args``); default
            ``DCICNN()``, the paper's architecture. When a checkpoint is reloaded it arrives as its config dict.
        loss: ``mse`` (the paper), ``l1`` or ``charbonnier``.
        lr: Adam learning rate (the paper: 0.01; default 1e-3, which trains stably with BatchNorm).
        betas: Adam betas.
        weight_decay: Adam weight decay (L2).
        schedule: ``constant`` (the paper) or ``cosine`` decay to ``min_lr_ratio * lr`` over the run: over
            ``trainer.max_steps``, or, when only ``trainer.max_time`` limits the run, over that time.
        warmup_steps: linear warm-up steps before the schedule.
        min_lr_ratio: final learning rate of the cosine schedule, as a fraction of ``lr``.
        val_protocols: the validation protocols, in the order of the data's protocol indices. ``None`` (default):
            those of the data module (``data.val_protocols``), which owns them; given, they must equal the data's.
        channels_last: run the network in channels-last memory format (faster on CPUs with oneDNN and on GPUs).
        log_images: number of degraded | restored | clean triplets sent to the logger at each validation.
        init_from: warm-start the network from a saved model (a ``save_pretrained`` directory such as
            ``dcicnn/pretrained/default``, or a Hub id); its config must match ``network``.
        weight_init: how a network that is not warm-started begins: ``"torch"`` (PyTorch's default, variance
            ``1/(3 fan_in)``, which shrinks the signal about 6x per ReLU layer: a 12-layer network without BatchNorm
            lost up to 56 of 96 channels per layer to dead ReLUs and learned next to nothing) or ``"he"`` (``he_init``).
            A U-Net (``arch="unet"``) initialises itself (He, residual branches and last convolution at zero), which
            ``"torch"`` keeps and ``"he"`` replaces.
    """

    def __init__(
        self,
        network: DCICNN | dict[str, Any] | None = None,
        loss: Loss = "mse",
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        schedule: Schedule = "cosine",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.01,
        val_protocols: list[str] | None = None,
        channels_last: bool = True,
        log_images: int = 4,
        init_from: str | None = None,
        weight_init: WeightInit = "torch",
    ) -> None:
        super().__init__()
        if isinstance(network, dict):
            network = DCICNN(**network)
        self.network = network if network is not None else DCICNN()
        if weight_init not in ("torch", "he"):
            raise InvalidArgumentError(f"weight_init must be 'torch' or 'he', got {weight_init!r}")
        if weight_init == "he" and init_from is None:
            he_init(self.network)
        if init_from is not None:  # warm start: weights of a saved model (directory or Hub id), strictly matched
            source = DCICNN.from_pretrained(init_from)
            state = self.network.warm_start_state(source)
            hub.load_state_dict(self.network, state, strict=True, source=str(init_from))
        if loss not in LOSSES:
            raise InvalidArgumentError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        if lr <= 0 or not math.isfinite(lr):
            raise InvalidArgumentError(f"lr must be a positive number, got {lr}")
        if schedule not in ("constant", "cosine"):
            raise InvalidArgumentError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
        self.val_protocols = check_protocols(val_protocols or DEFAULT_VAL_PROTOCOLS)
        self.protocols_given = val_protocols is not None
        # Typed attributes for the code below; `hparams` keeps the same values for checkpoints and loggers.
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.weight_decay = weight_decay
        self.schedule: Schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        self.channels_last = channels_last
        self.log_images = int(log_images)
        self.save_hyperparameters(ignore=["network"])
        self.hparams["network"] = dict(cast(dict[str, Any], self.network._hub_mixin_config or {}))
        self.loss_fn = LOSSES[loss]
        self._use_protocols(self.val_protocols)
        self.best: dict[str, float] = {}

    def _metrics_of(self, protocol: str) -> dict[str, MeanMetric]:
        return cast(dict[str, MeanMetric], self.val_metrics[protocol])

    # ------------------------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, damage: torch.Tensor | None = None) -> torch.Tensor:
        """The network on a batch; ``damage``: ``(N, 2)`` damage records (``dcicnn.damage.conditions.DAMAGE_FIELDS``),
        turned into the network's condition channels (a blind network ignores them)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        condition = None
        if damage is not None and self.network.conditions:
            condition = condition_from_damage(self.network.conditions, damage.to(x.device))
        return self.network(x, condition)

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            channels = getattr(datamodule, "channels", self.network.in_channels)
            if channels != self.network.in_channels:
                raise InvalidArgumentError(
                    f"the data has {channels} channel(s) but the network takes {self.network.in_channels}"
                )
            protocols = list(getattr(datamodule, "val_protocols", self.val_protocols))
            if self.protocols_given and protocols != self.val_protocols:
                raise InvalidArgumentError(
                    f"model.val_protocols {self.val_protocols} differ from data.val_protocols {protocols}; "
                    "leave model.val_protocols unset to use the data's"
                )
            if protocols != self.val_protocols:
                self._use_protocols(protocols)

    def _use_protocols(self, protocols: list[str]) -> None:
        """Validate under ``protocols``: per protocol, the mean over images of each image's PSNR, SSIM, MSE and input
        PSNR (``MeanMetric``: sum states, which every DDP rank can sync even when its shard held no image of that
        protocol; per-image list states could not)."""
        self.val_protocols = list(protocols)
        self.val_metrics = nn.ModuleDict(
            {p: nn.ModuleDict({key: MeanMetric() for key in IMAGE_METRICS}) for p in self.val_protocols}
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Flush the loggers with every checkpoint, so a killed run keeps the metrics of the steps it can resume."""
        for logger in self.loggers:
            logger.save()

    def on_fit_start(self) -> None:
        parameters = sum(p.numel() for p in self.network.parameters())
        for logger in self.loggers:
            logger.log_hyperparams(
                {
                    "parameters": parameters,
                    "flops_per_pixel": self.network.flops_per_pixel,
                    "receptive_field": self.network.receptive_field,
                }
            )

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """One step on ``(degraded, clean, damage)`` (``DegradationDataModule``) or ``(degraded, clean)`` pairs from
        a loader of your own (a conditioned network then measures each input itself, ``DCICNN.default_condition``)."""
        degraded, clean, *rest = batch
        damage = rest[0] if rest else None
        if self.channels_last:
            clean = clean.contiguous(memory_format=torch.channels_last)
        # BatchNorm updates its running statistics during the forward pass: keep a copy to undo a divergent step.
        buffers = {name: b.clone() for name, b in self.network.named_buffers() if b.is_floating_point()}
        loss = self.loss_fn(self(degraded, damage).float(), clean)
        finite = bool(torch.isfinite(loss).item())
        if not self.trainer.strategy.reduce_boolean_decision(finite, all=True):
            with torch.no_grad():
                for name, buffer in self.network.named_buffers():
                    if name in buffers:
                        buffer.copy_(buffers[name])
            raise TrainingDivergedError(
                f"the training loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "training stopped before applying it. Lower the learning rate, or resume from the last good "
                "checkpoint with --ckpt_path last"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(degraded))
        return loss

    def validation_step(self, batch: ValidationBatch, batch_idx: int) -> None:
        for group in batch:
            restored = quantise(self(group.degraded, group.damage).float()).contiguous()
            for index in group.protocol.unique().tolist():
                mask = group.protocol == index
                protocol = self.val_protocols[index]
                # the input as given (unclipped for noise-*) is the baseline a restorer must beat
                scores = image_scores(restored[mask], group.clean[mask], group.degraded[mask].float())
                for key, metric in self._metrics_of(protocol).items():
                    metric.update(scores[key])
            if batch_idx == 0 and self.log_images:
                self._log_images(group.degraded, restored, group.clean, group.protocol)

    def on_validation_epoch_end(self) -> None:
        self._log_protocol_metrics("val")

    def _log_protocol_metrics(self, stage: str) -> None:
        """Compute, log under ``<stage>/<protocol>/<metric>`` and reset the per-protocol metrics of an epoch."""
        means: list[torch.Tensor] = []
        identity: list[torch.Tensor] = []
        for protocol in self.val_protocols:
            # A shortened loop (sanity check, limit_val_batches) may not reach every protocol.
            metrics = self._metrics_of(protocol)
            seen = metrics["psnr"].update_count > 0
            if not self.trainer.strategy.reduce_boolean_decision(seen, all=False):
                continue
            # Every rank takes part in every sync: one whose shard held no image of this protocol adds nothing.
            values = {}
            for key, metric in metrics.items():
                if not seen:
                    metric.update(torch.empty(0, device=self.device))
                values[key] = metric.compute()  # torchmetrics syncs the sums across ranks
                metric.reset()
            for name, value in values.items():
                self.log(metric_name(protocol, name, stage), value, sync_dist=True)
            self.log(metric_name(protocol, "psnr_gain", stage), values["psnr"] - values["psnr_input"], sync_dist=True)
            # An identity protocol (clean) has an infinite input PSNR and an unbounded output one (60-80 dB): in
            # the mean it would outweigh every damaged protocol, so the aggregate that picks checkpoints skips it
            # (unless nothing else was validated).
            (means if torch.isfinite(values["psnr_input"]) else identity).append(values["psnr"])
            if stage == "val" and not self.trainer.sanity_checking:
                self.best[protocol] = max(self.best.get(protocol, -math.inf), float(values["psnr"]))
                self.log(f"best/{metric_name(protocol, 'psnr')}", self.best[protocol], sync_dist=True)
        if means or identity:
            self.log(f"{stage}/psnr", torch.stack(means or identity).mean(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: ValidationBatch, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_protocol_metrics("test")

    def predict_step(self, batch: ValidationBatch, batch_idx: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Restored images (8-bit levels) with their dataset indices, one pair per group of the batch."""
        return [(quantise(self(group.degraded, group.damage).float()).contiguous(), group.index) for group in batch]

    # ------------------------------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(
            self.network.parameters(),
            lr=self.lr,
            betas=self.betas,
            weight_decay=self.weight_decay,
        )
        warmup = self.warmup_steps
        estimate = float(self.trainer.estimated_stepping_batches) if self._trainer is not None else 0.0
        by_steps = 0 < estimate < 1e12  # inf with neither max_steps nor max_epochs
        total = int(estimate) if by_steps else 0
        # No step limit but a time limit (`trainer.max_time`, as on a lent GPU whose speed is not known in advance):
        # the cosine runs over the time budget instead, so the learning rate has decayed when the timer stops.
        timer = None if by_steps or self._trainer is None else _timer(self.trainer)
        cosine = self.schedule == "cosine" and (by_steps or timer is not None)
        floor = self.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            if timer is not None:
                elapsed = timer.time_elapsed("train")
                progress = min(1.0, elapsed / max(1e-9, elapsed + (timer.time_remaining("train") or 0.0)))
            else:
                progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------------------------------------------
    @rank_zero_only
    def _log_images(
        self, degraded: torch.Tensor, restored: torch.Tensor, clean: torch.Tensor, protocol_index: torch.Tensor
    ) -> None:
        loggers = [lg for lg in self.loggers if hasattr(lg, "log_image")]
        if not loggers or self.trainer.sanity_checking:
            return
        count = min(self.log_images, len(degraded))
        triplets = [_triplet(degraded[i], restored[i], clean[i]) for i in range(count)]
        captions = [f"{self.val_protocols[int(protocol_index[i])]}: degraded | restored | clean" for i in range(count)]
        for logger in loggers:
            logger.log_image(key="val/samples", images=triplets, caption=captions, step=self.global_step)

    def validation_results(self, dataset_name: str, dataset_type: str) -> list[EvalResult]:
        """The last validation metrics as ``EvalResult`` rows for a model card."""
        metrics = self.trainer.callback_metrics
        return [
            card.protocol_result(dataset_type, dataset_name, protocol, key, float(metrics[metric_name(protocol, key)]))
            for protocol in self.val_protocols
            for key in card.METRIC_LABELS
            # the `clean` protocol's input PSNR is infinite: not a number a model card can carry
            if metric_name(protocol, key) in metrics and math.isfinite(float(metrics[metric_name(protocol, key)]))
        ]


#: What validation measures on every image (the mean over images is logged).
IMAGE_METRICS = ("psnr", "ssim", "mse", "psnr_input")


def image_scores(restored: torch.Tensor, clean: torch.Tensor, degraded: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB, 0..1 scale), SSIM (Gaussian window 11, sigma 1.5), MSE of ``restored``, and the PSNR of
    the untouched input, for ``(N, C, H, W)`` batches: one value per image each."""
    ssim = structural_similarity_index_measure(
        restored, clean, data_range=1.0, gaussian_kernel=True, sigma=1.5, kernel_size=11, reduction="none"
    )
    assert isinstance(ssim, torch.Tensor)  # no full SSIM image was asked for
    return {
        "psnr": peak_signal_noise_ratio(restored, clean, data_range=1.0, dim=(1, 2, 3), reduction="none"),
        "ssim": ssim,
        "mse": (restored - clean).pow(2).mean(dim=(1, 2, 3)),
        "psnr_input": peak_signal_noise_ratio(degraded, clean, data_range=1.0, dim=(1, 2, 3), reduction="none"),
    }


def metric_name(protocol: str, key: str, stage: str = "val") -> str:
    """The logged name of a per-protocol metric: ``val/jpeg-q10/psnr`` (``test/...`` in ``dcicnn test``)."""
    return f"{stage}/{protocol}/{key}"


def _timer(trainer: L.Trainer) -> Timer | None:
    """The trainer's ``Timer`` callback when it enforces a time limit (``max_time``)."""
    callbacks = getattr(trainer, "callbacks", [])  # set by the Trainer at run time (not a declared attribute)
    return next((c for c in callbacks if isinstance(c, Timer) and c.time_remaining() is not None), None)


def _triplet(degraded: torch.Tensor, restored: torch.Tensor, clean: torch.Tensor) -> np.ndarray:
    """uint8 ``(H, 3W + 8, C)`` image: degraded | restored | clean (W&B wants uint8; floats come out black)."""
    gap = torch.ones_like(clean[:, :, :4])
    row = torch.cat([quantise(degraded.float()), gap, restored, gap, clean], dim=2)
    array = (row.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` of the best validation score, which also exports those weights in Hub layout.

    Which checkpoint is best (``monitor``, ``mode``), when it is saved and how that survives a resumed run is
    ``ModelCheckpoint``'s; each time it saves a new best, the network goes to ``export_dir`` as ``config.json``,
    ``model.safetensors`` and a ``README.md`` card whose evaluation table and ``model-index`` carry the validation
    metrics, so ``dcicnn push DIR REPO_ID`` can publish it as is.

    Args:
        export_dir: where the best weights are exported; ``None``: ``<trainer default_root_dir>/hub``.
        dataset_name: pretty name of the validation data for the model card.
        dataset_type: identifier of the validation data for the model card.
        training: free text about the training run for the model card.
        dirpath, filename, monitor, mode, save_top_k: as ``ModelCheckpoint`` (other keywords pass through).
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str | None = "best-{step}",
        monitor: str | None = "val/psnr",
        mode: Literal["max", "min"] = "max",
        save_top_k: int = 1,
        export_dir: str | None = None,
        dataset_name: str = "validation set",
        dataset_type: str = "validation",
        training: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_top_k=save_top_k, **kwargs
        )
        self.export_dir = export_dir
        self.dataset_name = dataset_name
        self.dataset_type = dataset_type
        self.training = training

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        module = trainer.lightning_module
        if trainer.is_global_zero and isinstance(module, RestorationModule):
            self._export(trainer, module, filepath)

    def _export(self, trainer: L.Trainer, module: RestorationModule, filepath: str) -> None:
        path = Path(self.export_dir) if self.export_dir else Path(trainer.default_root_dir) / "hub"
        score = "" if self.current_score is None else f"; best {self.monitor} = {float(self.current_score):.4f}"
        training = self.training or (
            f"Trained with `dcicnn fit` (step {trainer.global_step}, epoch {trainer.current_epoch}){score}."
        )
        network = module.network
        if any(isinstance(callback, WeightAveraging) for callback in getattr(trainer, "callbacks", [])):
            # Weight averaging (EMA, SWA) validated the averaged weights and put them in the checkpoint, but has
            # already swapped the live ones back: export what the checkpoint holds, the weights that were scored.
            saved = torch.load(filepath, map_location="cpu", weights_only=True)["state_dict"]
            network = copy.deepcopy(module.network).cpu()
            network.load_state_dict(
                {k.removeprefix("network."): v for k, v in saved.items() if k.startswith("network.")}
            )
        network.save_pretrained(
            path,
            model_card_kwargs={
                "eval_results": module.validation_results(self.dataset_name, self.dataset_type),
                "training": training,
            },
        )
        log.info("exported the best weights (step %d%s) to %s", trainer.global_step, score, path)


class RestoredImageWriter(BasePredictionWriter):
    """Writes the images restored by ``dcicnn predict`` as ``<output_dir>/<protocol>/<image key>.png``.

    Args:
        output_dir: target directory; ``None``: ``<trainer default_root_dir>/predictions``.
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        loaders = trainer.predict_dataloaders
        loader = loaders[dataloader_idx] if isinstance(loaders, list) else loaders
        assert loader is not None  # called by Lightning's predict loop, which has its loaders
        dataset = loader.dataset
        root = Path(self.output_dir) if self.output_dir else Path(trainer.default_root_dir) / "predictions"
        for restored, indices in prediction:
            for image, index in zip(restored, indices.tolist(), strict=True):
                protocol, key = dataset.describe(index)
                path = (root / protocol / key).with_suffix(".png")
                path.parent.mkdir(parents=True, exist_ok=True)
                save_image_atomic(to_image(image.permute(1, 2, 0).float().cpu().numpy()), path)
