"""The installable release (issue 16): `python -m build` makes an sdist and a wheel (built from the sdist, so the sdist
is complete too) that carry the bundled weights, the model-card template and the sample photo, and the installed
wheel works with no source tree anywhere near it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_the_wheel_works_without_the_source_tree(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", str(dist)]
    subprocess.run([*build, str(REPO_ROOT)], check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("dcicnn-*.whl")
    assert list(dist.glob("dcicnn-*.tar.gz"))
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--quiet", "--target", str(site)]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.open(REPO_ROOT / "dcicnn" / "assets" / "sample.png").crop((0, 0, 96, 64)).save(
        elsewhere / "photo.jpg", quality=30
    )
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-P", *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
        )

    check = run(
        "-c",
        "import dcicnn, dcicnn_cli; from dcicnn import DCICNN; m = DCICNN.from_pretrained(); "
        "from dcicnn.hub.card import render_model_card; print(dcicnn.__file__); print(m.spec.receptive_radius)",
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(str(site))  # the installed copy, not the source tree
    restored = run("-m", "dcicnn_cli.main", "restore", "photo.jpg", "-o", "out")
    assert restored.returncode == 0, restored.stderr
    assert (elsewhere / "out" / "photo.png").is_file()
    demo = run("-m", "dcicnn_cli.main", "demo", "-o", "demo")
    assert demo.returncode == 0, demo.stderr
