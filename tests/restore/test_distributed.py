"""`dcicnn restore --devices N`: a Lightning predict over the images with DDP (here 2 CPU processes): the union of
the ranks' outputs equals a one-process run, each image is restored once, and a resumed run redoes nothing finished."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcicnn import DCICNN
from dcicnn_cli.main import main
from tests.conftest import REPO_ROOT

EXE = str(Path(sys.executable).with_name("dcicnn"))


def dcicnn(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([EXE, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model")
    DCICNN(width=8, depth=3, conditions=["jpeg", "noise"], batch_norm=False).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five JPEGs of different qualities and sizes: five jobs for two ranks, so one rank does three."""
    root = tmp_path_factory.mktemp("photos")
    sample = Image.open(REPO_ROOT / "dcicnn" / "assets" / "sample.png").convert("RGB")
    for i in range(5):
        sample.crop((i * 20, i * 10, i * 20 + 90 - i, i * 10 + 70)).save(root / f"p{i}.jpg", quality=25 + 10 * i)
    return root


def arrays(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_two_processes_restore_what_one_does_and_resume(tmp_path: Path, photos: Path, model_dir: Path) -> None:
    common = ["--model", str(model_dir), "--dtype", "fp32"]
    one = dcicnn("restore", str(photos), "-o", str(tmp_path / "one"), *common)
    assert one.returncode == 0, one.stderr[-2000:]
    two = dcicnn("restore", str(photos), "-o", str(tmp_path / "two"), *common, "--devices", "2", "--accelerator", "cpu")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "restored 5 of 5 image(s)" in two.stdout and "on 2 process(es)" in two.stdout
    assert two.stdout.count("restored") == 1 and not two.stderr.strip(), two.stderr  # one summary, no noise
    expected = arrays(tmp_path / "one")
    got = arrays(tmp_path / "two")
    assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in expected)
    # resume: the finished outputs stay as they are, the missing ones are restored
    for name in ("p1.png", "p3.png"):
        (tmp_path / "two" / name).unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "two").iterdir()}
    again = dcicnn(
        "restore", str(photos), "-o", str(tmp_path / "two"), *common, "--devices", "2", "--accelerator", "cpu",
        "--skip-existing",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "restored 2 of 5" in again.stdout and "3 skipped (output exists)" in again.stdout, again.stdout
    assert {name: (tmp_path / "two" / name).stat().st_mtime_ns for name in kept} == kept
    got = arrays(tmp_path / "two")
    assert all(np.array_equal(got[k], expected[k]) for k in expected)


@pytest.mark.slow
def test_a_dataset_on_two_processes(tmp_path: Path, photos: Path, model_dir: Path) -> None:
    common = ["--hf", "imagefolder", "--data-dir", str(photos), "--model", str(model_dir), "--dtype", "fp32"]
    one = dcicnn("restore", *common, "-o", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    two = dcicnn("restore", *common, "-o", str(tmp_path / "two"), "--devices", "2", "--accelerator", "cpu")
    assert two.returncode == 0, two.stderr[-3000:]
    expected, got = arrays(tmp_path / "one"), arrays(tmp_path / "two")
    assert len(expected) == 5 and got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--devices", "0"], "--devices and --num-nodes must be >= 1"),
        (["--devices", "2", "--device", "cpu"], "--device picks one device"),
        (["--devices", "2", "--to-parquet"], "--to-parquet runs on one device"),
    ],
)
def test_device_mistakes_are_one_line(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(["restore", str(photos), "-o", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
