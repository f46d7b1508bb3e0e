"""Degradations: random training distributions (albumentations pipelines) and named, seeded evaluation protocols.

Training (``Degradation``): each sample draws its own blur, noise and JPEG strength, as the paper's "Gaussian blur
of unknown strength, noise sigma 5..20, JPEG compression". Built from albumentations 2.0.x transforms
(``GaussianBlur``, ``GaussNoise(std_range=sigma / 255)``, ``ImageCompression``), applied to the input only.

Evaluation (``apply_protocol``): the protocols of the design card, each a fixed function of (protocol, image key), so
every method and every run sees the same inputs. They are implemented with Pillow, NumPy and SciPy, not
albumentations, so their definition cannot drift with an augmentation library's defaults.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from dcicnn.errors import InvalidArgumentError

if TYPE_CHECKING:  # albumentations is imported when a training pipeline is built, not for the protocols
    import albumentations as A

__all__ = [
    "PROTOCOLS",
    "Degradation",
    "DegradationMix",
    "apply_protocol",
    "check_protocols",
    "protocol_target",
    "protocol_rng",
]

Stage = Literal["blur", "noise", "jpeg"]


# ----------------------------------------------------------------------------------------------------------------------
# Training degradations.
@dataclass
class Degradation:
    """A random degradation distribution for training; every strength is drawn per sample, uniformly in its range.

    Defaults are the paper's setting, with ranges the paper leaves open chosen as follows: blur sigma 0.3..2.5
    ("unknown strength": from barely visible to strong defocus at 64x64), applied to half the samples; noise sigma
    5..20 on the 0..255 scale (the paper's four levels, as a continuous range so no level is over-fitted), on 60% of
    the samples; JPEG quality 10..95 (the range of real-world photos, from heavy artefacts to almost none), on 80%.
    Probabilities below 1 keep clean-ish inputs in the mix, so the model learns to leave good pixels alone.

    Attributes:
        blur_prob: probability of a Gaussian blur.
        blur_sigma: (min, max) blur sigma in pixels; the kernel size follows from sigma.
        noise_prob: probability of additive Gaussian noise (independent per channel, not rounded unless a JPEG
            stage follows).
        noise_sigma: (min, max) noise standard deviation on the 0..255 scale.
        noise_levels: if set, sigma is one of these values (0..255 scale), drawn with equal probability, instead of
            a value in ``noise_sigma`` (the paper's four levels: 5, 10, 15, 20).
        noise_clip: clip noisy pixels to the 0..1 range, as a camera would. ``False`` keeps the values beyond it, as
            the ``noise-s*`` evaluation protocols (and the denoising literature) do; a JPEG stage clips anyway.
        jpeg_prob: probability of a JPEG round trip.
        jpeg_quality: (min, max) JPEG quality, 1..100.
        jpeg_codec: ``"pillow"``: libjpeg through Pillow with 4:2:0 chroma, exactly as the evaluation protocols and
            most saved photos; ``"opencv"``: albumentations' ``ImageCompression`` (OpenCV's encoder).
        resize: if set, the clean crop is first resized (bicubic) to ``resize x resize``, as the paper's 64x64 pairs.
        order: the order the stages are applied in.
        prior_jpeg_prob: probability of an earlier JPEG save (Pillow, 4:2:0), just before the JPEG stage: a photo
            saved twice, as most photos people have are (edited, shared, re-uploaded). Only the last save is in a
            file's tables; the earlier one is only in the pixels.
        prior_jpeg_quality: (min, max) quality of the earlier save.
        prior_shift_prob: probability that the earlier save's 8x8 grid is off the last one's (1-7 pixels on each
            axis, drawn): the photo was cropped between the saves.
        prior_rescale_prob: probability that the photo was downscaled between the saves (bicubic, by a factor drawn
            from ``prior_rescale``): the earlier save's blocks come out smaller than 8 pixels and off any grid.
        prior_rescale: (min, max) factor of that downscale.
    """

    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 2.5)
    noise_prob: float = 0.6
    noise_sigma: tuple[float, float] = (5.0, 20.0)
    noise_levels: tuple[float, ...] | None = None
    noise_clip: bool = True
    jpeg_prob: float = 0.8
    jpeg_quality: tuple[int, int] = (10, 95)
    jpeg_codec: Literal["pillow", "opencv"] = "opencv"
    resize: int | None = None
    order: tuple[Stage, ...] = field(default=("blur", "noise", "jpeg"))
    prior_jpeg_prob: float = 0.0
    prior_jpeg_quality: tuple[int, int] = (10, 60)
    prior_shift_prob: float = 0.0
    prior_rescale_prob: float = 0.0
    prior_rescale: tuple[float, float] = (0.5, 0.9)

    def __post_init__(self) -> None:
        for name in ("blur_prob", "noise_prob", "jpeg_prob", "prior_jpeg_prob", "prior_shift_prob",
                     "prior_rescale_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidArgumentError(f"{name} must be in [0, 1], got {value}")
        self.blur_sigma = _range("blur_sigma", self.blur_sigma, 0.0, 50.0)
        self.noise_sigma = _range("noise_sigma", self.noise_sigma, 0.0, 255.0)
        if self.noise_levels is not None:
            levels = tuple(float(v) for v in self.noise_levels)
            if not levels or not all(0.0 < v <= 255.0 for v in levels):
                raise InvalidArgumentError(f"noise_levels must be values in (0, 255], got {self.noise_levels!r}")
            self.noise_levels = levels
        self.jpeg_quality = _qualities("jpeg_quality", self.jpeg_quality)
        self.prior_jpeg_quality = _qualities("prior_jpeg_quality", self.prior_jpeg_quality)
        self.prior_rescale = _range("prior_rescale", self.prior_rescale, 0.1, 1.0)
        if self.blur_prob > 0 and self.blur_sigma[0] <= 0:
            raise InvalidArgumentError(f"blur_sigma must be > 0 when blur_prob > 0, got {self.blur_sigma}")
        if self.resize is not None and (isinstance(self.resize, bool) or self.resize < 1):
            raise InvalidArgumentError(f"resize must be a positive int or None, got {self.resize}")
        if self.jpeg_codec not in ("pillow", "opencv"):
            raise InvalidArgumentError(f"jpeg_codec must be 'pillow' or 'opencv', got {self.jpeg_codec!r}")
        self.order = tuple(self.order)
        if sorted(self.order) != sorted(set(self.order)) or not set(self.order) <= {"blur", "noise", "jpeg"}:
            raise InvalidArgumentError(f"order must list distinct stages among blur, noise, jpeg; got {self.order}")

    @classmethod
    def paper(cls) -> Degradation:
        """The paper's pairs: 64x64 bicubic, blur of unknown strength, noise sigma 5, 10, 15 or 20, JPEG, every one
        applied to every sample."""
        return cls(blur_prob=1.0, noise_prob=1.0, noise_levels=(5.0, 10.0, 15.0, 20.0), jpeg_prob=1.0, resize=64)

    def build(self) -> A.Compose:
        """The albumentations pipeline that degrades a float32 0..1 image (the input only; the target stays clean).

        Feed it float32: on uint8 images albumentations 2.0.8's ``GaussNoise`` comes out about 2% below the
        requested sigma. JPEG output is exactly ``k / 255``.
        """
        import albumentations as A  # imported for training pipelines only (the protocols do not need it)

        noise_class = A.GaussNoise if self.noise_clip else _UnclippedGaussNoise

        def noise(low: float, high: float, p: float) -> A.GaussNoise:
            return noise_class(
                std_range=(low / 255.0, high / 255.0),
                mean_range=(0.0, 0.0),
                per_channel=True,
                noise_scale_factor=1.0,
                p=p,
            )

        stages: dict[str, A.BasicTransform | A.BaseCompose] = {
            "blur": A.GaussianBlur(blur_limit=0, sigma_limit=self.blur_sigma, p=self.blur_prob),
            "noise": (
                noise(*self.noise_sigma, p=self.noise_prob)
                if self.noise_levels is None
                else A.OneOf([noise(s, s, p=1.0) for s in self.noise_levels], p=self.noise_prob)
            ),
            "jpeg": (
                PillowJPEG(quality_range=self.jpeg_quality, p=self.jpeg_prob)
                if self.jpeg_codec == "pillow"
                else A.ImageCompression(compression_type="jpeg", quality_range=self.jpeg_quality, p=self.jpeg_prob)
            ),
        }
        transforms = [stages[name] for name in self.order]
        if self.prior_jpeg_prob > 0:
            prior = _albumentations_transforms()[2](
                quality_range=self.prior_jpeg_quality,
                shift_prob=self.prior_shift_prob,
                rescale_prob=self.prior_rescale_prob,
                rescale_range=self.prior_rescale,
                p=self.prior_jpeg_prob,
            )
            at = self.order.index("jpeg") if "jpeg" in self.order else len(transforms)
            transforms.insert(at, prior)
        return A.Compose(transforms, strict=True, save_applied_params=True)


@dataclass
class DegradationMix:
    """A weighted mixture of degradation distributions: each sample draws one component, then degrades with it.

    Independent per-stage probabilities (one ``Degradation``) cannot say "pure noise a quarter of the time, blur only
    together with JPEG": a mixture can, so a blind model sees each damage it must undo often enough.

    Attributes:
        components: the distributions; all must share ``resize``.
        weights: relative frequency of each component (default: equal).
    """

    components: list[Degradation]
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        self.components = list(self.components)
        if not self.components:
            raise InvalidArgumentError("a DegradationMix needs at least one component")
        weights = [1.0] * len(self.components) if self.weights is None else [float(w) for w in self.weights]
        if len(weights) != len(self.components) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise InvalidArgumentError(
                f"weights must be {len(self.components)} non-negative numbers with a positive sum, got {self.weights}"
            )
        self.weights = weights
        if len({c.resize for c in self.components}) > 1:
            raise InvalidArgumentError("all components of a DegradationMix must share the same resize")

    @property
    def resize(self) -> int | None:
        """The components' common ``resize``."""
        return self.components[0].resize

    def build(self) -> A.Compose:
        """An albumentations pipeline choosing one component per sample (``OneOf``, weighted) and applying it."""
        import albumentations as A

        assert self.weights is not None
        choices = []
        for component, weight in zip(self.components, self.weights, strict=True):
            pipeline = component.build()
            pipeline.p = weight  # OneOf picks its children in proportion to their p
            choices.append(pipeline)
        return A.Compose([A.OneOf(choices, p=1.0)], strict=True, save_applied_params=True)


def _albumentations_transforms() -> tuple[type, type, type]:
    """The three transforms defined here, built on albumentations' classes when a pipeline first needs them."""
    global _TRANSFORMS
    if _TRANSFORMS is None:
        import albumentations as A

        class Unclipped(A.GaussNoise):
            """``GaussNoise`` without the final clip to the image's range."""

            def apply(self, img: np.ndarray, noise_map: np.ndarray, **params: object) -> np.ndarray:
                return (img + noise_map).astype(img.dtype, copy=False)

        class Pillow(A.ImageOnlyTransform):
            """A JPEG round trip through Pillow (libjpeg, 4:2:0): exactly the evaluation protocols' ``jpeg``. The
            quality drawn is in the applied parameters (``Compose(save_applied_params=True)``)."""

            def __init__(self, quality_range: tuple[int, int] = (10, 95), p: float = 0.5) -> None:
                super().__init__(p=p)
                self.quality_range = (int(quality_range[0]), int(quality_range[1]))

            def get_params(self) -> dict[str, int]:
                return {"quality": self.py_random.randint(*self.quality_range)}

            def apply(self, img: np.ndarray, quality: int, **params: object) -> np.ndarray:
                floating = img.dtype != np.uint8
                pixels = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8) if floating else img
                coded = jpeg(pixels if pixels.ndim == 3 else pixels[:, :, None], quality).reshape(pixels.shape)
                return coded.astype(np.float32) / np.float32(255.0) if floating else coded

            def get_transform_init_args_names(self) -> tuple[str, ...]:
                return ("quality_range",)

        class PriorJPEG(Pillow):
            """An earlier Pillow JPEG save, on a grid offset by ``shift`` (rows, columns) or at ``1 / scale`` times
            the size (the photo downscaled by ``scale`` after it): ``quality``, ``shift`` and ``scale`` are in the
            applied parameters."""

            def __init__(
                self,
                quality_range: tuple[int, int] = (10, 60),
                shift_prob: float = 0.0,
                rescale_prob: float = 0.0,
                rescale_range: tuple[float, float] = (0.5, 0.9),
                p: float = 0.5,
            ) -> None:
                super().__init__(quality_range=quality_range, p=p)
                self.shift_prob = float(shift_prob)
                self.rescale_prob = float(rescale_prob)
                self.rescale_range = (float(rescale_range[0]), float(rescale_range[1]))

            def get_params(self) -> dict[str, Any]:
                r = self.py_random
                shift = (r.randint(1, 7), r.randint(1, 7)) if r.random() < self.shift_prob else (0, 0)
                scale = r.uniform(*self.rescale_range) if r.random() < self.rescale_prob else 1.0
                return {"quality": r.randint(*self.quality_range), "shift": shift, "scale": scale}

            def apply(  # type: ignore[override]
                self, img: np.ndarray, quality: int, shift: tuple[int, int], scale: float, **params: object
            ) -> np.ndarray:
                floating = img.dtype != np.uint8
                pixels = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8) if floating else img
                coded = earlier_save(pixels, quality, shift, scale)
                return coded.astype(np.float32) / np.float32(255.0) if floating else coded

            def get_transform_init_args_names(self) -> tuple[str, ...]:
                return ("quality_range", "shift_prob", "rescale_prob", "rescale_range")

        _TRANSFORMS = (Unclipped, Pillow, PriorJPEG)
    return _TRANSFORMS


