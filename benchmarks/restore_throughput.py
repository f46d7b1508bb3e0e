"""Throughput of the ways to restore many images, against the single-image path (`DCICNN.restore` in a loop).

    python benchmarks/restore_throughput.py                         # 24 JPEGs of 512x384, 1 and 2 processes
    python benchmarks/restore_throughput.py --count 64 --devices 1 2 4 --accelerator gpu

Writes `--count` JPEG crops of the Kodak24 images (or the bundled sample) into a temporary folder, then times, each
from start to finish in its own process (start-up and model loading included, as a user sees it):
- `loop`: `DCICNN.restore(Image.open(f))` + PNG save for every file, in one Python process;
- `restore`: `dcicnn restore FOLDER -o OUT`;
- `restore --hf`: the same files as a local `imagefolder` dataset;
- `restore --devices N`: the Lightning predict path with N processes (DDP for N > 1). On a CPU, each process gets
  cores / N threads, so the processes share the machine rather than oversubscribe it.
Prints a Markdown table: seconds, images/s and megapixels/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak24"
EXE = str(Path(sys.executable).with_name("dcicnn"))

LOOP = """
import sys
from pathlib import Path
from PIL import Image
from dcicnn import DCICNN
model = DCICNN.from_pretrained()
out = Path(sys.argv[2]); out.mkdir()
for path in sorted(Path(sys.argv[1]).glob("*.jpg")):
    with Image.open(path) as image:
        model.restore(image).save(out / (path.stem + ".png"))
"""


def make_images(folder: Path, count: int, size: tuple[int, int], data: Path = KODAK) -> None:
    sources = sorted(data.glob("*.png")) or [ROOT / "dcicnn" / "assets" / "sample.png"]
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as image:
            rgb = image.convert("RGB")
        w, h = min(size[0], rgb.width), min(size[1], rgb.height)
        x, y = (i * 37) % (rgb.width - w + 1), (i * 23) % (rgb.height - h + 1)
        rgb.crop((x, y, x + w, y + h)).save(folder / f"img{i:04d}.jpg", quality=30)


def timed(command: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=KODAK, help="PNG photos to cut the test images from")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size", type=int, nargs=2, default=[512, 384], metavar=("W", "H"))
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = root / "images"
        images.mkdir()
        make_images(images, args.count, tuple(args.size), args.data)
        megapixels = sum(Image.open(p).width * Image.open(p).height for p in images.iterdir()) / 1e6
        runs: list[tuple[str, float]] = [
            (
                "loop: DCICNN.restore per image",
                timed([sys.executable, "-c", LOOP, str(images), str(root / "a")], cores),
            ),
            ("dcicnn restore FOLDER", timed([EXE, "restore", str(images), "-o", str(root / "b")], cores)),
            (
                "dcicnn restore --hf imagefolder",
                timed([EXE, "restore", "--hf", "imagefolder", "--data-dir", str(images), "-o", str(root / "c")], cores),
            ),
        ]
        for n in args.devices:
            command = [EXE, "restore", str(images), "-o", str(root / f"d{n}"), "--devices", str(n)]
            command += ["--accelerator", args.accelerator]
            runs.append((f"dcicnn restore --devices {n}", timed(command, max(1, cores // n))))
    print(f"{args.count} JPEGs of {args.size[0]}x{args.size[1]} ({megapixels:.1f} MP), {cores} cores, bundled model\n")
    print("| path | seconds | images/s | MP/s | vs loop |")
    print("|---|---|---|---|---|")
    base = runs[0][1]
    for label, seconds in runs:
        rates = f"{args.count / seconds:.2f} | {megapixels / seconds:.3f} | {base / seconds:.2f}x"
        print(f"| {label} | {seconds:.1f} | {rates} |")


if __name__ == "__main__":
    main()
