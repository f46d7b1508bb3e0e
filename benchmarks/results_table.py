"""The README's results table from `dcicnn evaluate` outputs: one row per protocol, mean RGB PSNR (SSIM).

    python benchmarks/results_table.py eval/kodak24/results.json eval/mcmaster/results.json

The first file gives the input, model and baseline columns; each further file adds its model (and input) column,
named after its dataset.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cell(metrics: dict[str, float] | None) -> str:
    return f"{metrics['psnr']:.2f} ({metrics['ssim']:.4f})" if metrics else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--model", default="DCI-CNN", help="method name of the model in results.json")
    args = parser.parse_args()
    first, *others = [json.loads(p.read_text()) for p in args.results]
    summary = first["summary"]
    baselines = sorted({m for row in summary.values() for m in row} - {"input", args.model})
    name = first["dataset"]
    header = ["protocol", f"{name} input", f"{name} DCI-CNN", "gain", *(f"{name} {b}" for b in baselines)]
    for other in others:
        header += [f"{other['dataset']} input", f"{other['dataset']} DCI-CNN", "gain"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for protocol, row in summary.items():
        gain = row[args.model]["psnr"] - row["input"]["psnr"]
        cells = [protocol, cell(row["input"]), cell(row[args.model]), f"{gain:+.2f}"]
        cells += [cell(row.get(b)) for b in baselines]
        for other in others:
            theirs = other["summary"].get(protocol)
            if theirs:
                gain = theirs[args.model]["psnr"] - theirs["input"]["psnr"]
                cells += [cell(theirs["input"]), cell(theirs[args.model]), f"{gain:+.2f}"]
            else:
                cells += ["", "", ""]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
