"""Evaluation: protocols x images x methods -> per-image metrics, tables (markdown, CSV, JSON), a plot and a grid.

Metrics (docs/evaluation.md): PSNR on RGB 0..255 after rounding a method's output to uint8, no border crop;
PSNR on Y (BT.601, as MATLAB's rgb2ycbcr); SSIM with a Gaussian window of 11 and sigma 1.5 (torchmetrics, on RGB);
MSE on the 0..1 scale (the paper's unit). The untouched degraded input is scored as given (for ``noise-*`` it is not
clipped or rounded), as the baseline every method must beat.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchmetrics.functional.image import structural_similarity_index_measure

from dcicnn.imageio import levels, save_image_atomic
from dcicnn.train.degradations import PROTOCOLS, apply_protocol, check_protocols, gaussian_blur, protocol_target
from dcicnn.train.sources import FolderSource, ImageSource

__all__ = ["Evaluation", "Row", "classical_methods", "evaluate", "psnr", "psnr_y"]

Method = Callable[[np.ndarray, str], np.ndarray]
"""A restoration method: (degraded float32 HxWxC on 0..1, protocol name) -> restored float HxWxC on 0..1."""


@dataclass
class Row:
    """The scores of one method on one image under one protocol."""

    protocol: str
    image: str
    method: str
    psnr: float
    psnr_y: float
    ssim: float
    mse: float


def psnr(output: np.ndarray, clean: np.ndarray) -> float:
    """PSNR in dB on the 0..255 scale."""
    mse = float(np.mean((np.asarray(output, np.float64) - np.asarray(clean, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 16..235 scale, as MATLAB's ``rgb2ycbcr`` (gray images are returned as they are)."""
    rgb = np.asarray(image, np.float64)
    if rgb.ndim == 2 or rgb.shape[2] == 1:
        return rgb.reshape(rgb.shape[:2])
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr_y(output: np.ndarray, clean: np.ndarray) -> float:
    """PSNR in dB of the BT.601 luma."""
    return psnr(to_y(output), to_y(clean))


def ssim(output: np.ndarray, clean: np.ndarray) -> float:
    """SSIM on the 0..255 scale, Gaussian window 11, sigma 1.5, averaged over channels."""

    def tensor(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a, np.float32)  # float32: 14x faster than float64 here, equal to 1e-7
        a = a[:, :, None] if a.ndim == 2 else a
        return torch.from_numpy(a).permute(2, 0, 1)[None]

    value = structural_similarity_index_measure(
        tensor(output), tensor(clean), data_range=255.0, gaussian_kernel=True, sigma=1.5, kernel_size=11
    )
    assert isinstance(value, torch.Tensor)  # one value: no full SSIM image was asked for
    return float(value)


def score(protocol: str, image: str, method: str, output: np.ndarray, clean: np.ndarray) -> Row:
    return Row(
        protocol,
        image,
        method,
        psnr(output, clean),
        psnr_y(output, clean),
        ssim(output, clean),
        float(np.mean(((np.asarray(output, np.float64) - clean) / 255.0) ** 2)),
    )


# ----------------------------------------------------------------------------------------------------------------------
# Classical baselines.
def wiener_deconvolution(image: np.ndarray, sigma: float, nsr: float = 0.01) -> np.ndarray:
    """Wiener deconvolution with the true Gaussian kernel (size ``2 ceil(3 sigma) + 1``) and a constant noise-to-signal
    ratio, per channel in the Fourier domain, on a mirror-padded copy to avoid wrap-around at the borders."""
    radius = math.ceil(3 * sigma)
    pad = 2 * radius
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    height, width = padded.shape[:2]
    impulse = np.zeros((height, width))
    impulse[0, 0] = 1.0
    psf = gaussian_blur(np.roll(impulse, (radius, radius), axis=(0, 1)), sigma)
    psf = np.roll(psf, (-radius, -radius), axis=(0, 1))
    kernel = np.fft.rfft2(psf)
    gain = np.conj(kernel) / (np.abs(kernel) ** 2 + nsr)
    out = np.stack(
        [np.fft.irfft2(np.fft.rfft2(padded[..., c]) * gain, s=(height, width)) for c in range(padded.shape[2])], axis=-1
    )
    return out[pad:-pad, pad:-pad]


