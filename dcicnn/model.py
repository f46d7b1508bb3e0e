"""DCI-CNN: the network of Menassel et al. (2024), section 3, as a Hub-aware ``nn.Module``.

The paper's network is 7 blocks of conv 3x3 (stride 1, padding 1) -> BatchNorm -> ReLU, then one conv 3x3 that
produces the image: 8 convolutions, 7 BatchNorm layers, 7 ReLUs. Where the paper is vague or wrong we chose:

* Output channels equal input channels (the paper's "1 filter" cannot produce an RGB image).
* Feature width is not given in the paper: 64 by default.
* ``residual=True`` (default) predicts the degradation and subtracts it from the input, as DnCNN does; this
  trains faster and better. ``residual=False`` is the paper-faithful direct mapping.
* Convolutions that feed a BatchNorm carry no bias (BatchNorm's shift makes it redundant); without BatchNorm
  every convolution has a bias.
* ``conditions`` (none by default, the paper's blind network) feeds the network what is known of the damage as
  constant extra input channels (``dcicnn.damage.conditions``: the JPEG quality from the file or the pixels, a noise
  level measured on the whole image), as FFDNet does with its noise map; only the first convolution grows.
* ``downscale`` (1 by default, the paper's full-resolution network) runs the convolutions on a pixel-unshuffled
  image, as FFDNet does: ``downscale=2`` turns each 2x2 block into 4x the channels, so the same layers cost a quarter
  of the FLOPs per pixel and see twice the context; images whose sides are not multiples of it are padded
  (replicating the edge) and cropped back.
* ``dilation`` (off by default, i.e. the paper's stride-1 padding-1 convolutions) optionally spaces the 3x3 taps of
  each convolution apart, as IRCNN (Zhang et al., 2017) does: same parameters and FLOPs, a wider receptive field
  (for example 1-2-3-4-4-3-2-1 over 8 layers sees 41x41 pixels instead of 17x17).
* ``arch="unet"`` replaces the plain stack by the family's multi-scale member (``dcicnn.nn.UNet``: residual blocks at
  ``scales`` resolutions, no BatchNorm), which sees far more context for a similar cost per pixel. It takes the same
  conditions, is residual or direct the same way, and is saved, loaded, tiled and exported like the plain network.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dcicnn.damage import conditions as cond
from dcicnn.errors import InvalidArgumentError
from dcicnn.hub import HubMixin
from dcicnn.nn import PlainNet, UNet
from dcicnn.restore import inference, policy
from dcicnn.restore.inference import ImageLike
from dcicnn.restore.options import RestoreOptions
from dcicnn.spec import ModelSpec, Tuning

__all__ = ["DCICNN"]

_DEFAULTS = RestoreOptions()
Arch = Literal["plain", "unet"]


class DCICNN(
    nn.Module,
    HubMixin,
    library_name="dcicnn",
    pipeline_tag="image-to-image",
    license="mit",
    tags=["image-restoration", "jpeg-artifact-removal", "denoising", "deblurring", "dcicnn"],
):
    """CNN image restorer that maps a degraded image in [0, 1] to a restored one: the paper's plain conv-BN-ReLU
    stack (``arch="plain"``, the default) or the family's multi-scale U-Net (``arch="unet"``).

    Args:
        in_channels: 3 for RGB, 1 for grayscale. The output has the same number of channels.
        width: number of feature channels of the hidden layers (the U-Net's at full resolution, doubling per scale).
        depth: number of convolution layers of the plain network (the paper: 8). Its receptive field is
            ``2 * depth + 1`` pixels undilated. The U-Net's size is set by ``scales`` and ``blocks`` instead.
        residual: predict the correction and subtract it from the input (DnCNN style) instead of the image.
        batch_norm: BatchNorm after each hidden convolution of the plain network, as in the paper; ``None`` (default):
            the architecture's own choice, on for the plain network, off for the U-Net (which has none).
        dilation: one dilation per convolution (``depth`` values, padding equal to the dilation so the size is kept);
            ``None`` means 1 everywhere, the paper's network. The receptive field is ``1 + 2 * sum(dilation)``.
        conditions: what the network is told about the damage, as extra constant input channels: ``"jpeg"`` and/or
            ``"noise"`` (see ``dcicnn.damage.conditions``); ``None``: blind.
        downscale: run the convolutions at 1/``downscale`` resolution on pixel-unshuffled images (1: off, the
            paper). The receptive radius becomes ``downscale * (depth + 1) - 1`` pixels undilated.
        arch: ``"plain"`` (the paper's stack) or ``"unet"`` (``dcicnn.nn.UNet``).
        scales: the U-Net's resolutions (2 to 5); its tiles align to ``2**(scales - 1)`` pixels.
        blocks: the U-Net's residual blocks per scale on each side.
        tuning: what ``restore()`` does around the network for these weights (``dcicnn.spec.Tuning``: the high-quality
            taper and the noise thresholds), as a dict; ``None``: the defaults, tuned for the bundled v3 (and kept
            for v4). Saved in ``config.json`` with the weights, so another set of weights does not inherit it.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        depth: int = 8,
        residual: bool = True,
        batch_norm: bool | None = None,
        dilation: list[int] | None = None,
        conditions: list[str] | None = None,
        downscale: int = 1,
        arch: Arch = "plain",
        scales: int = 3,
        blocks: int = 2,
        tuning: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_int("in_channels", in_channels, allowed=(1, 3))
        _check_int("width", width, minimum=1)
        _check_int("depth", depth, minimum=2)
        _check_bool("residual", residual)
        if batch_norm is not None:
            _check_bool("batch_norm", batch_norm)
        _check_int("downscale", downscale, allowed=(1, 2, 3, 4))
        if arch not in ("plain", "unet"):
            raise InvalidArgumentError(f"arch must be 'plain' or 'unet', got {arch!r}")
        _check_int("scales", scales, minimum=2)
        _check_int("blocks", blocks, minimum=1)
        if scales > 5:
            raise InvalidArgumentError(f"scales must be at most 5, got {scales}")
        if arch == "unet":
            plain_only = {
                "depth": depth != 8,
                "batch_norm": bool(batch_norm),
                "dilation": dilation is not None,
                "downscale": downscale != 1,
            }
            given = [name for name, set_ in plain_only.items() if set_]
            if given:
                raise InvalidArgumentError(
                    f"{', '.join(given)} apply to the plain network only; the U-Net's size is set by width, scales "
                    "and blocks, and it has no BatchNorm"
                )
        if dilation is not None:
            dilation = list(dilation)
            if len(dilation) != depth:
                raise InvalidArgumentError(f"dilation must give one value per convolution ({depth}), got {dilation}")
            for value in dilation:
                _check_int("dilation", value, minimum=1)
        self.in_channels = in_channels
        self.width = width
        self.depth = depth
        self.residual = residual
        self.arch: Arch = arch
        self.batch_norm = (arch == "plain") if batch_norm is None else batch_norm
        self.tuning = Tuning.from_config(tuning)
        config = getattr(self, "_hub_mixin_config", None)
        if isinstance(config, dict):  # saved explicitly, so a config.json says what the network is and was tuned with
            config["batch_norm"] = self.batch_norm
            config["tuning"] = self.tuning.to_config()
        self.dilation = dilation
        self.conditions = list(cond.check_conditions(conditions or []))
        self.downscale = downscale
        self.scales = scales
        self.blocks = blocks
        channels = self._image_channels + cond.channel_count(self.conditions)
        self.body: PlainNet | UNet
        if arch == "unet":
            self.body = UNet(channels, self._image_channels, width, scales, blocks)
        else:
            self.body = PlainNet(channels, self._image_channels, width, dilation or [1] * depth, self.batch_norm)

    @property
    def _image_channels(self) -> int:
        """Channels the convolutions see of the image: ``in_channels`` times ``downscale**2`` after unshuffling."""
        return self.in_channels * self.downscale**2

    # ----------------------------------------------------------------------------------------------------------------
    # What inference code needs to know about the model.
    @property
    def out_channels(self) -> int:
        """Channels of the restored image (always equal to ``in_channels``)."""
        return self.in_channels

    @property
    def scale(self) -> int:
        """Spatial scale factor between input and output."""
        return 1

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input window that one output pixel depends on (``2 * depth + 1`` undilated)."""
        return 2 * self.receptive_radius + 1

    @property
    def receptive_radius(self) -> int:
        """Pixels of context needed on each side; a tile overlap of at least this gives seamless tiling."""
        return self.downscale * (self.body.receptive_radius + 1) - 1

    @property
    def alignment(self) -> int:
        """Tiles start on multiples of this many pixels (the unshuffle factor, or the U-Net's lowest scale)."""
        return self.body.alignment if isinstance(self.body, UNet) else self.downscale

    @property
    def spec(self) -> ModelSpec:
        """This network's description for inference and model cards."""
        return ModelSpec(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            receptive_radius=self.receptive_radius,
            flops_per_pixel=self.flops_per_pixel,
            scale=self.scale,
            conditions=tuple(self.conditions),
            alignment=self.alignment,
            tuning=self.tuning,
        )

    @property
    def flops_per_pixel(self) -> int:
        """Multiply-adds x 2 per output pixel of the convolutions (BatchNorm folds away at inference); with
        ``downscale`` the convolutions run on one pixel in ``downscale**2``."""
        channels = self._image_channels + cond.channel_count(self.conditions)
        if isinstance(self.body, UNet):
            return round(2 * UNet.macs_per_pixel(channels, self._image_channels, self.width, self.scales, self.blocks))
        macs = PlainNet.macs_per_pixel(channels, self._image_channels, self.width, self.depth)
        return 2 * macs // self.downscale**2

    # ----------------------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Restore a batch ``(N, C, H, W)`` of images on the [0, 1] scale; any H and W >= 1. Output is unclipped.

        ``condition``: ``(N, K)`` values of the condition channels (one image's: ``Damage.condition``) for a
        conditioned network; ``None`` runs it on what each image itself shows (``default_condition``). A blind
        network takes none.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InvalidArgumentError(f"expected a (N, {self.in_channels}, H, W) tensor, got shape {tuple(x.shape)}")
        if self.conditions and condition is None:
            condition = self.default_condition(x)
        if not self.conditions and condition is not None and condition.numel():
            raise InvalidArgumentError("this network is blind: it takes no condition")
        height, width = x.shape[2], x.shape[3]
        features = x
        r = self.downscale
        if r > 1:
            # always padded (by zero pixels when the sides are multiples already), so exports stay shape-generic
            features = F.pad(features, (0, (-width) % r, 0, (-height) % r), mode="replicate")
            features = F.pixel_unshuffle(features, r)
        if self.conditions:
            assert condition is not None
            k = cond.channel_count(self.conditions)
            if condition.shape != (x.shape[0], k):
                raise InvalidArgumentError(f"expected a ({x.shape[0]}, {k}) condition, got {tuple(condition.shape)}")
            maps = condition.to(x.dtype)[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
            features = torch.cat([features, maps], dim=1)
        out = self.body(features)
        if r > 1:
            out = F.pixel_shuffle(out, r)[:, :, :height, :width]
        return x - out if self.residual else out

    def default_condition(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` conditions for a batch with nothing else known: what each image shows, exactly as ``restore``
        finds it with ``jpeg_quality="auto"`` (``dcicnn.restore.policy.image_damage``)."""
        damage = torch.stack([policy.image_damage(image.detach(), "auto").tensor() for image in x])
        return cond.condition_from_damage(self.conditions, damage).to(x.device)

    def restore(
        self,
        image: ImageLike,
        *,
        tile: int | str = _DEFAULTS.tile,
        overlap: int | None = _DEFAULTS.overlap,
        batch_size: int = _DEFAULTS.batch_size,
        device: str | torch.device | None = _DEFAULTS.device,
        dtype: str | torch.dtype | None = _DEFAULTS.dtype,
        compile: bool = _DEFAULTS.compile,
        ensemble: bool = _DEFAULTS.ensemble,
        jpeg_quality: int | str | None = _DEFAULTS.jpeg_quality,
        strength: float = _DEFAULTS.strength,
        jpeg_consistency: bool = _DEFAULTS.jpeg_consistency,
        skip_undamaged: bool = _DEFAULTS.skip_undamaged,
        high_quality_taper: tuple[int, int] | str | None = _DEFAULTS.high_quality_taper,
        options: RestoreOptions | None = None,
    ) -> ImageLike:
        """Restore an image of any size; returns the same kind of image.

        * PIL image -> PIL image. Any mode: EXIF orientation is applied; alpha (RGBA, LA, P with transparency) passes
          through untouched; P and CMYK come back as RGB(A); 16-bit (``I;16``) stays 16-bit; the ICC profile, DPI
          and EXIF (orientation reset once applied) are carried over in ``image.info``.
        * numpy ``(H, W)`` or ``(H, W, C)``, C in 1..4, uint8 (0..255), uint16 (0..65535) or float (0..1) -> the same
          shape and dtype (float outputs are not clipped).
        * torch float ``(C, H, W)`` or ``(N, C, H, W)`` on the 0..1 scale -> the same shape, dtype and device.

        A gray image through an RGB model comes back gray (the mean of the restored channels), and so does a gray
        picture stored as RGB (R = G = B); a colour image through a gray model has its luma restored and its chroma
        kept.

        Args:
            tile: tile side in pixels; images up to this size run in one pass. Memory grows with ``tile**2 *
                batch_size``, not with the image.
            overlap: context kept around each tile; at least (and by default) ``receptive_radius``, which makes the
                result equal to a whole-image pass.
            batch_size: tiles per forward pass.
            device: where to run (default: where the model is).
            dtype: ``"auto"``/``None`` (bf16 where the hardware runs it fast, else fp32), ``"fp32"``, ``"bf16"``,
                ``"fp16"`` or a ``torch.dtype``.
            compile: ``torch.compile`` the inference network (slow first call, faster after).
            ensemble: average the outputs for the 8 flips and 90-degree rotations of the image (geometric
                self-ensemble): 8 times the work for a small gain (the README's Results measure it).
            jpeg_quality: what a conditioned model (``spec.conditions``) is told of JPEG damage: ``"auto"`` (the
                file's quality for a PIL image opened from a JPEG, else the one the pixels show), an int 1..100, or
                ``None`` (withheld: blind to JPEG). Blind models ignore it.
            strength: ``input + strength * (restored - input)``, 0..2: 0 returns the input, 1 the model's output.
            jpeg_consistency: keep a JPEG's restored luma within the quantisation bins of its file (or of the
                quality its pixels show): the original lies in them, so this moves the luma towards it.
            skip_undamaged: a conditioned model leaves an image untouched when it shows no JPEG lattice and its
                noise level reads below ``tuning.undamaged_noise`` (nothing it was trained to remove).
            high_quality_taper: ``(full, off)``: a JPEG whose only measurable damage is its compression gets
                ``(off - q) / (off - full)`` of the correction (clipped to 0..1, times ``strength``); ``"auto"``
                (default): the weights' own (``tuning``; for the bundled default all up to q85, none from q95, where
                it has nothing to gain); ``None``: all of it.
            options: all of the above as one ``RestoreOptions`` (then the keywords are ignored).

        Invalid options raise ``ValueError`` before any work (see ``dcicnn.restore.options.RestoreOptions``).
        """
        if options is None:
            options = RestoreOptions(
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                device=None if device is None else str(device),
                dtype=str(dtype) if dtype is not None else "auto",
                compile=compile,
                ensemble=ensemble,
                jpeg_quality=jpeg_quality,
                strength=strength,
                jpeg_consistency=jpeg_consistency,
                skip_undamaged=skip_undamaged,
                high_quality_taper=high_quality_taper,
            )
        return inference.restore(self, image, options)

    def warm_start_state(self, source: DCICNN) -> dict[str, torch.Tensor]:
        """``source``'s weights laid out for this network, which may take more conditions than ``source`` does:
        the first convolution's weights for the new condition channels start at zero, so the warm-started network
        computes exactly what ``source`` did until training teaches it to use them. Anything else must match."""
        state = {k: v.detach().clone() for k, v in source.state_dict().items()}
        if source.conditions == self.conditions:
            return state
        missing = [c for c in source.conditions if c not in self.conditions]
        if missing:
            raise InvalidArgumentError(
                f"cannot warm-start: the source takes conditions {missing} this network does not"
            )
        key = "body.head.weight" if self.arch == "unet" else "body.0.weight"
        old = state[key]
        image = self._image_channels
        new = torch.zeros(old.shape[0], image + cond.channel_count(self.conditions), *old.shape[2:])
        new[:, :image] = old[:, :image]
        for name in source.conditions:
            src0 = image + cond.channel_count(source.conditions[: source.conditions.index(name)])
            dst0 = image + cond.channel_count(self.conditions[: self.conditions.index(name)])
            k = len(cond.CHANNELS[name])
            new[:, dst0 : dst0 + k] = old[:, src0 : src0 + k]
        state[key] = new.to(old.dtype)
        return state

    def inference_network(self) -> DCICNN:
        """What ``restore`` runs: a BatchNorm-folded copy in eval mode (``fuse_batchnorm``)."""
        return self.fuse_batchnorm()

    def fuse_batchnorm(self) -> DCICNN:
        """Return an inference copy with every BatchNorm folded into the preceding convolution.

        The copy is a BatchNorm-free ``DCICNN`` (same width, depth and mode), in eval mode, whose output equals
        this model's eval-mode output up to float rounding. Its config describes it exactly, so it can be saved
        and loaded like any other model.
        """
        fused = DCICNN(
            self.in_channels,
            self.width,
            self.depth,
            residual=self.residual,
            batch_norm=False,
            dilation=self.dilation,
            conditions=self.conditions or None,
            downscale=self.downscale,
            arch=self.arch,
            scales=self.scales,
            blocks=self.blocks,
            tuning=self.tuning.to_config(),
        )
        if not self.batch_norm:
            fused.load_state_dict(self.state_dict())
            return fused.eval()
        assert isinstance(self.body, PlainNet) and isinstance(fused.body, PlainNet)  # only the plain one has any
        src = list(self.body)
        convs: list[nn.Conv2d] = []
        for i, layer in enumerate(src):
            if isinstance(layer, nn.Conv2d):
                nxt = src[i + 1] if i + 1 < len(src) else None
                conv = copy.deepcopy(layer).eval()
                if isinstance(nxt, nn.BatchNorm2d):
                    conv = fuse_conv_bn_eval(conv, copy.deepcopy(nxt).eval())
                convs.append(conv)
        dst = [m for m in fused.body if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            for target, conv in zip(dst, convs, strict=True):
                target.weight.copy_(conv.weight)
                assert target.bias is not None and conv.bias is not None
                target.bias.copy_(conv.bias)
        return fused.to(next(self.parameters()).device).eval()


def _check_int(name: str, value: object, *, allowed: tuple[int, ...] = (), minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, got {value!r}")
    if allowed and value not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {allowed}, got {value}")
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a bool, got {value!r}")
