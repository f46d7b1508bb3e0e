"""``dcicnn evaluate``: score models and baselines on named protocols; write tables, a plot and image grids."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from dcicnn.restore.options import RestoreOptions
from dcicnn.train.degradations import PROTOCOLS, check_protocols
from dcicnn.train.sources import FolderSource, HFDataset, HFSource, ImageSource
from dcicnn_cli.options import add_inference_arguments, inference_options
from dcicnn_cli.restore import load_model_source

if TYPE_CHECKING:  # torch and torchmetrics are imported to evaluate, not for `--help`
    from dcicnn.evaluate.evaluation import Method
    from dcicnn.model import DCICNN


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score models (and the untouched input, and classical baselines) on named degradation protocols",
        description="Degrade every image of DATA with each protocol, restore it with each model, and score the "
        "result (PSNR on RGB and Y, SSIM, MSE) next to the untouched input and the classical baselines that apply "
        "(Wiener deconvolution with the true kernel for blur, non-local means with the true sigma for noise). "
        "Writes results.md (a summary and, per protocol, one row per image with the average last), results.csv, "
        "results.json, psnr.png and grids/<protocol>.png.",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="M",
        help="weights: a bundled name (`dcicnn models`), a directory or a Hub repo id (repeat to compare; "
        "default: the bundled default)",
    )
    parser.add_argument("--data", required=True, help="folder of clean images, or a Hub dataset id with --hf")
    parser.add_argument("--hf", action="store_true", help="DATA is a Hugging Face dataset id (or 'imagefolder')")
    parser.add_argument("--split", default="test", help="dataset split with --hf")
    parser.add_argument("--image-column", default="image", help="image column with --hf")
    parser.add_argument(
        "--protocol",
        nargs="+",
        default=None,
        metavar="P",
        help=f"protocols (default: all but paper-*): {', '.join(PROTOCOLS)}",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("evaluation"), help="output folder")
    add_inference_arguments(parser, dtype="fp32", tiling=False)  # fp32 by default: scores free of bf16 rounding
    parser.add_argument("--no-classical", action="store_true", help="skip the classical baselines")
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="also score each model with the 8-way flip/rotation self-ensemble (8x slower), as 'NAME x8'",
    )
    parser.add_argument(
        "--jpeg-hint",
        nargs="+",
        choices=HINT_MODES,
        default=["auto"],
        help="what a conditioned model is told of each JPEG protocol: 'auto' (what restore() reads from the pixels "
        "of an array), 'file' (as from the protocol's JPEG file: its last save's tables, and the pixels), 'none' "
        "(withheld); several score each model once per mode, as 'NAME [MODE]'. Blind models ignore it",
    )
    parser.set_defaults(run=run)


HINT_MODES = ("auto", "file", "none")


def _source(args: argparse.Namespace) -> tuple[ImageSource, str]:
    if args.hf:
        spec = HFDataset(path=args.data, split=args.split, image_column=args.image_column)
        return HFSource(spec), f"{args.data}:{args.split}"
    return FolderSource(args.data), Path(args.data).name


def _method(model: DCICNN, options: RestoreOptions, hint: str = "auto", memo: dict | None = None) -> Method:
    """``model`` as an evaluation method; ``memo`` (shared by the hint modes of one model) keeps the last result, so
    a mode that runs exactly as another on this input (``file`` on a protocol that saves no JPEG is ``auto``) is
    not computed twice."""
    from dcicnn.damage.consistency import JpegGrid
    from dcicnn.restore.inference import restore
    from dcicnn.restore.policy import FileJpeg

    memo = {} if memo is None else memo

    def run(degraded: np.ndarray, protocol: str) -> np.ndarray:
        given, file_jpeg = options, None
        last_save = PROTOCOLS[protocol].jpeg
        if hint == "none":
            given = replace(options, jpeg_quality=None)
        elif hint == "file" and last_save is not None:  # what the protocol's JPEG file says: its last save's tables
            file_jpeg = FileJpeg(last_save, JpegGrid.from_quality(last_save))
        key = (protocol, id(degraded), given, file_jpeg is not None)  # the input is kept beside its result
        if key not in memo:
            memo.clear()
            memo[key] = (degraded, restore(model, degraded.astype(np.float32), given, file_jpeg=file_jpeg))
        return memo[key][1]

    return run


def run(args: argparse.Namespace) -> int:
    from dcicnn.evaluate.evaluation import evaluate

    protocols = check_protocols(args.protocol or [p for p in PROTOCOLS if not p.startswith("paper-")])
    options = inference_options(args)  # checked before any work
    source, name = _source(args)
    methods: dict[str, Method] = {}
    for model_id in args.model or [None]:
        model = load_model_source(model_id, None)
        base = "DCI-CNN" if len(args.model) <= 1 else Path(str(model_id)).name
        modes = list(dict.fromkeys(args.jpeg_hint)) if model.spec.conditions else ["auto"]
        memo: dict = {}
        memo_x8: dict = {}
        for mode in modes:
            label = base if len(modes) == 1 else f"{base} [{mode}]"
            methods[label] = _method(model, options, mode, memo)
            if args.ensemble:
                methods[f"{label} x8"] = _method(model, replace(options, ensemble=True), mode, memo_x8)
    with tqdm(
        total=len(protocols) * len(source), desc="evaluating", unit="image", disable=None, file=sys.stderr
    ) as bar:
        result = evaluate(
            source,
            protocols,
            methods,
            classical=not args.no_classical,
            dataset=name,
            grid=args.output / "grids",
            progress=bar.update,
        )
    paths = result.write(args.output)
    print(result.summary_markdown())
    print(f"\nwrote {', '.join(str(p) for p in paths.values())} and {args.output / 'grids'}/")
    return 0
