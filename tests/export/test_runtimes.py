"""ONNX and TorchScript export: dynamic sizes, agreement with PyTorch, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from dcicnn import DCICNN
from dcicnn.damage.conditions import channel_count
from dcicnn.export.runtimes import export_onnx, export_torchscript
from dcicnn_cli.main import main
from tests.helpers import VARIANTS, randomise_batchnorm, variant

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::torch.jit.TracerWarning"
)


def trained_like(in_channels: int = 3) -> DCICNN:
    torch.manual_seed(0)
    return randomise_batchnorm(DCICNN(in_channels=in_channels, width=8, depth=4))


@pytest.mark.parametrize("name", VARIANTS)
def test_onnx_has_dynamic_shapes_and_matches_pytorch(tmp_path: Path, name: str) -> None:
    model = variant(name)
    in_channels = model.in_channels
    path = export_onnx(model, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, in_channels, 31, 17), (3, in_channels, 128, 96)]:
        x = torch.rand(*shape)
        inputs = {"image": x.numpy()}
        condition = torch.rand(shape[0], channel_count(model.conditions)) if model.conditions else None
        if condition is not None:  # a conditioned model takes its condition channels as a second input
            inputs["condition"] = condition.numpy()
        (got,) = session.run(None, inputs)
        with torch.no_grad():
            np.testing.assert_allclose(got, model(x, condition).numpy(), atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary files left


def test_torchscript_matches_pytorch(tmp_path: Path) -> None:
    model = trained_like()
    loaded = torch.jit.load(str(export_torchscript(model, tmp_path / "model.pt")))
    x = torch.rand(2, 3, 45, 70)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)


def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trained_like().save_pretrained(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "verified" in capsys.readouterr().out and (tmp_path / "m.onnx").stat().st_size > 1000
    assert main(["export", str(tmp_path / "nope"), "-o", str(tmp_path / "x.onnx")]) == 1
    assert "no such directory" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
    # like `restore`: never silently replace, the name must fit the format, the folder must exist
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o666 & ~current_umask()
    before = (tmp_path / "m.onnx").stat().st_mtime_ns
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "exists (pass --overwrite" in capsys.readouterr().err and (tmp_path / "m.onnx").stat().st_mtime_ns == before
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "m.pt")]) == 1
    assert "should end in .onnx" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "typo" / "m.onnx")]) == 1
    assert "no such folder" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "m.onnx"), "--overwrite"]) == 0
    capsys.readouterr()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_saved_weights_have_normal_permissions(tmp_path: Path) -> None:
    trained_like().save_pretrained(tmp_path / "m")
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o666 & ~current_umask(), name
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]


@pytest.mark.parametrize("name", ["unet", "unet-conditioned"])
def test_torchscript_of_a_unet_matches_pytorch_at_sides_off_its_grid(tmp_path: Path, name: str) -> None:
    model = variant(name)
    loaded = torch.jit.load(str(export_torchscript(model, tmp_path / "model.pt")))
    x = torch.rand(2, 3, 45, 70)  # neither side a multiple of the U-Net's 4-pixel blocks: padded and cropped back
    condition = torch.rand(2, channel_count(model.conditions)) if model.conditions else None
    args = (x,) if condition is None else (x, condition)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args), model(*args), atol=1e-5, rtol=0)
