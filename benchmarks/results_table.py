"""The README's results table from `dcicnn evaluate` outputs: one row per protocol, mean RGB PSNR (SSIM).

    python benchmarks/results_table.py eval/kodak24/results.json eval/mcmaster/results.json
    python benchmarks/results_table.py eval/kodak24/results.json --targets     # the default model's targets
    python benchmarks/results_table.py eval/a.json eval/b.json --compare --model default gpu-b   # models side by side

The first file gives the input, model and baseline columns; each further file adds its model (and input) column,
named after its dataset. `--targets` instead checks the first file against the targets set for the bundled model
(issue 6), for every method named with `--model` (e.g. also the self-ensemble, "DCI-CNN x8"). `--compare` prints,
per file, the input and each `--model` with its gain over the input, in RGB PSNR dB (no gain for `clean`, whose
input is the clean image itself).
"""

from __future__ import annotations

import argparse
import json
import math
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


def compare(results: list[dict], models: list[str]) -> None:
    """One row per protocol; per results file, the input and each model's PSNR with its gain over the input."""
    header = ["protocol"]
    for result in results:
        header += [f"{result['dataset']} input"] + [f"{result['dataset']} {m} | gain" for m in models]
    print("| " + " | ".join(header) + " |")
    print("|---|" + ("---|" + "---|---|" * len(models)) * len(results))
    for protocol in results[0]["summary"]:
        cells = [protocol]
        for result in results:
            row = result["summary"].get(protocol, {})
            source = row.get("input", {}).get("psnr", math.nan)
            cells.append(f"{source:.2f}")
            for model in models:
                psnr = row.get(model, {}).get("psnr", math.nan)
                gain = psnr - source
                cells += [f"{psnr:.2f}", f"{gain:+.2f}" if math.isfinite(gain) else ""]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument(
        "--model", nargs="+", default=["DCI-CNN"], help="method name(s) of the model in results.json (table: the first)"
    )
    parser.add_argument("--targets", action="store_true", help="check the first file against the targets instead")
    parser.add_argument("--compare", action="store_true", help="the models named with --model side by side")
    args = parser.parse_args()
    loaded = [json.loads(p.read_text()) for p in args.results]
    if args.compare:
        compare(loaded, args.model)
        return
    first, *others = loaded
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
