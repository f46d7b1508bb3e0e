"""The inference options that `restore`, `evaluate` and `demo` share, declared once from ``RestoreOptions``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from dcicnn.restore.options import RestoreOptions
from dcicnn.spec import DTYPE_NAMES

if TYPE_CHECKING:
    from dcicnn.restore.runner import Restorer

DEFAULTS = RestoreOptions()


def add_inference_arguments(
    parser: argparse.ArgumentParser, *, dtype: str = DEFAULTS.dtype, tiling: bool = True
) -> None:
    """``--device``, ``--dtype`` and (with ``tiling``) ``--tile``, ``--batch-size``, ``--compile``, ``--jpeg-quality``,
    ``--strength``."""
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps ... (default: cpu)")
    parser.add_argument(
        "--dtype",
        default=dtype,
        help=f"auto (bf16 where the hardware runs it fast, else fp32), {', '.join(DTYPE_NAMES)} (default {dtype})",
    )
    if tiling:
        parser.add_argument(
            "--tile",
            default=DEFAULTS.tile,
            metavar="N|auto",
            help="tile side in pixels (memory grows with its square), or auto: the weights' own (default; 512 for the "
            "bundled ones)",
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="tiles per forward pass")
        parser.add_argument("--compile", action="store_true", help="torch.compile the network (faster for many files)")
        parser.add_argument(
            "--jpeg-quality",
            default="auto",
            metavar="auto|none|Q",
            help="what the model is told of JPEG damage: auto (the file's quantisation tables, else what the pixels "
            "show), none (withheld: blind), or a quality 1..100 (default auto)",
        )
        parser.add_argument(
            "--strength",
            type=float,
            default=DEFAULTS.strength,
            metavar="S",
            help="how much of the correction to apply, 0..2: 0 leaves the image as it is, 1 (default) the model's "
            "output, above 1 more",
        )


def inference_options(args: argparse.Namespace, *, ensemble: bool = False) -> RestoreOptions:
    """The validated ``RestoreOptions`` of parsed arguments (a bad value fails here, before any work)."""
    return RestoreOptions(
        tile=getattr(args, "tile", DEFAULTS.tile),
        batch_size=getattr(args, "batch_size", DEFAULTS.batch_size),
        device=args.device,
        dtype=args.dtype,
        compile=getattr(args, "compile", DEFAULTS.compile),
        ensemble=ensemble,
        jpeg_quality=getattr(args, "jpeg_quality", DEFAULTS.jpeg_quality),
        strength=getattr(args, "strength", DEFAULTS.strength),
    )


def check_device_dtype(model: Restorer, options: RestoreOptions) -> None:
    """Fail now, in one line, if ``options`` name a device this machine lacks or a dtype the model does not run in
    (``restore`` would otherwise say so for every image)."""
    from dcicnn.restore.runner import resolve_device_dtype

    resolve_device_dtype(model, options)
