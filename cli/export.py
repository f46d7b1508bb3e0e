"""``dcicnn export MODEL --format onnx|torchscript|spandrel -o FILE``."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from dcicnn.errors import InvalidArgumentError


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="export a model to ONNX (checked against onnxruntime), TorchScript, or spandrel (chaiNNer, ComfyUI)",
        description="Export MODEL (a bundled name, a directory or a Hub repo id) with BatchNorm folded. ONNX has "
        "dynamic batch, height and width and is checked against onnxruntime; TorchScript is traced. Input: float32 "
        "(N, C, H, W) on the 0..1 scale; output: the restored image, unclipped. spandrel writes the weights as the "
        "DnCNN that chaiNNer and ComfyUI load (.safetensors or .pth); a conditioned model is folded at --jpeg-quality "
        "and --noise-sigma.",
    )
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--format", choices=["onnx", "torchscript", "spandrel"], default="onnx")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--revision", help="Hub revision of MODEL")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    fold = parser.add_argument_group("spandrel, for a model told the damage (the bundled default)")
    fold.add_argument(
        "--jpeg-quality", metavar="Q|none",
        help="the JPEG quality the exported weights assume (1..100), or none (the hint withheld: blind to JPEG); "
        "required for a conditioned model",
    )  # fmt: skip
    fold.add_argument(
        "--noise-sigma", type=float, default=0.0, metavar="S",
        help="the noise level they assume, 0..255 scale (default 0; JPEGs without added noise read 0-3)",
    )  # fmt: skip
    parser.set_defaults(run=run)


#: The file name endings each format is written under.
EXTENSIONS = {
    "onnx": (".onnx",),
    "torchscript": (".pt", ".ts", ".torchscript"),
    "spandrel": (".safetensors", ".pth", ".pt"),
}


def jpeg_quality_argument(value: str | None) -> int | None:
    """``--jpeg-quality``: an int 1..100 or ``none``, read as ``restore --jpeg-quality`` reads it, less ``auto``
    (weights are exported at one quality, not at each image's)."""
    from dcicnn.restore.options import parse_jpeg_quality

    message = f"--jpeg-quality must be 1..100 or none, got {value!r}"
    try:
        quality = parse_jpeg_quality(value)
    except InvalidArgumentError:
        raise InvalidArgumentError(message) from None
    if quality == "auto":
        raise InvalidArgumentError(message)
    assert quality is None or isinstance(quality, int)
    return quality


def run(args: argparse.Namespace) -> int:
    from dcicnn.export.runtimes import export_onnx, export_torchscript
    from dcicnn.model import DCICNN

    # Checked before the model is loaded: the output's name, its folder, and whether it would replace a file.
    if args.output.suffix.lower() not in EXTENSIONS[args.format]:
        raise InvalidArgumentError(
            f"{args.output}: a {args.format} file should end in {' or '.join(EXTENSIONS[args.format])}"
        )
    if not args.output.parent.is_dir():
        raise FileNotFoundError(f"{args.output.parent}: no such folder")
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} exists (pass --overwrite to replace it)")
    model = DCICNN.from_pretrained(args.model, revision=args.revision)
    if args.format == "spandrel":
        return run_spandrel(model, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (deprecations inside torch.export)
        if args.format == "onnx":
            path = export_onnx(model, args.output, opset=args.opset)
        else:
            path = export_torchscript(model, args.output)
    print(f"wrote {path} ({args.format}, verified against the PyTorch model)")
    return 0


def run_spandrel(model: Any, args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from dcicnn.export.spandrel import check_expressible, export_spandrel
    from dcicnn.train.degradations import jpeg
    from dcicnn_cli.demo import sample_photo

    check_expressible(model)
    quality = jpeg_quality_argument(args.jpeg_quality)
    if model.conditions and args.jpeg_quality is None:
        raise InvalidArgumentError(
            "this model is told the damage it faces: pass --jpeg-quality Q (the JPEGs it will restore) or none "
            "(blind to JPEG), and optionally --noise-sigma S, to fold into the weights"
        )
    if not model.conditions and (args.jpeg_quality is not None or args.noise_sigma != 0):
        raise InvalidArgumentError("--jpeg-quality and --noise-sigma are for a conditioned model; this one is blind")
    # the fold's border error is measured on the bundled sample photo, compressed at that quality
    pixels = np.asarray(sample_photo("L" if model.in_channels == 1 else "RGB"))
    probe_pixels = jpeg(pixels, quality) if quality is not None and quality < 100 else pixels
    probe = torch.from_numpy(np.array(probe_pixels)).float().div(255)
    probe = probe[None] if probe.ndim == 2 else probe.permute(2, 0, 1)
    result = export_spandrel(model, args.output, jpeg_quality=quality, noise_sigma=args.noise_sigma, probe=probe)
    print(f"wrote {result.path} (spandrel DnCNN: {model.width} channels, {model.depth} convolutions; read back and "
          "checked)")
    if result.condition is not None and result.fold is not None:
        told = "withheld" if quality is None else f"q{quality}"
        fold = result.fold
        print(
            f"folded the condition (JPEG {told}, noise sigma {args.noise_sigma:g}) into the first layer's bias: exact "
            f"more than {model.receptive_radius} px from the border (max difference {fold.interior_max:.1e}); "
            f"within it up to {fold.border_max:.4f} (zero padding); on the sample photo the whole image is "
            f"{fold.psnr:.1f} dB from the conditioned network"
        )
    return 0
