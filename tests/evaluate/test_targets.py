"""The models' targets are data beside their cards (model_cards/NAME/targets.csv), read by benchmarks/targets.py."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

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