_TRANSFORMS: tuple[type, type, type] | None = None


def earlier_save(image: np.ndarray, quality: int, shift: tuple[int, int] = (0, 0), scale: float = 1.0) -> np.ndarray:
    """``image`` (uint8, ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``) as it looks after a JPEG save made before it: on
    a grid ``shift`` (rows, columns) off its own (the save's 8x8 blocks start ``shift`` pixels up and left of the
    image's corner), or, with ``scale < 1``, at ``1 / scale`` times its size and then downscaled to it (bicubic)."""
    h, w = image.shape[:2]
    if scale < 1.0:
        large = _resize(image, (round(h / scale), round(w / scale)))
        return _resize(jpeg(large, quality), (h, w))
    dy, dx = shift
    padded = np.pad(image, ((dy, 0), (dx, 0)) + ((0, 0),) * (image.ndim - 2), mode="edge")
    return np.ascontiguousarray(jpeg(padded, quality)[dy:, dx:])


def _UnclippedGaussNoise(**kwargs: object) -> A.GaussNoise:  # noqa: N802  # a class-like factory
    return _albumentations_transforms()[0](**kwargs)


def PillowJPEG(quality_range: tuple[int, int], p: float) -> A.ImageOnlyTransform:  # noqa: N802  # as above
    """An albumentations transform: a Pillow JPEG round trip at a quality drawn from ``quality_range``."""
    return _albumentations_transforms()[1](quality_range=quality_range, p=p)


