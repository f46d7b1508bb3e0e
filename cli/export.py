"""``dcicnn export MODEL --format onnx|torchscript -o FILE``."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any


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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dcicnn.export import export_onnx, export_torchscript
    from dcicnn.model import DCICNN

    model = DCICNN.from_pretrained(args.model, revision=args.revision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (deprecations inside torch.export)
        if args.format == "onnx":
            path = export_onnx(model, args.output, opset=args.opset)
        else:
            path = export_torchscript(model, args.output)
    print(f"wrote {path} ({args.format}, verified against the PyTorch model)")
    return 0
