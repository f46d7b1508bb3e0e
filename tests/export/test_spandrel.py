"""`dcicnn export --format spandrel`: weights that spandrel (chaiNNer, ComfyUI) detects as DnCNN and runs to the same
output as DCI-CNN, checked with spandrel itself.

spandrel imports torchvision at import time, for two architectures (LaMa, RestoreFormer) these tests never load. The
torchvision wheel that PyPI serves here is a CUDA build that cannot load beside the CPU torch (its _C.so links
libtorch_cuda.so), so where `import torchvision` fails, the three names spandrel takes from it are provided as
functions that raise: every part of spandrel these tests use (its loader, DnCNN detection and DnCNN network) is
spandrel's own code. spandrel is installed without its dependencies (`make setup`); without it these tests are
skipped, unless DCICNN_REQUIRE_SPANDREL=1 (as `.ci/run` sets).
"""

from __future__ import annotations

import enum
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from dcicnn import DCICNN, hub
from dcicnn.errors import InvalidArgumentError
from dcicnn.export.spandrel import export_spandrel, fold_condition
from dcicnn.train.degradations import jpeg
from dcicnn_cli.main import main
from tests.conftest import REPO_ROOT
from tests.helpers import randomise_batchnorm

SAMPLE = REPO_ROOT / "dcicnn" / "assets" / "sample.png"


def _without_torchvision() -> None:
    """Stand-ins for what spandrel imports from torchvision, for environments where torchvision cannot load."""
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # what a failed import left half-initialised

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchvision is not available in this test environment")

    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC")  # type: ignore[attr-defined]
    functional.rotate = unavailable  # type: ignore[attr-defined]
    functional.normalize = unavailable  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional  # type: ignore[attr-defined]
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules["torchvision"] = torchvision
    sys.modules["torchvision.transforms"] = transforms
    sys.modules["torchvision.transforms.functional"] = functional


@pytest.fixture(scope="module")
def spandrel() -> Any:
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or the CUDA build's RuntimeError beside a CPU torch
        _without_torchvision()
    try:
        import spandrel
    except ImportError:
        if os.environ.get("DCICNN_REQUIRE_SPANDREL") == "1":
            pytest.fail("DCICNN_REQUIRE_SPANDREL=1 but spandrel is not installed (make setup installs it)")
        pytest.skip("spandrel is not installed (pip install --no-deps spandrel==0.4.2 einops)")
    return spandrel


def sample(quality: int | None = None, gray: bool = False) -> torch.Tensor:
    """The bundled photo (a real image, 384 x 256), JPEG-compressed at ``quality``, as a (1, C, H, W) float tensor."""
    pixels = np.asarray(Image.open(SAMPLE).convert("L" if gray else "RGB"))
    if quality is not None:
        pixels = jpeg(pixels, quality)
    x = torch.from_numpy(np.array(pixels)).float().div(255)
    return (x[None] if gray else x.permute(2, 0, 1))[None]


def blind(in_channels: int = 3, batch_norm: bool = True) -> DCICNN:
    torch.manual_seed(0)
    model = DCICNN(in_channels, width=16, depth=8, batch_norm=batch_norm)
    return randomise_batchnorm(model) if batch_norm else model.eval()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("in_channels", [3, 1])
def test_spandrel_detects_dncnn_and_matches_restore(
    spandrel: Any, tmp_path: Path, suffix: str, in_channels: int
) -> None:
    model = blind(in_channels)  # with BatchNorm: the export folds it
    path = export_spandrel(model, tmp_path / f"model{suffix}").path
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    assert descriptor.architecture.id == "DnCNN"
    assert (descriptor.scale, descriptor.input_channels, descriptor.output_channels) == (1, in_channels, in_channels)
    x = sample(30, gray=in_channels == 1)
    with torch.inference_mode():
        got = descriptor(x.clone())
    expected = model.restore(x, dtype="fp32", jpeg_consistency=False).clamp(0, 1)
    assert float((got - expected).abs().max()) <= 1e-5