def non_local_means(image: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV's non-local means (colour), with its strength set from the known noise sigma (0..255 scale)."""
    import cv2

    uint8 = levels(image).astype(np.uint8)
    h = 0.8 * sigma  # OpenCV's filter strength; about 0.8 sigma is the usual choice for Gaussian noise
    if uint8.ndim == 3 and uint8.shape[2] == 3:
        out = cv2.fastNlMeansDenoisingColored(uint8, None, h, h, 7, 21)
    else:
        out = cv2.fastNlMeansDenoising(uint8.reshape(uint8.shape[:2]), None, h, 7, 21).reshape(uint8.shape)
    return out.astype(np.float32) / 255.0


def classical_methods() -> dict[str, tuple[Method, Callable[[str], bool]]]:
    """Classical methods and the protocols they apply to (they need the true degradation parameters)."""

    def wiener(image: np.ndarray, protocol: str) -> np.ndarray:
        return wiener_deconvolution(image, PROTOCOLS[protocol].blur)

    def nlm(image: np.ndarray, protocol: str) -> np.ndarray:
        return non_local_means(image, PROTOCOLS[protocol].noise)

    return {
        "wiener (true kernel)": (wiener, lambda p: PROTOCOLS[p].blur > 0),
        "non-local means (true sigma)": (nlm, lambda p: PROTOCOLS[p].noise > 0),
    }


# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    """All rows of one evaluation, with the tables and figures made from them."""

    rows: list[Row]
    dataset: str

    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.rows))

    def protocols(self) -> list[str]:
        return list(dict.fromkeys(r.protocol for r in self.rows))

    def mean(self, protocol: str, method: str, metric: str = "psnr") -> float:
        values = [getattr(r, metric) for r in self.rows if r.protocol == protocol and r.method == method]
        return float(np.mean(values)) if values else math.nan

    def summary_markdown(self) -> str:
        """Mean RGB PSNR (dB) per protocol (rows) and method (columns); SSIM in parentheses."""
        methods = self.methods()
        lines = [f"| protocol ({self.dataset}) | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        for protocol in self.protocols():
            cells = []
            for method in methods:
                value = self.mean(protocol, method)
                cells.append("" if math.isnan(value) else f"{value:.2f} ({self.mean(protocol, method, 'ssim'):.4f})")
            lines.append(f"| {protocol} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def protocol_markdown(self, protocol: str) -> str:
        """One row per image and the average last, as the paper's Tables 2 and 3, for one protocol."""
        methods = [m for m in self.methods() if not math.isnan(self.mean(protocol, m))]
        images = list(dict.fromkeys(r.image for r in self.rows if r.protocol == protocol))
        lookup = {(r.image, r.method): r for r in self.rows if r.protocol == protocol}
        header = "| image | " + " | ".join(f"{m} PSNR / PSNR-Y / SSIM / MSE" for m in methods) + " |"
        lines = [f"### {protocol}", "", header, "|---|" + "---|" * len(methods)]
        for image in [*images, "average"]:
            cells = []
            for method in methods:
                if image == "average":
                    values = [self.mean(protocol, method, k) for k in ("psnr", "psnr_y", "ssim", "mse")]
                else:
                    r = lookup[(image, method)]
                    values = [r.psnr, r.psnr_y, r.ssim, r.mse]
                cells.append(f"{values[0]:.2f} / {values[1]:.2f} / {values[2]:.4f} / {values[3]:.6f}")
            lines.append(f"| {'**average**' if image == 'average' else image} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write(self, directory: Path) -> dict[str, Path]:
        """Write ``results.md``, ``results.csv``, ``results.json`` and ``psnr.png`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {k: directory / f"results.{k}" for k in ("md", "csv", "json")}
        markdown = [
            f"# Evaluation on {self.dataset}",
            "",
            "Mean RGB PSNR in dB (SSIM):",
            "",
            self.summary_markdown(),
            "",
        ]
        markdown += [self.protocol_markdown(p) + "\n" for p in self.protocols()]
        paths["md"].write_text("\n".join(markdown))
        with paths["csv"].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(self.rows[0])))
            writer.writeheader()
            writer.writerows(asdict(r) for r in self.rows)
        summary = {
            p: {
                m: {k: self.mean(p, m, k) for k in ("psnr", "psnr_y", "ssim", "mse")}
                for m in self.methods()
                if not math.isnan(self.mean(p, m))
            }
            for p in self.protocols()
        }
        paths["json"].write_text(
            json.dumps({"dataset": self.dataset, "summary": summary, "rows": [asdict(r) for r in self.rows]}, indent=1)
        )
        paths["png"] = self.plot(directory / "psnr.png")
        return paths

    def plot(self, path: Path) -> Path:
        """Grouped bars: mean RGB PSNR per protocol and method (needs matplotlib: ``pip install 'dcicnn[eval]'``)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        protocols, methods = self.protocols(), self.methods()
        figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(protocols)), 4.0))
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            # no bar where the value is infinite (the input of `clean`) or missing
            values = [v if math.isfinite(v := self.mean(p, method)) else math.nan for p in protocols]
            axes.bar(np.arange(len(protocols)) + (i - (len(methods) - 1) / 2) * width, values, width, label=method)
        axes.set_xticks(np.arange(len(protocols)), protocols, rotation=30, ha="right")
        axes.set_ylabel("PSNR (dB, RGB)")
        finite = [v for p in protocols for m in methods if math.isfinite(v := self.mean(p, m))]
        axes.set_ylim(max(0.0, min(finite) - 3), max(finite) + 1)
        axes.set_title(f"DCI-CNN evaluation on {self.dataset}")
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
        return path


