"""The models' targets are data beside their cards (model_cards/NAME/targets.csv), read by benchmarks/targets.py."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "targets.py"


@pytest.mark.parametrize("card", sorted(p.parent.name for p in (REPO_ROOT / "model_cards").glob("*/targets.csv")))
def test_every_targets_file_names_known_protocols_and_holds_the_no_harm_musts(card: str) -> None:
    targets = runpy.run_path(str(SCRIPT))["load_targets"](card)
    musts = {(t.protocol, t.statistic) for t in targets if t.kind == "must"}
    assert {("clean", "min_psnr"), ("jpeg-q90", "min_gain"), ("jpeg-q95", "min_gain")} <= musts


def results(tmp_path: Path, q90_gains: list[float]) -> Path:
    rows = []
    for i, gain in enumerate(q90_gains):
        rows += [
            {"protocol": "jpeg-q90", "image": f"{i}.png", "method": "input", "psnr": 38.0},
            {"protocol": "jpeg-q90", "image": f"{i}.png", "method": "DCI-CNN", "psnr": 38.0 + gain},
        ]
    path = tmp_path / f"results-{len(rows)}-{q90_gains[0]}.json"
    path.write_text(json.dumps({"dataset": "test", "summary": {}, "rows": rows}))
    return path


def test_a_failed_must_is_marked_and_ends_in_a_non_zero_status(tmp_path: Path) -> None:
    def check(gains: list[float]) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(SCRIPT), str(results(tmp_path, gains)), "--targets", "v4"]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    passed = check([0.5, 0.3])
    assert passed.returncode == 0, passed.stderr
    assert "| jpeg-q90 min gain >= -0.1 | must | +0.30 | +0.40 |" in passed.stdout
    failed = check([0.5, -0.3])  # the mean gains, one image is made worse
    assert failed.returncode == 1 and "a must failed" in failed.stderr
    assert "| jpeg-q90 min gain >= -0.1 | must | -0.30 | -0.20 FAIL |" in failed.stdout
    unknown = subprocess.run(
        [sys.executable, str(SCRIPT), str(results(tmp_path, [0.1])), "--targets", "no-such-card"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert unknown.returncode == 1 and "no such targets file" in unknown.stderr


@pytest.mark.slow
def test_the_runner_judges_weights_against_their_card_and_times_them(tmp_path: Path) -> None:
    from PIL import Image

    from dcicnn import DCICNN

    DCICNN(width=8, depth=3).save_pretrained(tmp_path / "untrained")
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"{i}.png")
    runner = [sys.executable, str(REPO_ROOT / "benchmarks" / "run.py")]
    quality = [*runner, "quality", "--model", str(tmp_path / "untrained"), "--card", "v4", "--data"]
    quality += [str(tmp_path / "photos"), "--protocol", "clean", "jpeg-q90", "--out", str(tmp_path / "q")]
    done = subprocess.run(quality, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # untrained weights change clean photos: a must fails
    assert (tmp_path / "q" / "eval" / "results.json").is_file()
    assert "| clean psnr >= 45 | must |" in (tmp_path / "q" / "targets.md").read_text() and "FAIL" in done.stdout
    speed = [*runner, "speed", "--model", str(tmp_path / "untrained"), "--sizes", "0.01", "--whole-max", "0"]
    done = subprocess.run([*speed, "--out", str(tmp_path / "s")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| MP | mode | dtype |" in (tmp_path / "s" / "speed.md").read_text()
