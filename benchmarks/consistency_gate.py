"""How much of the JPEG consistency projection to apply: the figures behind `Tuning.consistency_gate`.

    python benchmarks/consistency_gate.py                    # McMaster, the default's protocols, the default gates
    python benchmarks/consistency_gate.py --data DIR --protocols blur-s2+jpeg-q30 jpeg-q40 --gates 0.15,0.35 none

Each image is degraded by each protocol and restored by the bundled default (or `--model`) told the protocol's JPEG
quality, without the projection; the projection onto the file's bins is then applied with each gate: all of it when
it would remove at most `full` of the correction's energy, none from `off`, linear between. Rows: protocols; columns:
gates (`none`: always all of it, `off`: never), each the mean RGB PSNR and, in brackets, the worst image's change
against always projecting. Choose on a validation set (McMaster), never on Kodak24, which the model card reports once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dcicnn import DCICNN, RestoreOptions
from dcicnn.damage.consistency import JpegGrid, project
from dcicnn.evaluate.evaluation import psnr
from dcicnn.restore.policy import consistency_share
from dcicnn.train.degradations import PROTOCOLS, apply_protocol, protocol_target
from dcicnn.train.sources import FolderSource

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mcmaster"
DEFAULT_PROTOCOLS = ["jpeg-q20", "jpeg-q30", "jpeg-q40", "jpeg-q50", "jpeg-q75", "blur-s1+jpeg-q30",
                     "blur-s2+jpeg-q30", "mixed-light", "mixed-heavy"]  # fmt: skip


def gate(text: str) -> tuple[float, float] | None | str:
    """``"full,off"``, ``"none"`` (always project) or ``"off"`` (never)."""
    if text in ("none", "off"):
        return None if text == "none" else "off"
    full, off = (float(v) for v in text.split(","))
    return full, off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=None, help="model directory (default: the bundled default)")
    parser.add_argument("--protocols", nargs="+", default=DEFAULT_PROTOCOLS)
    parser.add_argument("--gates", nargs="+", type=gate, default=[None, "off", (0.1, 0.3), (0.15, 0.35), (0.2, 0.4)])
    args = parser.parse_args()
    model = DCICNN.from_pretrained(args.model) if args.model else DCICNN.from_pretrained()
    source = FolderSource(args.data)
    print("| protocol | " + " | ".join(str(g) for g in args.gates) + " |")
    print("|---" * (len(args.gates) + 1) + "|")
    for protocol in args.protocols:
        quality = PROTOCOLS[protocol].jpeg
        assert quality is not None, f"{protocol} saves no JPEG"
        scores: list[list[float]] = [[] for _ in args.gates]
        for index in range(len(source)):
            image = source.load(index)
            clean = protocol_target(protocol, image).astype(np.float64)
            degraded = apply_protocol(protocol, image, key=source.key(index))
            options = RestoreOptions(jpeg_quality=quality, jpeg_consistency=False)
            restored = torch.from_numpy(model.restore(degraded, options=options)).permute(2, 0, 1).double()
            before = torch.from_numpy(degraded).permute(2, 0, 1).double()
            projected = project(restored, before, JpegGrid.from_quality(quality))
            for column, chosen in enumerate(args.gates):
                share = 0.0 if chosen == "off" else consistency_share(restored, projected, before, chosen)
                out = (restored + share * (projected - restored)).permute(1, 2, 0).numpy()
                scores[column].append(psnr(np.clip(np.rint(out * 255), 0, 255), clean))
        always = np.array(scores[args.gates.index(None)]) if None in args.gates else None
        cells = []
        for values in scores:
            worst = f" ({float(np.min(np.array(values) - always)):+.2f})" if always is not None else ""
            cells.append(f"{np.mean(values):.2f}{worst}")
        print(f"| {protocol} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