def test_bundled_v3_exported_at_a_quality(spandrel: Any, tmp_path: Path) -> None:
    """The conditioned plain network (the bundled v3), folded at q30: spandrel's output equals the network told q30
    (noise 0) wherever the zero padding of the condition maps does not reach, and stays close within it."""
    model = DCICNN.from_pretrained(hub.bundled_model_dir("v3"))
    result = export_spandrel(model, tmp_path / "v3-q30.safetensors", jpeg_quality=30, probe=sample(30)[0])
    descriptor = spandrel.ModelLoader().load_from_file(str(result.path))
    assert descriptor.architecture.id == "DnCNN" and descriptor.input_channels == 3
    assert result.condition == pytest.approx({"jpeg_strength": 0.7, "jpeg_unknown": 0.0, "noise_level": 0.0})
    x = sample(30)
    condition = torch.tensor([[0.7, 0.0, 0.0]])
    with torch.inference_mode():
        got = descriptor(x.clone())
        expected = model.fuse_batchnorm().eval()(x, condition).clamp(0, 1)
    r = model.receptive_radius
    difference = (got - expected).abs()[0].amax(dim=0)
    assert float(difference[r:-r, r:-r].max()) <= 1e-5  # exact away from the border
    assert result.fold is not None
    assert result.fold.interior_max <= 1e-5 and float(difference.max()) == pytest.approx(result.fold.border_max)
    assert result.fold.psnr > 50  # the border's difference, in the whole image's terms
    # and the folded network restores: the q30 photo gets closer to the clean one
    clean = sample()
    assert float((got - clean).pow(2).mean()) < float((x - clean).pow(2).mean())


def test_fold_is_exact_without_padding() -> None:
    """Away from borders the fold is the conditioned network: on a constant-padded image the two agree everywhere."""
    torch.manual_seed(0)
    model = randomise_batchnorm(DCICNN(width=8, depth=3, conditions=["jpeg", "noise"]))
    condition = torch.tensor([0.3, 0.0, 0.1])
    folded = fold_condition(model, condition)
    x = torch.rand(1, 3, 20, 24)
    with torch.inference_mode():
        a = folded(x)[..., 4:-4, 4:-4]
        b = model(x, condition[None])[..., 4:-4, 4:-4]
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"dilation": [1, 2, 3, 4, 4, 3, 2, 1]}, "dilated"),
        ({"downscale": 2}, "pixel-unshuffle"),
        ({"residual": False}, "non-residual"),
        ({"depth": 5}, "5 convolutions"),
        ({"arch": "unet", "conditions": ["jpeg", "noise"]}, "multi-scale U-Net"),
    ],
)
def test_what_spandrel_cannot_express_is_one_line_and_no_file(
    tmp_path: Path, capsys: Any, kwargs: dict[str, Any], reason: str
) -> None:
    settings: dict[str, Any] = {"width": 8, **kwargs}
    DCICNN(**settings).save_pretrained(tmp_path / "model")
    target = tmp_path / "out.safetensors"
    assert main(["export", str(tmp_path / "model"), "--format", "spandrel", "-o", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and reason in err and "onnx or torchscript" in err
    assert not target.exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(InvalidArgumentError):
        export_spandrel(DCICNN(**settings), target)


def test_cli_conditioned_model_needs_a_quality(tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "v3.safetensors"
    assert main(["export", "dcicnn/pretrained/v3", "--format", "spandrel", "-o", str(target)]) == 1
    assert "--jpeg-quality" in capsys.readouterr().err and not target.exists()
    assert main(["export", "dcicnn/pretrained/v3", "--format", "spandrel", "-o", str(target),
                 "--jpeg-quality", "500"]) == 1  # fmt: skip
    assert "1..100 or none" in capsys.readouterr().err
    code = main(["export", "dcicnn/pretrained/v3", "--format", "spandrel", "-o", str(target), "--jpeg-quality",
                 "none"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and target.is_file() and "JPEG withheld" in out and "dB from the conditioned network" in out
    DCICNN(width=8, depth=8).save_pretrained(tmp_path / "blind")
    assert main(["export", str(tmp_path / "blind"), "--format", "spandrel", "-o", str(tmp_path / "b.pth"),
                 "--noise-sigma", "5"]) == 1  # fmt: skip
    assert "are for a conditioned model" in capsys.readouterr().err and not (tmp_path / "b.pth").exists()
