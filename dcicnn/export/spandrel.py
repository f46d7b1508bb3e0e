"""Weights that chaiNNer and ComfyUI load: a DCI-CNN as ``spandrel``'s DnCNN (a state dict, safetensors or .pth).

spandrel (the model loader of chaiNNer and ComfyUI) recognises DnCNN by its keys: ``model.N.weight`` / ``model.N.bias``
for a plain stack of 3x3 convolutions (with bias, padding 1) and ReLUs, at least 8 convolutions, whose output is
subtracted from the input. A BatchNorm-folded, residual, undilated, full-resolution DCI-CNN is exactly that network
once ``body.N`` becomes ``model.N``. What it cannot express is refused in one line: dilation, pixel-unshuffle, the
direct (non-residual) output, fewer than 8 convolutions.

A conditioned network (told the JPEG quality and noise level as constant input maps) is exported at a condition the
user picks: the maps' contribution to the first convolution is folded into its bias. That is exact wherever the
3x3 window lies inside the image; within ``receptive_radius`` pixels of the border it is not, because the network
saw the maps zero-padded there, and a bias is not. ``fold_error`` measures the difference, and ``export_spandrel``
reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from dcicnn.damage import conditions as cond
from dcicnn.damage.record import Damage
from dcicnn.errors import ExportVerificationError, InvalidArgumentError
from dcicnn.imageio import atomic_path
from dcicnn.model import DCICNN

__all__ = ["FoldError", "SpandrelExport", "fold_condition", "fold_error", "spandrel_state_dict", "export_spandrel"]

#: Convolutions spandrel needs to recognise a DnCNN without BatchNorm (its detection asks for ``model.14``).
MIN_CONVOLUTIONS = 8


class FoldError(NamedTuple):
    """How far the condition-folded network is from the conditioned one on one image (0..1 scale)."""

    interior_max: float  # max |difference| farther than receptive_radius from every border
    border_max: float  # max |difference| within it
    psnr: float  # PSNR of the folded network's output against the conditioned one's, whole image (dB)


class SpandrelExport(NamedTuple):
    """What ``export_spandrel`` wrote: the file, and for a conditioned model the condition and its fold error."""

    path: Path
    condition: dict[str, float] | None  # condition channel -> value folded into the weights
    fold: FoldError | None


def check_expressible(model: DCICNN) -> None:
    """Raise ``InvalidArgumentError`` (one line) if spandrel's DnCNN cannot represent ``model``."""
    if model.arch == "unet":
        raise InvalidArgumentError(
            "spandrel cannot load the multi-scale U-Net (arch='unet'): its DnCNN is a plain stack, and its DRUNet has "
            "four scales, no biases and no residual output; export it as onnx or torchscript"
        )
    reasons = []
    if model.dilation is not None and any(d != 1 for d in model.dilation):
        reasons.append("dilated convolutions")
    if model.downscale != 1:
        reasons.append(f"pixel-unshuffle (downscale={model.downscale})")
    if not model.residual:
        reasons.append("the direct (non-residual) output")
    if model.depth < MIN_CONVOLUTIONS:
        reasons.append(f"{model.depth} convolutions (spandrel recognises DnCNN from {MIN_CONVOLUTIONS})")
    if reasons:
        raise InvalidArgumentError(
            f"spandrel's DnCNN cannot express this model's {', '.join(reasons)}; export it as onnx or torchscript"
        )


def condition_values(model: DCICNN, jpeg_quality: int | None, noise_sigma: float) -> torch.Tensor:
    """The ``(K,)`` condition a conditioned ``model`` is exported at (``jpeg_quality=None``: the hint withheld)."""
    if noise_sigma < 0 or noise_sigma > 255:
        raise InvalidArgumentError(f"noise sigma must be in 0..255, got {noise_sigma}")
    damage = Damage.blind(noise_sigma) if jpeg_quality is None else Damage(jpeg_quality, noise_sigma)
    return damage.condition(model.conditions)


def fold_condition(model: DCICNN, condition: torch.Tensor) -> DCICNN:
    """A BatchNorm-free, unconditioned copy of ``model`` computing what ``model`` does with the constant
    ``condition`` maps, exactly away from the borders (see the module docstring). An unconditioned model is just
    BatchNorm-folded."""
    fused = model.fuse_batchnorm().float()
    folded = DCICNN(
        model.in_channels, model.width, model.depth, residual=model.residual, batch_norm=False,
        dilation=model.dilation, downscale=model.downscale,
    )  # fmt: skip
    state = {k: v.clone() for k, v in fused.state_dict().items()}
    if model.conditions:
        image = fused.in_channels * fused.downscale**2
        weight = state["body.0.weight"]
        if condition.shape != (weight.shape[1] - image,):
            raise InvalidArgumentError(f"expected {weight.shape[1] - image} condition values, got {condition.shape}")
        state["body.0.bias"] = state["body.0.bias"] + (weight[:, image:].sum(dim=(2, 3)) * condition).sum(dim=1)
        state["body.0.weight"] = weight[:, :image].contiguous()
    folded.load_state_dict(state)
    return folded.eval()