#: The names albumentations records for the JPEG stages of ``Degradation.build`` (either codec).
JPEG_STAGES = ("Pillow", "ImageCompression")


def applied_jpeg_quality(applied: list[tuple[str, dict[str, object]]]) -> int | None:
    """The JPEG quality a restorer reading the result would find, or ``None`` if no JPEG stage ran.

    One save: its quality (Pillow or OpenCV). Two saves (``prior_jpeg_prob``): the heavier of the two when the
    earlier save is on the last one's grid, as ``dcicnn.damage.reading`` reads it from the pixels; the last save's
    alone when the earlier one is off that grid or was resized, which the tables report and the pixel reading
    mostly cannot see past: the network must then judge the damage from the pixels. An earlier save alone (no JPEG
    stage after it) is read from the pixels unless it was resized.
    """
    last: int | None = None
    prior: dict[str, object] | None = None
    for name, params in applied:
        if name == "PriorJPEG":
            prior = params
        elif name in JPEG_STAGES and "quality" in params:
            last = int(params["quality"])  # type: ignore[call-overload]  # an int, set by get_params above
    if prior is None:
        return last
    earlier = int(prior["quality"])  # type: ignore[call-overload]
    on_grid = tuple(prior["shift"]) == (0, 0) and float(prior["scale"]) >= 1.0  # type: ignore[arg-type]
    if last is None:
        return earlier if float(prior["scale"]) >= 1.0 else None  # type: ignore[arg-type]
    return min(earlier, last) if on_grid else last


