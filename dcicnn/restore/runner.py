"""Running a network for inference: what ``restore`` needs of a model (``Restorer``), the device and dtype to run
in, and the prepared network (BatchNorm folded, eval mode, channels-last, compiled if asked), cached beside each
model and rebuilt when its weights change."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import nn

from dcicnn.errors import InvalidArgumentError
from dcicnn.restore.options import RestoreOptions
from dcicnn.spec import ModelSpec

__all__ = [
    "Restorer",
    "Runner",
    "bf16_supported",
    "prepared_runner",
    "resolve_device_dtype",
]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Restorer(Protocol):
    """What ``restore`` needs of a network: its spec, an inference copy of it, and its parameters (for the device).
    ``DCICNN`` is one; nothing here imports it."""

    @property
    def spec(self) -> ModelSpec: ...

    def inference_network(self) -> nn.Module:
        """A copy in eval mode with anything foldable folded (BatchNorm), ready to run."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self) -> dict[str, Any]: ...


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 convolutions are fast on ``device`` (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


class Runner:
    """The model prepared for inference on one device and dtype: BatchNorm folded, eval mode, channels-last."""

    def __init__(self, model: Restorer, device: torch.device, dtype: torch.dtype, compile: bool) -> None:
        fused = model.inference_network().to(device)
        self.channels_last = device.type in ("cpu", "cuda")
        if self.channels_last:
            fused = fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
        self.model: Any = torch.compile(fused) if compile else fused
        self.device = device
        self.dtype = dtype

    def __call__(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(self.device, torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        args = (x,) if condition is None else (x, condition.to(self.device).expand(len(x), -1))
        if self.dtype == torch.float32:
            return self.model(*args)
        # Autocast runs the convolutions in bf16/fp16 but keeps the residual subtraction in fp32.
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.model(*args).float()


#: The prepared network of each model, kept beside it rather than in it, and dropped with it.
_RUNNERS: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Runner]] = weakref.WeakKeyDictionary()


def prepared_runner(model: Restorer, device: torch.device, dtype: torch.dtype, compile: bool) -> Runner:
    """A cached ``Runner``, rebuilt when the model's weights change (tensor version counters)."""
    key = (str(device), dtype, compile, tuple(t._version for t in model.state_dict().values()))
    cached = _RUNNERS.get(model)
    if cached is None or cached[0] != key:
        cached = (key, Runner(model, device, dtype, compile))
        _RUNNERS[model] = cached
    return cached[1]


def resolve_device_dtype(model: Restorer, options: RestoreOptions) -> tuple[torch.device, torch.dtype]:
    """The device (``None``: the model's) and dtype (``"auto"``: bf16 where ``bf16_supported``, else fp32) to run
    in; one clear ``ValueError`` for a device this machine does not have or a dtype the model does not run in."""
    if options.device is None:
        device = next(model.parameters()).device
    else:
        try:
            device = torch.device(options.device)
        except RuntimeError:
            raise InvalidArgumentError(f"unknown device {options.device!r} (e.g. cpu, cuda, cuda:1, mps)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidArgumentError(f"device {options.device!r}: this machine has no usable CUDA GPU")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise InvalidArgumentError(f"device {options.device!r}: MPS is not available on this machine")
    if options.dtype == "auto":
        return device, torch.bfloat16 if bf16_supported(device) else torch.float32
    if options.dtype not in model.spec.dtypes:
        raise InvalidArgumentError(f"this model runs in {', '.join(model.spec.dtypes)}, not {options.dtype}")
    return device, _DTYPES[options.dtype]
