"""Check `dcicnn evaluate` results against the default model's targets: "do no harm" musts, restoration aims, each
with its margin, per method (e.g. a conditioned model scored with `--jpeg-hint auto file none`). `--targets v3`
(issue 12, the default) or `v4` (issue 22: the same musts, higher aims); several results files (evaluations split
by protocol) are read as one.

    python benchmarks/v3_targets.py eval/kodak24/results.json --model "DCI-CNN [auto]" "DCI-CNN [file]"
    python benchmarks/v3_targets.py eval/a/results.json eval/b/results.json --targets v4 --model "v4 [file]"

Gains are RGB PSNR over the degraded input, in dB, averaged over images; "worst" is the lowest single image. A
must that fails is marked FAIL; an aim that is missed shows a negative margin.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

#: (protocol, statistic, threshold, kind): statistic is "psnr" (mean), "min_psnr" (worst image), "gain" (mean gain
#: over the input) or "min_gain" (worst image's gain).
MUSTS: list[tuple[str, str, float, str]] = [
    ("clean", "psnr", 45.0, "must"),
    ("clean", "min_psnr", 42.0, "must"),
    ("jpeg-q90", "gain", 0.0, "must"),
    ("jpeg-q90", "min_gain", -0.1, "must"),
    ("jpeg-q95", "gain", 0.0, "must"),
    ("jpeg-q95", "min_gain", -0.1, "must"),
    ("jpeg-q75", "gain", 0.2, "must"),
]
TARGETS: list[tuple[str, str, float, str]] = [
    *MUSTS,
    ("jpeg-q10", "gain", 1.2, "aim"),
    ("jpeg-q20", "gain", 1.0, "aim"),
    ("jpeg-q30", "gain", 1.0, "aim"),
    ("jpeg-q40", "gain", 1.0, "aim"),
    ("noise-s25", "psnr", 31.8, "aim"),
    ("noise-s15", "psnr", 34.0, "aim"),
    ("blur-s1+jpeg-q30", "gain", 1.5, "aim"),
    ("blur-s2+jpeg-q30", "gain", 1.5, "aim"),
    ("mixed-light", "gain", 1.5, "aim"),
    ("mixed-heavy", "gain", 1.0, "aim"),
]
V4_TARGETS: list[tuple[str, str, float, str]] = [
    *MUSTS,
    ("jpeg-q10", "gain", 1.6, "aim"),
    *((f"jpeg-q{q}", "gain", 1.4, "aim") for q in (20, 30, 40)),
    ("noise-s15", "psnr", 34.6, "aim"),
    ("noise-s25", "psnr", 32.1, "aim"),
    ("noise-s50", "psnr", 29.0, "aim"),
    ("blur-s1+jpeg-q30", "gain", 1.2, "aim"),
    ("blur-s2+jpeg-q30", "gain", 1.5, "aim"),
    ("mixed-light", "gain", 1.5, "aim"),
    ("mixed-heavy", "gain", 1.0, "aim"),
]


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
    parser.add_argument("--targets", choices=("v3", "v4"), default="v3")
    args = parser.parse_args()
    files = [json.loads(path.read_text()) for path in args.results]
    data = {"dataset": files[0]["dataset"], "rows": [row for f in files for row in f["rows"]]}
    targets = TARGETS if args.targets == "v3" else V4_TARGETS
    stats = {m: statistics(data["rows"], m) for m in args.model}
    print(f"{data['dataset']}: " + ", ".join(args.model))
    print("| target | kind | " + " | ".join(f"{m} | margin" for m in args.model) + " |")
    print("|---|---|" + "---|---|" * len(args.model))
    for protocol, statistic, threshold, kind in targets:
        cells = []
        for m in args.model:
            value = stats[m].get(protocol, {}).get(statistic)
            if value is None or math.isnan(value):
                cells += ["-", "-"]
                continue
            margin = value - threshold
            flag = " FAIL" if kind == "must" and margin < 0 else ""
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


if __name__ == "__main__":
    main()