def applied_noise_sigma(applied: list[tuple[str, dict[str, object]]]) -> float:
    """The standard deviation (0..255 scale) of the noise a pipeline added, 0 if none (from ``GaussNoise``'s noise
    map among the applied transforms)."""
    for _, params in applied:
        noise = params.get("noise_map")
        if isinstance(noise, np.ndarray):
            return float(noise.std()) * 255.0
    return 0.0


def seed_pipeline(pipeline: A.BaseCompose, seed: int) -> None:
    """Make every draw of ``pipeline`` (nested pipelines included) a function of ``seed``, independent of the others.

    One NumPy and one Python generator, seeded from ``seed``, are shared by every transform of the tree
    (``set_random_state`` hands the same objects down), so successive draws come from one stream. This is what
    ``Compose(seed=...)`` does; ``Compose.set_random_seed`` would instead give every transform its own generator
    with the *same* seed, which makes their draws (whether each applies, how strongly) identical rather than
    independent. One pair of generators per sample also keeps seeding cheap: re-seeding each transform separately
    took 60% of a 128x128 training pair's time.
    """
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))


def _qualities(name: str, value: tuple[int, int]) -> tuple[int, int]:
    low, high = _range(name, value, 1, 100)
    if int(low) != low or int(high) != high:
        raise InvalidArgumentError(f"{name} must be integers, got {value}")
    return (int(low), int(high))


