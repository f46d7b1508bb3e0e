"""Validation PSNR per protocol at each validation of one or more training runs, as a Markdown table, from the runs'
`metrics.csv` (CSVLogger): the figures the README gives for the GPU runs and the CPU architecture comparison.

    python benchmarks/val_curves.py "v3 as shipped=docs/results/v3/run3-metrics.csv:last" \
        "H200 run 1=docs/results/gpu-h200/run1-metrics.csv" "H200 run 2=docs/results/gpu-h200/run2-metrics.csv"

Each argument is LABEL=CSV, optionally with `:last` (only the final validation); `--gains` shows each protocol's
gain over its damaged input instead of its PSNR (the clean protocol stays a PSNR). The last column is the mean PSNR
over the protocols with damage (the `clean` protocol's unbounded PSNR left out, as `val/psnr` does since it picks
checkpoints).
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path


def validations(path: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv that hold a validation (those with ``val/psnr``)."""
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("val/psnr")]


def protocols(row: dict[str, str]) -> list[str]:
    """The validated protocols, in the CSV's column order."""
    return [key.split("/")[1] for key in row if key.startswith("val/") and key.endswith("/psnr") and key != "val/psnr"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=metrics.csv[:last]")
    parser.add_argument(
        "--gains", action="store_true", help="gain over the damaged input (dB) instead of PSNR (clean: PSNR)"
    )
    args = parser.parse_args()
    table: list[tuple[str, dict[str, str]]] = []
    for spec in args.runs:
        label, _, source = spec.partition("=")
        only_last = source.endswith(":last")
        rows = validations(Path(source.removesuffix(":last")))
        if not rows:
            parser.error(f"{source}: no validation rows")
        table += [(label, row) for row in (rows[-1:] if only_last else rows)]
    names = protocols(table[0][1])
    print("| run | step | " + " | ".join(names) + " | mean with damage |")
    print("|" + "---|" * (len(names) + 3))
    for label, row in table:
        values = {name: float(row.get(f"val/{name}/psnr") or "nan") for name in names}
        damaged = [v for name, v in values.items() if name != "clean" and math.isfinite(v)]
        if args.gains:
            shown = {name: float(row.get(f"val/{name}/psnr_gain") or "nan") for name in names if name != "clean"}
            cells = " | ".join(f"{values[n]:.2f}" if n == "clean" else f"{shown[n]:+.2f}" for n in names)
        else:
            cells = " | ".join(f"{values[name]:.2f}" for name in names)
        mean = f"{sum(damaged) / len(damaged):.2f}" if damaged else "n/a"
        print(f"| {label} | {row['step']} | {cells} | {mean} |")


if __name__ == "__main__":
    main()
