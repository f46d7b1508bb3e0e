"""Export a DCI-CNN for other runtimes: ONNX (dynamic batch, height and width), checked against onnxruntime, and
TorchScript. Both export the BatchNorm-folded network in eval mode."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from dcicnn.errors import ExportVerificationError
from dcicnn.imageio import atomic_path
from dcicnn.model import DCICNN

__all__ = ["export_onnx", "export_torchscript", "verify_onnx"]


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that is renamed onto it (with normal permissions) only if the block
    succeeds. The folder must exist: a typo in it should fail, not create a tree."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder")
    with atomic_path(path, suffix=path.suffix) as tmp:  # the suffix: exporters choose the format by it
        yield tmp


def export_onnx(model: DCICNN, path: str | Path, opset: int = 18, verify: bool = True) -> Path:
    """Write ``model`` as ONNX with dynamic batch, height and width (input ``image``, output ``restored``: float32
    ``(N, C, H, W)`` on the 0..1 scale, unclipped); with ``verify``, check it against onnxruntime."""
    path = Path(path)
    network = model.fuse_batchnorm().cpu().float().eval()
    example = torch.rand(1, model.in_channels, 64, 48)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # progress chatter and notes about torchvision ops
    with _atomic_path(path) as tmp, contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            network,
            (example,),
            input_names=["image"],
            output_names=["restored"],
            dynamic_shapes={"x": dims},
            opset_version=opset,
            dynamo=True,
            external_data=False,
        )
        if program is None:  # torch returns None only when asked to write the file itself
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(tmp))
        if verify:
            verify_onnx(network, tmp)
    return path


def verify_onnx(model: DCICNN, path: str | Path, atol: float = 1e-4) -> float:
    """Run the ONNX file with onnxruntime on an odd-sized batch and compare with PyTorch; returns the max difference."""
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError("onnxruntime is needed to verify the export: pip install 'dcicnn[export]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, model.in_channels, 67, 93, generator=torch.Generator().manual_seed(0))
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.inference_mode():
        expected = model.fuse_batchnorm().eval()(x).numpy()
    difference = float(np.abs(got - expected).max())
    if difference > atol:
        raise ExportVerificationError(f"{path}: onnxruntime differs from PyTorch by {difference:.2e} (> {atol:.0e})")
    return difference


def export_torchscript(model: DCICNN, path: str | Path) -> Path:
    """Write ``model`` as a traced TorchScript module (any batch, height and width)."""
    path = Path(path)
    network = model.fuse_batchnorm().cpu().float().eval()
    with _atomic_path(path) as tmp, torch.inference_mode():
        traced = torch.jit.trace(network, torch.rand(1, model.in_channels, 64, 48), check_trace=False)
        torch.jit.save(traced, str(tmp))
        check = torch.rand(1, model.in_channels, 37, 53)
        if not torch.allclose(torch.jit.load(str(tmp))(check), network(check), atol=1e-5):
            raise ExportVerificationError(f"{path}: the traced module does not reproduce the model")
    return path
