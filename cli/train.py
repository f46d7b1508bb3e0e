"""``dcicnn fit | validate | test | predict``: LightningCLI over ``RestorationModule`` and ``DegradationDataModule``.

Configs compose with repeated ``--config`` (later files override earlier ones) and dotted overrides
(``--model.lr 0.01``); ``--print_config`` prints the merged result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from dcicnn.data import DegradationDataModule
from dcicnn.loggers import wandb_offline_without_credentials
from dcicnn.throughput import TrainingThroughput
from dcicnn.training import BestCheckpoint, RestorationModule, RestoredImageWriter


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
        wandb_offline_without_credentials(config.trainer.logger)


def _checkpoint_dir(root: str | None) -> str:
    return str(Path(root or "runs") / "checkpoints")


def main(args: Sequence[str] | None = None) -> None:
    """Run LightningCLI on ``args`` (``["fit", "--config", ...]``)."""
    build(args)


def build(args: Sequence[str] | None = None, run: bool = True) -> DCICNNCLI:
    """The LightningCLI of ``dcicnn fit|validate|test|predict``; with ``run=False``, parse and instantiate only
    (``args`` then has no subcommand)."""
    return DCICNNCLI(
        RestorationModule,
        DegradationDataModule,
        args=list(args) if args is not None else None,
        run=run,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "default_root_dir": "runs",
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
        },
        parser_kwargs={"prog": "dcicnn"},
        auto_configure_optimizers=False,  # RestorationModule configures Adam and its schedule itself
    )