def _range(name: str, value: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a (min, max) pair, got {value!r}") from None
    if not low <= a <= b <= high:
        raise InvalidArgumentError(f"{name} must satisfy {low} <= min <= max <= {high}, got {value!r}")
    return (a, b)


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation protocols.
@dataclass(frozen=True)
class _Protocol:
    blur: float = 0.0
    noise: float = 0.0
    clip_noise: bool = True
    jpeg: int | None = None
    size: int | None = None
    prior_jpeg: int | None = None  # an earlier JPEG save, before ``rescale`` and the final ``jpeg``
    rescale: float | None = None  # bicubic resize after ``prior_jpeg``; the reference is the clean image so resized
    shift: int = 0  # rows and columns cropped from the top-left after ``prior_jpeg``: the next save's grid moves


PROTOCOLS: dict[str, _Protocol] = {
    **{f"jpeg-q{q}": _Protocol(jpeg=q) for q in (10, 20, 30, 40)},
    **{f"noise-s{s}": _Protocol(noise=float(s), clip_noise=False) for s in (15, 25, 50)},
    **{f"blur-s{s}+jpeg-q30": _Protocol(blur=float(s), jpeg=30) for s in (1, 2)},
    "mixed-light": _Protocol(blur=1.0, noise=10.0, jpeg=50),
    "mixed-heavy": _Protocol(blur=2.0, noise=20.0, jpeg=10),
    **{f"paper-{s}": _Protocol(blur=1.0, noise=10.0, jpeg=75, size=s) for s in (32, 64, 128, 256)},
    # "Do no harm": nothing to fix, the JPEG qualities most photos have, and light sensor noise. A restorer must
    # return these at least as good as it got them.
    "clean": _Protocol(),
    **{f"jpeg-q{q}": _Protocol(jpeg=q) for q in (50, 75, 90, 95)},
    "noise-s5": _Protocol(noise=5.0, clip_noise=False),
    # Saved twice, as most photos are (edited, shared, re-uploaded): the file's tables describe only the last save.
    # On the same grid (a q30 photo re-saved at q90; a q75 one at q96), off it (cropped 4 pixels between the saves:
    # FBCNN's double-JPEG protocol), and resized to 75% between the saves (its 8x8 grid gone).
    "jpeg-q30+q90": _Protocol(prior_jpeg=30, jpeg=90),
    "jpeg-q75+q96": _Protocol(prior_jpeg=75, jpeg=96),
    "jpeg-q95+q96": _Protocol(prior_jpeg=95, jpeg=96),  # a good photo re-saved: nothing to fix
    "jpeg-q10+shift+q30": _Protocol(prior_jpeg=10, shift=4, jpeg=30),
    "jpeg-q30+shift+q50": _Protocol(prior_jpeg=30, shift=4, jpeg=50),
    "jpeg-q30+resize+q90": _Protocol(prior_jpeg=30, rescale=0.75, jpeg=90),
}
"""Named evaluation protocols (docs/degradations.md lists them)."""


def protocol_rng(protocol: str, key: str) -> np.random.Generator:
    """The random generator of one (protocol, image key) pair: the same in every process and run."""
    digest = hashlib.sha256(f"dcicnn|{protocol}|{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def protocol_target(protocol: str, image: np.ndarray) -> np.ndarray:
    """The clean reference for ``protocol``: ``image`` itself, for ``paper-S`` its centre square crop resized
    (bicubic) to SxS, for a ``rescale`` protocol the image resized (bicubic) by that factor, for a ``shift`` one the
    image less its first ``shift`` rows and columns. uint8, same layout as ``image``."""
    spec = _lookup(protocol)
    image = _check_image(image)
    if spec.rescale is not None:
        image = _rescale(image, spec.rescale)
    if spec.shift:
        image = image[spec.shift :, spec.shift :]
    if spec.size is None:
        return image
    return _paper_resize(image, spec.size)


def _rescale(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    return _resize(image, (max(1, round(h * factor)), max(1, round(w * factor))))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize (Pillow) of a uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image to ``size`` (rows,
    columns), in the same layout."""
    squeeze = image.ndim == 3 and image.shape[2] == 1
    pil = Image.fromarray(image[:, :, 0] if squeeze else image)
    out = np.asarray(pil.resize((size[1], size[0]), Image.Resampling.BICUBIC))
    return out[:, :, None] if squeeze else out


def apply_protocol(protocol: str, image: np.ndarray, key: str) -> np.ndarray:
    """Degrade a clean uint8 image with a named protocol, deterministically from (protocol, key).

    Args:
        protocol: a name in ``PROTOCOLS``, e.g. ``"jpeg-q10"``, ``"noise-s25"``, ``"paper-64"``.
        image: clean uint8 image, ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.
        key: a stable name of the image (e.g. its file name); it seeds the noise.

    Returns:
        float32 degraded image on the 0..1 scale, same layout as the input (``paper-S``: SxS). Not clipped for the
        ``noise-*`` protocols; exactly ``k / 255`` values for the others. For ``paper-*`` the matching clean
        reference is ``protocol_target(protocol, image)``.
    """
    spec = _lookup(protocol)
    staged = spec.rescale is not None or spec.shift  # resized or cropped between the saves: the clean image first
    image = _check_image(image) if staged else protocol_target(protocol, image)
    rng = protocol_rng(protocol, key)
    work = image.astype(np.float64)
    if spec.blur:
        work = gaussian_blur(work, spec.blur)
    if spec.noise:
        work = work + rng.normal(0.0, spec.noise, size=work.shape)
    if spec.jpeg is not None or spec.clip_noise:
        work = np.clip(np.rint(work), 0, 255)
    if spec.prior_jpeg is not None:
        work = jpeg(work.astype(np.uint8), spec.prior_jpeg).astype(np.float64)
    if spec.rescale is not None:
        work = _rescale(work.astype(np.uint8), spec.rescale).astype(np.float64)
    if spec.shift:
        work = work[spec.shift :, spec.shift :]
    if spec.jpeg is not None:
        work = jpeg(work.astype(np.uint8), spec.jpeg).astype(np.float64)
    return (work / 255.0).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with kernel size ``2 * ceil(3 sigma) + 1`` and edge-mirrored borders
    (``scipy.ndimage`` mode ``reflect``: ``d c b a | a b c d``), in float64."""
    from scipy.ndimage import correlate1d  # 0.4 s to import: only where a protocol blurs

    radius = math.ceil(3 * sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    out = correlate1d(np.asarray(image, dtype=np.float64), kernel, axis=0, mode="reflect")
    return correlate1d(out, kernel, axis=1, mode="reflect")


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Pillow JPEG round trip at ``quality`` with 4:2:0 chroma subsampling (grayscale for 1-channel images)."""
    squeeze = image.ndim == 3 and image.shape[2] == 1
    pil = Image.fromarray(image[:, :, 0] if squeeze else image)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=int(quality), subsampling="4:2:0")
    with Image.open(io.BytesIO(buffer.getvalue())) as coded:
        decoded = np.asarray(coded)
    return decoded[:, :, None] if squeeze else decoded


def _paper_resize(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    squeeze = crop.ndim == 3 and crop.shape[2] == 1
    pil = Image.fromarray(crop[:, :, 0] if squeeze else crop)
    out = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC))
    return out[:, :, None] if squeeze else out


def check_protocols(protocols: Sequence[str]) -> list[str]:
    """``protocols`` as a list, or one ``ValueError`` naming every unknown name and the known ones."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise InvalidArgumentError(f"unknown protocols {unknown}; known: {', '.join(PROTOCOLS)}")
    return list(protocols)


def _lookup(protocol: str) -> _Protocol:
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise InvalidArgumentError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}") from None


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InvalidArgumentError(f"expected a uint8 image, got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise InvalidArgumentError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {image.shape}")
    return image
