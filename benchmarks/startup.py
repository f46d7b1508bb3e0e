"""Start-up time of the library and the command line: each case in a fresh process, the median of several runs.

    python benchmarks/startup.py                      # this checkout
    python benchmarks/startup.py --repo /tmp/before   # another checkout (e.g. `git worktree add /tmp/before HEAD~3`)

The checkout's ``dcicnn/`` and its ``cli/`` (as ``dcicnn_cli``) are put first on ``sys.path``, so the code measured is
that checkout's, whatever is installed. Also lists which of the heavy packages each case imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _command(*argv: str) -> str:
    """Python code that runs ``dcicnn ARGV`` in-process (``--help`` exits through SystemExit)."""
    return f"from dcicnn_cli.main import main\ntry: main({list(argv)!r})\nexcept SystemExit: pass"


CASES = {
    "import dcicnn": "import dcicnn",
    "from dcicnn import DCICNN": "from dcicnn import DCICNN",
    "dcicnn --help": _command("--help"),
    "dcicnn restore --help": _command("restore", "--help"),
    "dcicnn fit --help": _command("fit", "--help"),
}
HEAVY = ("torch", "lightning", "albumentations", "torchmetrics")


def measure(code: str, path: str, cwd: str, repeat: int) -> tuple[float, list[str]]:
    probe = f"{code}\nimport sys\nprint('HEAVY', *[m for m in {HEAVY!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": path}
    times, loaded = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, cwd=cwd, capture_output=True, text=True, check=True
        )
        times.append(time.perf_counter() - start)
        loaded = next(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("HEAVY"))
    return statistics.median(times), loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to measure")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory() as links:
        (Path(links) / "dcicnn_cli").symlink_to(repo / "cli")  # the package name cli/ is installed under
        path = os.pathsep.join([str(repo), links])
        print(f"checkout: {repo}; python {sys.version.split()[0]}; median of {args.repeat} fresh processes\n")
        print("| case | seconds | heavy packages imported |")
        print("|---|---|---|")
        for name, code in CASES.items():
            seconds, loaded = measure(code, path, links, args.repeat)  # cwd: no checkout is on sys.path[0]
            print(f"| `{name}` | {seconds:.2f} | {', '.join(loaded) or 'none'} |", flush=True)


if __name__ == "__main__":
    main()
