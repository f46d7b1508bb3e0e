"""Export a DCI-CNN for other runtimes: ONNX (dynamic batch, height and width), checked against onnxruntime, and
TorchScript. Both export the BatchNorm-folded network in eval mode."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from dcicnn.damage.conditions import channel_count
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
    ``(N, C, H, W)`` on the 0..1 scale, unclipped); with ``verify``, check it against onnxruntime.

    A conditioned model takes a second input, ``condition``: float32 ``(N, K)``, the condition channel values
    (``image_damage(...).condition(model.conditions)``: ``dcicnn.restore.policy.image_damage``), computed by the
    caller."""
    path = Path(path)
    network = model.fuse_batchnorm().cpu().float().eval()
    batch = torch.export.Dim("batch")
    dims = {0: batch, 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    example: tuple[torch.Tensor, ...] = (torch.rand(1, model.in_channels, 64, 48),)
    names, shapes = ["image"], {"x": dims}
    if model.conditions:
        example += (torch.rand(1, channel_count(model.conditions)),)
        names.append("condition")
        shapes["condition"] = {0: batch}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # progress chatter and notes about torchvision ops
    with _atomic_path(path) as tmp, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # The batch axis is shared by both inputs, on purpose; the exporter notes it names it only once.
        warnings.filterwarnings("ignore", message="# The axis name")
        program = torch.onnx.export(
            network,
            example,
            input_names=names,
            output_names=["restored"],
            dynamic_shapes=shapes,
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
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(2, model.in_channels, 67, 93, generator=generator)]
    if model.conditions:
        inputs.append(torch.rand(2, channel_count(model.conditions), generator=generator))
    names = ["image", "condition"][: len(inputs)]
    (got,) = session.run(None, {name: t.numpy() for name, t in zip(names, inputs, strict=True)})
    with torch.inference_mode():
        expected = model.fuse_batchnorm().eval()(*inputs).numpy()
    difference = float(np.abs(got - expected).max())
    if difference > atol:
        raise ExportVerificationError(f"{path}: onnxruntime differs from PyTorch by {difference:.2e} (> {atol:.0e})")
    return difference


def export_torchscript(model: DCICNN, path: str | Path) -> Path:
    """Write ``model`` as a traced TorchScript module (any batch, height and width; a conditioned model takes the
    ``(N, K)`` condition as its second argument, as in ``export_onnx``)."""
    path = Path(path)
    network = model.fuse_batchnorm().cpu().float().eval()
    k = channel_count(model.conditions)

    def inputs(h: int, w: int) -> tuple[torch.Tensor, ...]:
        return (torch.rand(1, model.in_channels, h, w),) + ((torch.rand(1, k),) if k else ())

    with _atomic_path(path) as tmp, torch.inference_mode():
        traced = torch.jit.trace(network, inputs(64, 48), check_trace=False)
        torch.jit.save(traced, str(tmp))
        check = inputs(37, 53)
        if not torch.allclose(torch.jit.load(str(tmp))(*check), network(*check), atol=1e-5):
            raise ExportVerificationError(f"{path}: the traced module does not reproduce the model")
    return path
