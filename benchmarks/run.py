"""One runner for what a set of weights is judged by, each measurement written under an output folder:

    python benchmarks/run.py quality --model default --card v4 --data ../shared/data/kodak24 --out docs/results/kodak
    python benchmarks/run.py quality --model v3 --card v3 --data DIR --protocol clean jpeg-q90 --jpeg-hint file auto
    python benchmarks/run.py speed --model default --out docs/results/v4-speed --sizes 1 4

quality: `dcicnn evaluate` into OUT/eval/ (results.md, .csv, .json, the plot and the image grids), then the card's
targets (`model_cards/CARD/targets.csv`, `benchmarks/targets.py`) checked on them into OUT/targets.md, one column per
JPEG hint mode; the exit status is 1 when a must fails. speed: `benchmarks/inference.py` for the weights into
OUT/speed.md. `--model` takes what `dcicnn --model` takes (a bundled name, a folder, a Hub id).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def quality(args: argparse.Namespace) -> int:
    from dcicnn_cli.main import main as dcicnn

    evaluation = args.out / "eval"
    command = ["evaluate", "--model", args.model, "--data", str(args.data), "-o", str(evaluation), "--no-classical"]
    command += ["--jpeg-hint", *args.jpeg_hint] + (["--protocol", *args.protocol] if args.protocol else [])
    if dcicnn(command) != 0:
        return 1
    summary = json.loads((evaluation / "results.json").read_text())["summary"]
    methods = sorted({m for protocol in summary.values() for m in protocol} - {"input"})
    check = [sys.executable, str(HERE / "targets.py"), str(evaluation / "results.json"), "--targets", args.card]
    done = subprocess.run([*check, "--model", *methods], capture_output=True, text=True)
    if done.stdout:
        (args.out / "targets.md").write_text(done.stdout)
        print(done.stdout, end="")
    if done.returncode:
        print(done.stderr.strip(), file=sys.stderr)
    return done.returncode


def speed(args: argparse.Namespace) -> int:
    command = [sys.executable, str(HERE / "inference.py"), "--model", args.model, "--device", args.device]
    command += ["--sizes", *map(str, args.sizes), "--whole-max", str(args.whole_max)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(done.stderr.strip(), file=sys.stderr)
        return done.returncode
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.md").write_text(f"`{' '.join(['python', *command[1:]])}`\n\n{done.stdout}")
    print(done.stdout, end="")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    judge = sub.add_parser("quality", help="evaluate, then check the card's targets")
    judge.add_argument("--model", default="default")
    judge.add_argument("--card", default="v4", help="whose targets: a card's name (v4, v3) or a targets CSV")
    judge.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "kodak24")
    judge.add_argument("--protocol", nargs="+", help="default: every protocol but paper-*")
    judge.add_argument("--jpeg-hint", nargs="+", default=["file"], choices=["auto", "file", "none"])
    judge.add_argument("--out", type=Path, required=True)
    judge.set_defaults(run=quality)
    time = sub.add_parser("speed", help="restore speed and memory against image size")
    time.add_argument("--model", default="default")
    time.add_argument("--device", default="cpu")
    time.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1, 4])
    time.add_argument("--whole-max", type=float, default=1)
    time.add_argument("--out", type=Path, required=True)
    time.set_defaults(run=speed)
    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
