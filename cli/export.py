"""``dcicnn export MODEL --format onnx|torchscript -o FILE``."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from dcicnn.errors import InvalidArgumentError


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="export a model to ONNX (checked against onnxruntime) or TorchScript",
        description="Export MODEL (a directory or Hub repo id) with BatchNorm folded. ONNX has dynamic batch, height "
        "and width and is checked against onnxruntime; TorchScript is traced. Input: float32 (N, C, H, W) on the "
        "0..1 scale; output: the restored image, unclipped.",
    )
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--revision", help="Hub revision of MODEL")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.set_defaults(run=run)


#: The file name endings each format is written under.
EXTENSIONS = {"onnx": (".onnx",), "torchscript": (".pt", ".ts", ".torchscript")}


def run(args: argparse.Namespace) -> int:
    from dcicnn.export import export_onnx, export_torchscript
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (deprecations inside torch.export)
        if args.format == "onnx":
            path = export_onnx(model, args.output, opset=args.opset)
        else:
            path = export_torchscript(model, args.output)
    print(f"wrote {path} ({args.format}, verified against the PyTorch model)")
    return 0
