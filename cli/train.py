"""``dcicnn fit | validate | test | predict``: LightningCLI over ``RestorationModule`` and ``DegradationDataModule``.

Configs compose with repeated ``--config`` (later files override earlier ones) and dotted overrides
(``--model.lr 0.01``); ``--print_config`` prints the merged result.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from dcicnn.train.data import DegradationDataModule
from dcicnn.train.loggers import wandb_offline_without_credentials
from dcicnn.train.module import BestCheckpoint, RestorationModule, RestoredImageWriter
from dcicnn.train.throughput import TrainingThroughput


class ConfigToLoggers(SaveConfigCallback):
    """Saves the merged config beside the logs (as Lightning does) and gives it, flattened, to every logger, so
    runs compare side by side on every setting that differs (W&B's run config, CSV's hparams.yaml)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        flat = _flatten(self.config.as_dict())
        for logger in trainer.loggers:
            logger.log_hyperparams(flat)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"patch_size": 64}}`` -> ``{"data.patch_size": 64}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


#: Where a run writes when nothing says otherwise: checkpoints, logs, the saved config, the Hub export.
DEFAULT_ROOT = "runs"


class DCICNNCLI(LightningCLI):
    """LightningCLI with the checkpoints (the best one exported in Hub layout) every run needs. The validation
    protocols are the data's (``data.val_protocols``); the module takes them from its data module."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The best weights by validation PSNR (best-step=N.ckpt), exported in Hub layout as they are saved ...
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        # ... and last.ckpt every N steps, so a killed run resumes with --ckpt_path last losing at most N steps.
        parser.add_lightning_class_args(ModelCheckpoint, "resume_checkpoint")
        parser.set_defaults(
            {
                "resume_checkpoint.save_last": True,
                "resume_checkpoint.save_top_k": 0,
                "resume_checkpoint.every_n_train_steps": 100,
                "resume_checkpoint.save_on_train_epoch_end": True,
            }
        )
        parser.add_lightning_class_args(TrainingThroughput, "throughput")  # patches/s, Mpx/s, data wait, GPU use
        parser.add_lightning_class_args(RestoredImageWriter, "predict_writer")  # acts in `dcicnn predict` only
        # One checkpoint folder per experiment root (not per logger version), so `--ckpt_path last` finds the
        # checkpoint of the killed run when the same command is started again.
        for key in ("checkpoint.dirpath", "resume_checkpoint.dirpath"):
            parser.link_arguments("trainer.default_root_dir", key, compute_fn=_checkpoint_dir)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        _loggers_under_root(config.trainer.logger, config.trainer.default_root_dir)
        wandb_offline_without_credentials(config.trainer.logger)


def _loggers_under_root(logger_config: Any, root: str | None) -> None:
    """Everything a run writes belongs under its ``trainer.default_root_dir``: a logger left at the default
    ``save_dir`` (``runs``) follows the root; one the user pointed elsewhere stays where it was told."""
    if not root or root == DEFAULT_ROOT:
        return
    entries = logger_config if isinstance(logger_config, list) else [logger_config]
    for entry in entries:
        init_args = getattr(entry, "init_args", None)
        if init_args is not None and getattr(init_args, "save_dir", None) == DEFAULT_ROOT:
            init_args.save_dir = root


def _checkpoint_dir(root: str | None) -> str:
    return str(Path(root or DEFAULT_ROOT) / "checkpoints")


def main(args: Sequence[str] | None = None) -> None:
    """Run LightningCLI on ``args`` (``["fit", "--config", ...]``)."""
    try:
        build(args)
    finally:
        # Lightning leaves the DDP process group up; torn down by the interpreter's exit instead, gloo's threads can
        # abort the process ("terminate called without an active exception") after a run that succeeded.
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def quiet_third_party_notices() -> None:
    """Keep the console to what a dcicnn user can act on: Lightning's advertisement for its cloud logger, a
    deprecation inside Lightning's own use of torch, and its model summary's note that it sizes bf16 weights as
    fp32 are not ours (or the user's) to fix."""
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )


def build(args: Sequence[str] | None = None, run: bool = True) -> DCICNNCLI:
    """The LightningCLI of ``dcicnn fit|validate|test|predict``; with ``run=False``, parse and instantiate only
    (``args`` then has no subcommand)."""
    quiet_third_party_notices()
    return DCICNNCLI(
        RestorationModule,
        DegradationDataModule,
        args=list(args) if args is not None else None,
        run=run,
        seed_everything_default=0,
        save_config_callback=ConfigToLoggers,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "default_root_dir": DEFAULT_ROOT,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": DEFAULT_ROOT}},
        },
        parser_kwargs={"prog": "dcicnn"},
        auto_configure_optimizers=False,  # RestorationModule configures Adam and its schedule itself
    )
