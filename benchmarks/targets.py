"""Check `dcicnn evaluate` results against a model's targets: "do no harm" musts and restoration aims, each with its
margin, per method (e.g. a conditioned model scored with `--jpeg-hint auto file none`). The targets are data beside
each model card, `model_cards/NAME/targets.csv` (protocol, statistic, threshold, kind); `--targets v4` (default:
the bundled default's), `v3`, or a CSV path. Several results files (evaluations split by protocol) are read as one.

    python benchmarks/targets.py eval/kodak24/results.json --targets v3 --model "DCI-CNN [auto]" "DCI-CNN [file]"
    python benchmarks/targets.py eval/a/results.json eval/b/results.json --targets v4 --model "v4 [file]"

Statistics: "psnr" (mean RGB PSNR), "min_psnr" (worst image), "gain" (mean gain over the degraded input, dB) and
"min_gain" (worst image's gain). A must that fails is marked FAIL; an aim that is missed shows a negative margin.
Protocols the results hold without a target are reported after them; the exit status is 1 when a must fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
STATISTICS = ("psnr", "min_psnr", "gain", "min_gain")
KINDS = ("must", "aim")


class Target(NamedTuple):
    protocol: str
    statistic: str
    threshold: float
    kind: str


def load_targets(name_or_path: str) -> list[Target]:
    """The targets of ``model_cards/NAME/targets.csv`` for a name, or of a CSV path; one clear error per bad row."""
    path = Path(name_or_path)
    if path.suffix != ".csv":
        path = REPO / "model_cards" / name_or_path / "targets.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no such targets file")
    from dcicnn.train.degradations import PROTOCOLS

    targets = []
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            target = Target(row["protocol"], row["statistic"], float(row["threshold"]), row["kind"])
            if target.protocol not in PROTOCOLS or target.statistic not in STATISTICS or target.kind not in KINDS:
                raise SystemExit(f"{path}:{line}: unknown protocol, statistic or kind in {row}")
            targets.append(target)
    return targets


def statistics(rows: list[dict], method: str) -> dict[str, dict[str, float]]:
    """Per protocol: mean PSNR, worst PSNR, mean gain and worst gain of ``method`` over the input."""
    inputs = {(r["protocol"], r["image"]): r["psnr"] for r in rows if r["method"] == "input"}
    by_protocol: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if r["method"] == method:
            by_protocol[r["protocol"]].append((r["psnr"], r["psnr"] - inputs[(r["protocol"], r["image"])]))
    out = {}
    for protocol, values in by_protocol.items():
        psnrs = [p for p, _ in values]
        gains = [g for _, g in values if math.isfinite(g)]
        out[protocol] = {
            "psnr": sum(psnrs) / len(psnrs),
            "min_psnr": min(psnrs),
            "gain": sum(gains) / len(gains) if gains else math.nan,
            "min_gain": min(gains) if gains else math.nan,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--model", nargs="+", default=["DCI-CNN"], help="method names in the results")
    parser.add_argument("--targets", default="v4", help="a model card's name (v4, v3) or a targets CSV")
    args = parser.parse_args()
    files = [json.loads(path.read_text()) for path in args.results]
    data = {"dataset": files[0]["dataset"], "rows": [row for f in files for row in f["rows"]]}
    targets = load_targets(args.targets)
    stats = {m: statistics(data["rows"], m) for m in args.model}
    print(f"{data['dataset']}: " + ", ".join(args.model))
    print("| target | kind | " + " | ".join(f"{m} | margin" for m in args.model) + " |")
    print("|---|---|" + "---|---|" * len(args.model))
    failed = False
    for protocol, statistic, threshold, kind in targets:
        cells = []
        for m in args.model:
            value = stats[m].get(protocol, {}).get(statistic)
            if value is None or math.isnan(value):
                cells += ["-", "-"]
                continue
            margin = value - threshold
            flag = " FAIL" if kind == "must" and margin < 0 else ""
            failed = failed or bool(flag)
            cells += [f"{value:+.2f}" if "gain" in statistic else f"{value:.2f}", f"{margin:+.2f}{flag}"]
        label = f"{protocol} {statistic.replace('_', ' ')} >= {threshold:g}"
        print(f"| {label} | {kind} | " + " | ".join(cells) + " |")
    extra = sorted({p for m in args.model for p in stats[m]} - {t[0] for t in targets})
    for protocol in extra:
        cells = []
        for m in args.model:
            s = stats[m].get(protocol)
            cells += ["-", "-"] if s is None else [f"{s['gain']:+.2f}", f"worst {s['min_gain']:+.2f}"]
        print(f"| {protocol} gain | report | " + " | ".join(cells) + " |")
    if failed:
        raise SystemExit("a must failed")


if __name__ == "__main__":
    main()
