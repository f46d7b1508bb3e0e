"""Evaluation metrics, baselines, tables and the `dcicnn evaluate` command."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from dcicnn import DCICNN
from dcicnn.evaluate.evaluation import evaluate, non_local_means, psnr, psnr_y, ssim, to_y, wiener_deconvolution
from dcicnn.train.degradations import apply_protocol, gaussian_blur
from dcicnn_cli.main import main


def smooth(size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 225, size=(size // 16, size // 16, 3)).astype(np.float64)
    up = np.kron(base, np.ones((16, 16, 1)))
    return np.clip(gaussian_blur(up, 3.0), 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "clean"
    root.mkdir()
    for i in range(3):
        # a photo's faint grain: a synthetic image this smooth reads as a high-quality JPEG, which restore() rightly
        # leaves untouched, and the card test below needs a clean image the model changes
        grain = np.random.default_rng(i).normal(0, 2.0, (64, 64, 3))
        Image.fromarray(np.clip(smooth(seed=i) + grain, 0, 255).round().astype(np.uint8)).save(root / f"im{i}.png")
    return root


def test_metric_definitions() -> None:
    a = np.full((8, 8, 3), 100.0)
    assert psnr(a, a) == math.inf and ssim(a, a) == pytest.approx(1.0)
    assert psnr(a + 5, a) == pytest.approx(20 * math.log10(255 / 5))
    assert to_y(np.array([[[255, 255, 255]]]))[0, 0] == pytest.approx(235.0, abs=1e-3)  # MATLAB rgb2ycbcr
    assert to_y(np.array([[[0, 0, 0]]]))[0, 0] == pytest.approx(16.0)
    assert psnr_y(a + np.array([10.0, 0, 0]), a) > psnr(a + np.array([10.0, 0, 0]), a)  # Y weights red by 0.257


def test_wiener_and_nlm_improve_on_their_degradations() -> None:
    clean = smooth(96).astype(np.float64)
    blurred = gaussian_blur(clean, 1.5)
    restored = wiener_deconvolution(blurred / 255.0, 1.5, nsr=1e-3) * 255.0
    assert psnr(restored, clean) > psnr(blurred, clean) + 3
    noisy = apply_protocol("noise-s25", clean.astype(np.uint8), key="k")
    denoised = non_local_means(noisy, 25.0) * 255.0
    assert psnr(denoised, clean) > psnr(noisy * 255.0, clean) + 5


def test_evaluate_writes_tables_plot_and_grids(folder: Path, tmp_path: Path) -> None:
    identity = {"identity": lambda degraded, protocol: degraded}
    result = evaluate(
        folder, ["jpeg-q10", "noise-s25", "blur-s1+jpeg-q30", "paper-32"], identity, grid=tmp_path / "grids"
    )
    assert result.methods() == ["input", "identity", "non-local means (true sigma)", "wiener (true kernel)"]
    # the identity of a JPEG input is the input itself: same score
    assert result.mean("jpeg-q10", "identity") == pytest.approx(result.mean("jpeg-q10", "input"))
    # for noise the identity is rounded and clipped to 8 bits, the input is scored as given
    assert abs(result.mean("noise-s25", "input") - 20.17) < 0.3
    paths = result.write(tmp_path / "out")
    markdown = paths["md"].read_text()
    assert "| protocol (clean) | input | identity |" in markdown and "**average**" in markdown
    assert "### paper-32" in markdown
    rows = list(csv.DictReader(paths["csv"].read_text().splitlines()))
    # per image: input + identity everywhere, NLM where there is noise, Wiener where there is blur (paper-32: both)
    assert len(rows) == 3 * (2 + 3 + 3 + 4)
    summary = json.loads(paths["json"].read_text())["summary"]
    assert set(summary) == {"jpeg-q10", "noise-s25", "blur-s1+jpeg-q30", "paper-32"}
    with Image.open(paths["png"]) as plot:
        assert plot.width > 300
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == [
        "blur-s1+jpeg-q30.png",
        "jpeg-q10.png",
        "noise-s25.png",
        "paper-32.png",
    ]


def test_evaluate_cli(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    DCICNN(width=8, depth=3).save_pretrained(tmp_path / "m")
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(folder),
            "--protocol",
            "jpeg-q20",
            "noise-s15",
            "clean",
            "-o",
            str(tmp_path / "eval"),
            "--no-classical",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| protocol (clean) | input | DCI-CNN |" in out and "| jpeg-q20 |" in out
    assert (tmp_path / "eval" / "results.md").is_file() and (tmp_path / "eval" / "grids" / "jpeg-q20.png").is_file()
    args = ["evaluate", "--model", str(tmp_path / "m"), "--data", str(folder), "--no-classical"]
    assert main([*args, "--protocol", "jpeg-q20", "-o", str(tmp_path / "x8"), "--ensemble"]) == 0
    assert "| protocol (clean) | input | DCI-CNN | DCI-CNN x8 |" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(folder), "--protocol", "jpeg-q11"]) == 1
    assert "unknown protocols" in capsys.readouterr().err

    # the model card, rendered from those results
    (tmp_path / "training.md").write_text("Trained for a test.")
    summary = json.loads((tmp_path / "eval" / "results.json").read_text())["summary"]
    assert (
        main(
            [
                "card",
                str(tmp_path / "m"),
                "--results",
                f"clean-set={tmp_path / 'eval' / 'results.json'}",
                "--name",
                "dcicnn-test",
                "--training",
                str(tmp_path / "training.md"),
            ]
        )
        == 0
    )
    card = ModelCard.load(tmp_path / "m" / "README.md")
    (index,) = card.data.to_dict()["model-index"]
    values = {(r["dataset"]["config"], m["type"]): m["value"] for r in index["results"] for m in r["metrics"]}
    assert values[("jpeg-q20", "psnr")] == round(summary["jpeg-q20"]["DCI-CNN"]["psnr"], 4)
    assert values[("noise-s15", "psnr_input")] == round(summary["noise-s15"]["input"]["psnr"], 4)
    assert "Trained for a test." in card.text and "| clean | jpeg-q20 |" in card.text
    # `clean`: the restored PSNR, not the input's (infinite, which model-index metadata cannot carry)
    assert ("clean", "psnr") in values and ("clean", "psnr_input") not in values
    # another column of a multi-method evaluation
    x8 = f"clean-set={tmp_path / 'x8' / 'results.json'}"
    assert main(["card", str(tmp_path / "m"), "--results", x8, "--method", "DCI-CNN x8"]) == 0
    card = ModelCard.load(tmp_path / "m" / "README.md")
    x8_summary = json.loads((tmp_path / "x8" / "results.json").read_text())["summary"]
    (index,) = card.data.to_dict()["model-index"]
    values = {(r["dataset"]["config"], m["type"]): m["value"] for r in index["results"] for m in r["metrics"]}
    assert values[("jpeg-q20", "psnr")] == round(x8_summary["jpeg-q20"]["DCI-CNN x8"]["psnr"], 4)
    assert main(["card", str(tmp_path / "m"), "--results", "no-equals-sign"]) == 1
    # a protocol measured again (a later results file) replaces the earlier figures, in the earlier one's place
    again = json.loads((tmp_path / "eval" / "results.json").read_text())
    again["summary"] = {"jpeg-q20": again["summary"]["jpeg-q20"]}
    again["summary"]["jpeg-q20"]["DCI-CNN"]["psnr"] = 99.0
    (tmp_path / "again.json").write_text(json.dumps(again))
    first = f"clean-set={tmp_path / 'eval' / 'results.json'}"
    assert main(["card", str(tmp_path / "m"), "--results", first, f"clean-set={tmp_path / 'again.json'}"]) == 0
    (index,) = ModelCard.load(tmp_path / "m" / "README.md").data.to_dict()["model-index"]
    configs = [(r["dataset"]["config"], m["type"], m["value"]) for r in index["results"] for m in r["metrics"]]
    assert [c for c in configs if c[:2] == ("jpeg-q20", "psnr")] == [("jpeg-q20", "psnr", 99.0)]
    assert [c[0] for c in configs][0] == "jpeg-q20" and ("noise-s15", "psnr") in [c[:2] for c in configs]


def test_a_conditioned_model_is_scored_per_jpeg_hint_and_carded_per_mode(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import variant

    model = variant("conditioned")
    with torch.no_grad():  # make the condition inputs matter
        model.body[0].weight[:, 3:] = torch.randn_like(model.body[0].weight[:, 3:])
    model.save_pretrained(tmp_path / "m")
    args = ["evaluate", "--model", str(tmp_path / "m"), "--data", str(folder), "--no-classical"]
    assert (
        main(
            [*args, "--protocol", "jpeg-q30", "clean", "-o", str(tmp_path / "e"), "--jpeg-hint", "auto", "file", "none"]
        )
        == 0
    )
    assert "| input | DCI-CNN [auto] | DCI-CNN [file] | DCI-CNN [none] |" in capsys.readouterr().out
    summary = json.loads((tmp_path / "e" / "results.json").read_text())["summary"]
    assert summary["jpeg-q30"]["DCI-CNN [file]"]["psnr"] != summary["jpeg-q30"]["DCI-CNN [none]"]["psnr"]
    results = f"set={tmp_path / 'e' / 'results.json'}"
    assert (
        main(["card", str(tmp_path / "m"), "--results", results, "--method", "DCI-CNN [auto]", "DCI-CNN [file]"]) == 0
    )
    configs = {
        r["dataset"]["config"]
        for r in ModelCard.load(tmp_path / "m" / "README.md").data.to_dict()["model-index"][0]["results"]
    }
    assert configs == {"jpeg-q30 [auto]", "jpeg-q30 [file]", "clean [auto]", "clean [file]"}
    # a blind model has one way to run: one column, whatever the hints asked
    DCICNN(width=8, depth=3).save_pretrained(tmp_path / "blind")
    blind = ["evaluate", "--model", str(tmp_path / "blind"), "--data", str(folder), "--no-classical"]
    assert main([*blind, "--protocol", "jpeg-q30", "-o", str(tmp_path / "b"), "--jpeg-hint", "file", "none"]) == 0
    assert "| input | DCI-CNN |" in capsys.readouterr().out
