"""Short `dcicnn fit` runs that compare training recipes, and a table of what they reached.

    python benchmarks/short_runs.py paper --steps 400           # the paper's lr 0.01 vs 1e-3; MSE vs L1/Charbonnier

Every run is a real `dcicnn fit` (the same command a user runs) with overrides on top of a config, writing to
`runs/short/<group>/<name>`; its validation metrics (McMaster 256x256 centre crops, so Kodak24 stays held out)
are read back from the CSV logger and printed as a markdown table: PSNR per protocol and its gain over the
degraded input. `--table-only` reprints the table from runs already made. Short runs rank recipes by how fast they
learn, not by where they end: read them as such.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

VAL = ["--data.val_dirs=[../shared/data/mcmaster]", "--data.val_crop=256"]

#: name -> (configs, overrides); every group's first run is its reference.
GROUPS: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "paper": {
        "paper, lr 0.01, MSE": (["configs/paper.yaml"], []),
        "paper, lr 1e-3, MSE": (["configs/paper.yaml"], ["--model.lr=0.001"]),
        "paper, lr 1e-3, L1": (["configs/paper.yaml"], ["--model.lr=0.001", "--model.loss=l1"]),
        "paper, lr 1e-3, Charbonnier": (["configs/paper.yaml"], ["--model.lr=0.001", "--model.loss=charbonnier"]),
    },
}
PROTOCOLS = ["paper-64", "jpeg-q10", "jpeg-q30", "noise-s25", "blur-s2+jpeg-q30", "mixed-light", "mixed-heavy"]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def run(group: str, name: str, steps: int, val_every: int) -> float:
    configs, overrides = GROUPS[group][name]
    root = Path("runs/short") / group / slug(name)
    command = [sys.executable, "-m", "dcicnn_cli.main", "fit"]
    for config in configs:
        command += ["--config", config]
    command += [
        *VAL,
        f"--data.val_protocols=[{','.join(PROTOCOLS)}]",
        f"--trainer.max_steps={steps}",
        f"--trainer.val_check_interval={val_every}",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={root}",
        f"--trainer.logger.init_args.save_dir={root}",
        "--trainer.logger.init_args.version=0",
        *overrides,
    ]
    print(f"[{group}] {name}: {' '.join(command[2:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def last_validation(group: str, name: str) -> dict[str, float]:
    path = Path("runs/short") / group / slug(name) / "lightning_logs" / "version_0" / "metrics.csv"
    rows = [r for r in csv.DictReader(path.open()) if r.get("val/psnr")]
    if not rows:
        raise SystemExit(f"no validation in {path}")
    last = rows[-1]
    return {"step": float(last["step"]) + 1, **{k: float(v) for k, v in last.items() if k.startswith("val/") and v}}


def table(group: str) -> str:
    lines = [
        "| run | steps | " + " | ".join(PROTOCOLS) + " |",
        "|---|---:|" + "---:|" * len(PROTOCOLS),
    ]
    for name in GROUPS[group]:
        try:
            metrics = last_validation(group, name)
        except (FileNotFoundError, SystemExit):
            continue
        cells = [
            f"{metrics[f'val/{p}/psnr']:.2f} ({metrics[f'val/{p}/psnr_gain']:+.2f})"
            if f"val/{p}/psnr" in metrics
            else "-"
            for p in PROTOCOLS
        ]
        lines.append(f"| {name} | {int(metrics['step'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--only", nargs="+", help="run only these names (default: the whole group)")
    parser.add_argument("--table-only", action="store_true", help="print the table of runs already made")
    args = parser.parse_args()
    if not args.table_only:
        for name in args.only or GROUPS[args.group]:
            seconds = run(args.group, name, args.steps, args.val_every)
            print(f"  {seconds / 60:.1f} min", flush=True)
    print(table(args.group))


if __name__ == "__main__":
    main()