def evaluate(
    source: ImageSource | str | Path,
    protocols: Sequence[str],
    methods: dict[str, Method],
    *,
    classical: bool = True,
    dataset: str | None = None,
    grid: Path | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Evaluation:
    """Score every method on every image under every protocol (see the module docstring for the metrics).

    Args:
        source: an ``ImageSource`` or a folder of clean images.
        protocols: names from ``PROTOCOLS``.
        methods: name -> method; the untouched input is always scored first, as ``input``.
        classical: also score the classical methods that apply (Wiener for blur, non-local means for noise).
        dataset: the name used in the tables (default: the folder's name).
        grid: if set, write one side-by-side image per protocol there (degraded | each method | clean, full image and
            a 2x zoom of the centre), for the first image.
        progress: called with 1 after each (protocol, image).
    """
    check_protocols(protocols)
    if not isinstance(source, (str, Path)):
        name = dataset or "images"
    else:
        name = dataset or Path(source).name
        source = FolderSource(source)
    extra = classical_methods() if classical else {}
    rows: list[Row] = []
    for protocol in protocols:
        for index in range(len(source)):
            key = source.key(index)
            image = source.load(index)
            clean = protocol_target(protocol, image)
            degraded = apply_protocol(protocol, image, key=key)
            outputs = {"input": degraded * 255.0}
            for method_name, method in methods.items():
                outputs[method_name] = levels(method(degraded, protocol))
            for method_name, (method, applies) in extra.items():
                if applies(protocol):
                    outputs[method_name] = levels(method(degraded, protocol))
            for method_name, output in outputs.items():
                rows.append(score(protocol, key, method_name, output.reshape(clean.shape), clean.astype(np.float64)))
            if grid is not None and index == 0:
                _save_grid(grid / f"{protocol}.png", degraded, outputs, clean)
            if progress is not None:
                progress(1)
    return Evaluation(rows, name)


def _save_grid(path: Path, degraded: np.ndarray, outputs: dict[str, np.ndarray], clean: np.ndarray) -> None:
    """degraded | methods... | clean, each as the full image above a 2x zoom of its centre."""
    panels = [("input", levels(degraded))] + [(k, v) for k, v in outputs.items() if k != "input"] + [("clean", clean)]
    tiles = []
    for label, array in panels:
        image = Image.fromarray(np.asarray(array, np.uint8).reshape(clean.shape).squeeze())
        w, h = image.size
        side = min(w, h) // 4
        crop = image.crop((w // 2 - side // 2, h // 2 - side // 2, w // 2 + side // 2, h // 2 + side // 2))
        crop = crop.resize((side * 2, side * 2), Image.Resampling.NEAREST)
        tile = Image.new("RGB", (w, h + crop.height + 18), "white")
        tile.paste(image.convert("RGB"), (0, 18))
        tile.paste(crop.convert("RGB"), ((w - crop.width) // 2, h + 18))
        ImageDraw.Draw(tile).text((3, 3), label, fill="black")
        tiles.append(tile)
    grid = Image.new("RGB", (sum(t.width for t in tiles) + 6 * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for tile in tiles:
        grid.paste(tile, (x, 0))
        x += tile.width + 6
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image_atomic(grid, path)
