"""Experiment logging helpers: make W&B safe to use on a machine without credentials."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

__all__ = ["WandbLogger", "has_wandb_credentials", "wandb_offline_without_credentials"]

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """Whether W&B can authenticate without prompting: ``WANDB_API_KEY``, an identity token, or a netrc entry."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, PermissionError):
        return False


def wandb_offline_without_credentials(logger_config: Any) -> None:
    """Switch every ``WandbLogger`` of a LightningCLI ``trainer.logger`` config to ``offline: true`` when W&B has no
    credentials and ``WANDB_MODE`` is unset.

    The stock logger would otherwise prompt for a key (hanging a batch job) or fail; offline runs are written under
    ``save_dir`` and can be uploaded later with ``wandb sync``.
    """
    entries = logger_config if isinstance(logger_config, list) else [logger_config]
    for entry in entries:
        class_path = str(getattr(entry, "class_path", "") or "")
        init_args = getattr(entry, "init_args", None)
        if not class_path.endswith("WandbLogger") or init_args is None or getattr(init_args, "offline", False):
            continue
        if "WANDB_MODE" in os.environ or has_wandb_credentials():
            continue
        log.warning(
            "no W&B credentials found (WANDB_API_KEY or `wandb login`): logging offline; upload later with `wandb sync`"
        )
        init_args.offline = True


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` without the ``anonymous`` argument it always hands to ``wandb.init``.

    Lightning passes ``anonymous=None`` when it is not asked for, and W&B (0.19+) prints "The anonymous setting has no
    effect and will be removed in a future version" for any value, on every run. Everything else is Lightning's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # only an explicit anonymous=True is W&B's business
            self._wandb_init.pop("anonymous", None)
