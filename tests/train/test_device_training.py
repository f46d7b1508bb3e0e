"""The GPU training command (benchmarks/device/train.sh) in its CPU dry run, so the command never rots."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcicnn import DCICNN
from tests.conftest import REPO_ROOT

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "bsds500").is_dir(), reason="needs ../shared/data (BSDS500, McMaster)")
@pytest.mark.parametrize("recipe", ["v3", "v3-wide", "v3-deep", "v4"])
def test_dry_run_trains_exports_and_benchmarks(tmp_path: Path, recipe: str) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "DRY_RUN": "1",
        "OUT": str(out),
        "PYTHON": sys.executable,
        "DATA": str(SHARED_DATA),
        "TRAIN_TIME": "00:00:00:12",
        "TMPDIR": str(tmp_path),
        "RECIPE": recipe,
    }
    done = subprocess.run(
        ["bash", "benchmarks/device/train.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # loadable weights in Hub layout, with a card
    model = DCICNN.from_pretrained(out / "hub")
    shape = {"v3": (64, 8, 1, False), "v3-wide": (96, 12, 2, True), "v3-deep": (64, 17, 1, True)}.get(recipe)
    if recipe == "v4":
        assert (model.arch, model.width, model.scales, model.blocks, model.batch_norm) == ("unet", 32, 3, 2, False)
    else:
        assert (model.arch, model.width, model.depth, model.downscale, model.batch_norm) == ("plain", *shape)
    assert model.conditions == ("jpeg", "noise") or list(model.conditions) == ["jpeg", "noise"]
    assert "McMaster" in (out / "hub" / "README.md").read_text()
    # the run's metrics (validated at least once: when the timer stopped it) and its merged config
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert any(row.get("val/psnr") for row in rows) and any(row.get("speed/megapixels_per_s") for row in rows)
    config = (out / "config.yaml").read_text()
    assert "max_time: 00:00:00:12" in config
    if recipe == "v4":  # warm-started from the bundled default (v4), at v4's rate
        assert "lr: 0.0005" in config and "init_from: dcicnn/pretrained/default" in config
    elif recipe == "v3-deep":  # from scratch: gpu.yaml's rate
        assert "lr: 0.001" in config and "init_from: null" in config
    else:  # warm starts (v3 from its bundled weights, v3-wide from its H200 run) at the lower rate
        start = "dcicnn/pretrained/v3" if recipe == "v3" else "docs/results/gpu-h200-wide"
        assert "lr: 0.0002" in config and "warmup_steps: 100" in config and f"init_from: {start}" in config
    throughput = json.loads((out / "throughput.json").read_text())
    assert throughput["megapixels_per_s"] > 0 and 0 <= throughput["data_wait_share"] < 1
    log = (out / "train.log").read_text()
    assert "Time limit reached" in log and "| 0.05 | tiled | fp32 | off |" in log
