"""The README's results table from `dcicnn evaluate` outputs: one row per protocol, mean RGB PSNR (SSIM).

    python benchmarks/results_table.py eval/kodak24/results.json eval/mcmaster/results.json
    python benchmarks/results_table.py eval/kodak24/results.json --targets     # the default model's targets

The first file gives the input, model and baseline columns; each further file adds its model (and input) column,
named after its dataset. `--targets` instead checks the first file against the targets set for the bundled model
(issue 6), for every method named with `--model` (e.g. also the self-ensemble, "DCI-CNN x8").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cell(metrics: dict[str, float] | None) -> str:
    return f"{metrics['psnr']:.2f} ({metrics['ssim']:.4f})" if metrics else ""


#: protocol -> (what is measured, threshold): "gain" over the degraded input, or absolute "psnr", RGB, in dB.
TARGETS: dict[str, tuple[str, float]] = {
    "jpeg-q10": ("gain", 1.5),
    "noise-s25": ("psnr", 31.5),
    "blur-s1+jpeg-q30": ("gain", 2.0),
    "blur-s2+jpeg-q30": ("gain", 2.0),
    "mixed-light": ("gain", 2.0),
    "mixed-heavy": ("gain", 2.0),
}


def targets(summary: dict[str, dict[str, dict[str, float]]], models: list[str]) -> None:
    """Print one row per target: what each model measured, and by how much it is met (+) or missed (-)."""
    print("| target | " + " | ".join(f"{m} | margin" for m in models) + " |")
    print("|---|" + "---|---|" * len(models))
    for protocol, (kind, threshold) in TARGETS.items():
        row = summary[protocol]
        label = f"`{protocol}` >= input + {threshold} dB" if kind == "gain" else f"`{protocol}` >= {threshold} dB"
        cells = [label]
        for model in models:
            psnr = row[model]["psnr"]
            value = psnr - row["input"]["psnr"] if kind == "gain" else psnr
            shown = f"{value:+.2f} dB" if kind == "gain" else f"{value:.2f} dB"
            cells += [shown, f"{value - threshold:+.2f}"]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument(
        "--model", nargs="+", default=["DCI-CNN"], help="method name(s) of the model in results.json (table: the first)"
    )
    parser.add_argument("--targets", action="store_true", help="check the first file against the targets instead")
    args = parser.parse_args()
    first, *others = [json.loads(p.read_text()) for p in args.results]
    summary = first["summary"]
    if args.targets:
        targets(summary, args.model)
        return
    model = args.model[0]
    baselines = sorted({m for row in summary.values() for m in row} - {"input", model})
    name = first["dataset"]
    header = ["protocol", f"{name} input", f"{name} DCI-CNN", "gain", *(f"{name} {b}" for b in baselines)]
    for other in others:
        header += [f"{other['dataset']} input", f"{other['dataset']} DCI-CNN", "gain"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for protocol, row in summary.items():
        gain = row[model]["psnr"] - row["input"]["psnr"]
        cells = [protocol, cell(row["input"]), cell(row[model]), f"{gain:+.2f}"]
        cells += [cell(row.get(b)) for b in baselines]
        for other in others:
            theirs = other["summary"].get(protocol)
            if theirs:
                gain = theirs[model]["psnr"] - theirs["input"]["psnr"]
                cells += [cell(theirs["input"]), cell(theirs[model]), f"{gain:+.2f}"]
            else:
                cells += ["", "", ""]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