def spandrel_state_dict(network: DCICNN) -> dict[str, torch.Tensor]:
    """``network``'s (BatchNorm-free, unconditioned) weights under spandrel's DnCNN keys, float32, contiguous."""
    check_expressible(network)
    if network.batch_norm or network.conditions:
        raise InvalidArgumentError("fold BatchNorm and conditions first (fold_condition)")
    return {
        "model." + key.removeprefix("body."): value.detach().float().contiguous().cpu()
        for key, value in network.state_dict().items()
    }


def network_from_spandrel(state: dict[str, torch.Tensor]) -> DCICNN:
    """Our network with the weights of a spandrel DnCNN state dict written by ``spandrel_state_dict``."""
    first, convs = state["model.0.weight"], sorted(int(k.split(".")[1]) for k in state if k.endswith(".weight"))
    network = DCICNN(first.shape[1], first.shape[0], len(convs), residual=True, batch_norm=False)
    network.load_state_dict({"body." + key.removeprefix("model."): value for key, value in state.items()})
    return network.eval()


def fold_error(model: DCICNN, folded: DCICNN, condition: torch.Tensor, image: torch.Tensor) -> FoldError:
    """``folded`` against ``model`` told ``condition``, on a ``(C, H, W)`` image on the 0..1 scale (fp32)."""
    network = model.fuse_batchnorm().float().eval()
    x = image[None].float()
    with torch.inference_mode():
        reference = network(x, condition[None].float()).clamp(0, 1)
        got = folded(x).clamp(0, 1)
    difference = (got - reference).abs()[0].amax(dim=0)
    r = model.receptive_radius
    interior = difference[r:-r, r:-r] if min(difference.shape) > 2 * r else difference[:0, :0]
    border = difference.clone()
    if interior.numel():
        border[r:-r, r:-r] = 0
    mse = float((got - reference).pow(2).mean())
    psnr = float("inf") if mse == 0 else float(10 * torch.log10(torch.tensor(1.0 / mse)))
    return FoldError(float(interior.max()) if interior.numel() else 0.0, float(border.max()), psnr)


def export_spandrel(
    model: DCICNN,
    path: str | Path,
    *,
    jpeg_quality: int | None = None,
    noise_sigma: float = 0.0,
    probe: torch.Tensor | None = None,
) -> SpandrelExport:
    """Write ``model`` as a spandrel DnCNN state dict to ``path`` (``.safetensors``, ``.pth`` or ``.pt``).

    A conditioned model is folded at ``jpeg_quality`` (``None``: withheld) and ``noise_sigma`` (0..255 scale);
    ``probe`` (a ``(C, H, W)`` image, 0..1) is where the fold's border error is measured for the report. The file is
    read back and checked to reproduce the folded network before it is moved into place."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".pth", ".pt"):
        raise InvalidArgumentError(f"{path}: a spandrel model file should end in .safetensors, .pth or .pt")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder")
    check_expressible(model)
    condition = condition_values(model, jpeg_quality, noise_sigma) if model.conditions else torch.zeros(0)
    folded = fold_condition(model, condition)
    state = spandrel_state_dict(folded)
    with atomic_path(path, suffix=suffix) as tmp:
        if suffix == ".safetensors":
            from safetensors.torch import load_file, save_file

            save_file(state, str(tmp), metadata={"format": "pt", "architecture": "DnCNN"})
            written = load_file(str(tmp))
        else:
            torch.save(state, tmp)
            written = torch.load(tmp, map_location="cpu", weights_only=True)
        check = torch.rand(1, model.in_channels, 37, 53, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            same = torch.allclose(network_from_spandrel(written)(check), folded(check), atol=1e-6)
        if not same:
            raise ExportVerificationError(f"{path}: the written weights do not reproduce the model")
    if not model.conditions:
        return SpandrelExport(path, None, None)
    names = [name for c in model.conditions for name in cond.CHANNELS[c]]
    values = {name: float(v) for name, v in zip(names, condition, strict=True)}
    fold = fold_error(model, folded, condition, probe) if probe is not None else None
    return SpandrelExport(path, values, fold)
