"""Paired (degraded, clean) datasets over image folders and Hugging Face datasets, and their LightningDataModule.

Training pairs: a random crop (random offset, so a JPEG source's own 8x8 grid does not line up with the crop's),
a random flip/rotation, then the training ``Degradation`` on the input only; every draw comes from torch's RNG, so
``seed_everything`` makes runs repeatable while epochs, workers and DDP ranks all see different pairs.
Validation pairs: a centre crop degraded by named protocols (``apply_protocol``), identical in every run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from dcicnn.damage.conditions import estimate_noise, luma255
from dcicnn.damage.reading import read_jpeg
from dcicnn.damage.record import Damage
from dcicnn.errors import InvalidArgumentError
from dcicnn.train.degradations import (
    PROTOCOLS,
    Degradation,
    DegradationMix,
    applied_jpeg_quality,
    applied_noise_sigma,
    apply_protocol,
    check_protocols,
    protocol_target,
    seed_pipeline,
)
from dcicnn.train.sources import (
    FolderSource,
    HFDataset,
    HFSource,
    ImageSource,
    InMemorySource,
    decode_hf_cell,
    report_once,
)

__all__ = [
    "DEFAULT_VAL_PROTOCOLS",
    "DegradationDataModule",
    "FolderSource",
    "HFDataset",
    "HintPolicy",
    "HFSource",
    "ImageSource",
    "InMemorySource",
    "StreamingTrainPatches",
    "TrainPatches",
    "ValidationBatch",
    "ValidationGroup",
    "ValidationItem",
    "ValidationPairs",
    "collate_uint8",
    "collate_validation",
]

log = logging.getLogger(__name__)

DEFAULT_VAL_PROTOCOLS = ("jpeg-q10", "jpeg-q30", "noise-s25", "blur-s2+jpeg-q30", "mixed-light", "mixed-heavy")


# ----------------------------------------------------------------------------------------------------------------------
# Pairs.
def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, C)`` or float 0..1 -> float32 ``(C, H, W)`` on the 0..1 scale."""
    array = np.ascontiguousarray(image.transpose(2, 0, 1))
    tensor = torch.from_numpy(array)
    return tensor.float().div_(255.0) if array.dtype == np.uint8 else tensor.float()


def collate_uint8(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack training samples ``(degraded, clean, damage)`` and carry both images as uint8 (``uint8_batches``): a
    quarter of the bytes through the loader's shared memory, the pinning and the copy to the device. The degraded input
    is rounded to 8 bits, as every image a restorer is given; the clean target is 8-bit already."""
    degraded, clean, *rest = default_collate(items)
    return (_quantised(degraded), _quantised(clean), *rest)


def _quantised(images: torch.Tensor) -> torch.Tensor:
    return images.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


def _ensure_hwc(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


class HintPolicy(NamedTuple):
    """How a training sample's JPEG hint is made from the quality really used, so that a conditioned network learns
    to use the hint without trusting it blindly.

    Attributes:
        withhold: probability that the hint is withheld (the network then runs blind to JPEG, as with
            ``jpeg_quality=None``).
        jitter: the hint is the true quality plus a uniform integer offset in ``[-jitter, jitter]`` (the pixel
            estimate is a few steps off; re-saved files carry the last quality only).
        noise: the noise level a sample is told. ``"estimate"``: ``estimate_noise`` on the degraded patch (what
            inference computes, but on 64 pixels instead of a whole photo, so its texture bias varies far more than a
            whole image's). ``"calibrated"``: what the whole-image estimate reads, modelled: ``sqrt(sigma**2 +
            t**2) * (1 + e)`` with ``sigma`` the noise really added, ``t`` the image's texture term drawn
            log-uniformly in ``texture`` (clean BSDS500 training photos read 0.5-7, median 1.5, as whole images)
            and ``e`` a 3% gaussian error.
        texture: the range of ``t`` for ``"calibrated"``.
    """

    withhold: float = 0.3
    jitter: int = 3
    noise: str = "estimate"
    texture: tuple[float, float] = (0.4, 7.0)


class PatchMaker:
    """Turns a clean image into one training sample: crop, flip/rotate, optional resize, degrade the input, and the
    damage record a conditioned network is told (``dcicnn.damage.record.Damage.tensor``)."""

    def __init__(
        self,
        patch_size: int,
        degradation: Degradation | DegradationMix,
        augment: bool = True,
        hints: HintPolicy | None = None,
    ) -> None:
        if patch_size < 1:
            raise InvalidArgumentError(f"patch_size must be >= 1, got {patch_size}")
        self.patch_size = patch_size
        self.degradation = degradation
        self.augment = augment
        self.hints = hints or HintPolicy()
        self.pipeline = degradation.build()

    def __call__(self, image: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(seed)
        clean = self.crop(_ensure_hwc(image), rng)
        if self.augment:
            clean = np.rot90(clean, k=int(rng.integers(4)))
            if rng.integers(2):
                clean = clean[:, ::-1]
        if self.degradation.resize is not None:
            clean = _bicubic(clean, self.degradation.resize)
        clean = np.ascontiguousarray(clean)
        seed_pipeline(self.pipeline, int(rng.integers(2**63)))
        # Degrade in float32: albumentations' noise on uint8 images comes out about 2% weaker than asked for.
        source = clean.astype(np.float32) / np.float32(255.0)
        result = self.pipeline(image=source[:, :, 0] if source.shape[2] == 1 else source)
        degraded = _to_tensor(_ensure_hwc(result["image"]))
        return degraded, _to_tensor(clean), self._damage(degraded, result.get("applied_transforms", []), rng)

    def _damage(self, degraded: torch.Tensor, applied: list[Any], rng: np.random.Generator) -> torch.Tensor:
        quality = applied_jpeg_quality(applied)
        withheld = rng.random() < self.hints.withhold
        hint: int | None = None
        if not withheld and quality is not None:
            offset = int(rng.integers(-self.hints.jitter, self.hints.jitter + 1)) if self.hints.jitter else 0
            hint = min(100, max(1, quality + offset))
        if self.hints.noise == "calibrated":
            sigma = applied_noise_sigma(applied)
            low, high = self.hints.texture
            texture = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            level = float(np.hypot(sigma, texture)) * (1.0 + 0.03 * float(rng.standard_normal()))
        else:
            level = float(estimate_noise(degraded))
        return Damage(hint, level, withheld=withheld).tensor()

    def crop(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random ``patch_size`` square; images smaller than that are mirror-padded first."""
        p = self.patch_size
        h, w = image.shape[:2]
        if h < p or w < p:
            image = np.pad(image, ((0, max(0, p - h)), (0, max(0, p - w)), (0, 0)), mode="symmetric")
            h, w = image.shape[:2]
        top, left = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        return image[top : top + p, left : left + p]


def _bicubic(image: np.ndarray, size: int) -> np.ndarray:
    pil = Image.fromarray(image.squeeze(2) if image.shape[2] == 1 else image)
    return _ensure_hwc(np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC)))


def _sample_seed(index: int) -> int:
    """A per-sample seed drawn from torch's RNG (seeded by Lightning per run, rank, worker and epoch), mixed with the
    sample index so that ranks sharing a global seed still draw different degradations."""
    draw = int(torch.randint(0, 2**62, (1,)).item())
    return int(np.random.SeedSequence([draw, index]).generate_state(1, dtype=np.uint64)[0])


class TrainPatches(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Random training pairs from a map-style source; ``patches_per_image`` crops of each image per epoch."""

    def __init__(
        self,
        source: ImageSource,
        patch_size: int,
        degradation: Degradation | DegradationMix,
        patches_per_image: int = 1,
        augment: bool = True,
        hints: HintPolicy | None = None,
    ) -> None:
        if patches_per_image < 1:
            raise InvalidArgumentError(f"patches_per_image must be >= 1, got {patches_per_image}")
        self.source = source
        self.patches_per_image = patches_per_image
        self.make = PatchMaker(patch_size, degradation, augment, hints)

    def __len__(self) -> int:
        return len(self.source) * self.patches_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.make(self.source.load(index % len(self.source)), _sample_seed(index))


class StreamingTrainPatches(IterableDataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Random training pairs from a streaming Hugging Face dataset, split across DDP ranks and loader workers.

    Ranks get disjoint parts (``split_dataset_by_node``: whole shards when the shard count divides evenly, else every
    ``world_size``-th row); loader workers get disjoint shards, so use at most as many workers as the stream has
    shards.
    """

    def __init__(
        self,
        spec: HFDataset,
        patch_size: int,
        degradation: Degradation | DegradationMix,
        patches_per_image: int = 1,
        channels: int = 3,
        rank: int = 0,
        world_size: int = 1,
        hints: HintPolicy | None = None,
    ) -> None:
        self.spec = spec
        self.channels = channels
        self.patches_per_image = patches_per_image
        self.rank, self.world_size = rank, world_size
        self.make = PatchMaker(patch_size, degradation, hints=hints)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _stream(self) -> Iterator[dict[str, Any]]:
        from datasets.distributed import split_dataset_by_node

        stream = self.spec.load()
        if self.world_size > 1:
            stream = split_dataset_by_node(stream, rank=self.rank, world_size=self.world_size)
        stream.set_epoch(self.epoch)
        # Inside a DataLoader worker, `datasets` itself gives each worker its own shards (workers beyond the
        # stream's shard count stay idle), so every row is seen once per rank.
        return iter(stream)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for count, row in enumerate(self._stream()):
            try:
                image = decode_hf_cell(row[self.spec.image_column], self.channels)
            except (OSError, ValueError) as err:
                report_once(f"{self.spec.path}:{count}", f"skipping unreadable streamed image: {err}")
                continue
            for patch in range(self.patches_per_image):
                yield self.make(image, _sample_seed(count * self.patches_per_image + patch))


class ValidationItem(NamedTuple):
    """One validation pair: degraded input, clean target, protocol index, the item's index in its dataset, and its
    damage record (the protocol's JPEG quality, as the file would carry it, and the estimated noise)."""

    degraded: torch.Tensor
    clean: torch.Tensor
    protocol: int
    index: int  # type: ignore[assignment]  # the field shadows tuple.index, which nothing here calls
    damage: torch.Tensor


class ValidationGroup(NamedTuple):
    """Validation items of one image size, stacked: ``protocol`` and ``index`` hold one value per item."""

    degraded: torch.Tensor
    clean: torch.Tensor
    protocol: torch.Tensor
    index: torch.Tensor  # type: ignore[assignment]  # as in ValidationItem
    damage: torch.Tensor


ValidationBatch = list[ValidationGroup]


class ValidationPairs(Dataset[ValidationItem]):
    """Fixed validation pairs: every image under every protocol, identical in every run and worker layout.

    The clean image is the centre ``crop`` square (or the whole image with ``crop=None``); ``paper-S`` protocols use
    their own centre crop resized to SxS. ``describe(index)`` names an item: (protocol, image key).
    """

    def __init__(self, source: ImageSource, protocols: Sequence[str], crop: int | None = 256) -> None:
        check_protocols(protocols)
        if not protocols:
            raise InvalidArgumentError("at least one validation protocol is needed")
        self.source = source
        self.protocols = list(protocols)
        self.crop = crop

    def __len__(self) -> int:
        return len(self.source) * len(self.protocols)

    def describe(self, index: int) -> tuple[str, str]:
        """(protocol, image key) of item ``index``."""
        proto_index, image_index = divmod(index, len(self.source))
        return self.protocols[proto_index], self.source.key(image_index)

    def __getitem__(self, index: int) -> ValidationItem:
        proto_index, image_index = divmod(index, len(self.source))
        protocol = self.protocols[proto_index]
        image = _ensure_hwc(self.source.load(image_index))
        if self.crop is not None and not protocol.startswith("paper-"):
            image = _centre_crop(image, self.crop)
        clean = _ensure_hwc(protocol_target(protocol, image))
        degraded = _to_tensor(_ensure_hwc(apply_protocol(protocol, image, key=self.source.key(image_index))))
        return ValidationItem(degraded, _to_tensor(clean), proto_index, index, protocol_damage(protocol, degraded))


def collate_validation(items: list[ValidationItem]) -> ValidationBatch:
    """Stack validation items by image size, so a batch may hold whole images of different sizes and ``paper-S``
    protocols beside cropped ones."""
    groups: dict[tuple[int, ...], list[ValidationItem]] = {}
    for item in items:
        groups.setdefault(tuple(item.degraded.shape), []).append(item)
    return [
        ValidationGroup(
            torch.stack([g.degraded for g in group]),
            torch.stack([g.clean for g in group]),
            torch.tensor([g.protocol for g in group], dtype=torch.long),
            torch.tensor([g.index for g in group], dtype=torch.long),
            torch.stack([g.damage for g in group]),
        )
        for group in groups.values()
    ]


def protocol_damage(protocol: str, degraded: torch.Tensor) -> torch.Tensor:
    """The damage record of a protocol's input, as ``restore`` would build it from a file: the JPEG quality the
    protocol saved at (none: not a JPEG; for a protocol that saved twice, the heavier quality the file's tables and its
    pixels show, ``JpegReading.used``) and the noise estimated on the degraded ``(C, H, W)`` image, as a tensor
    (``Damage.tensor``)."""
    spec = PROTOCOLS[protocol]
    quality = spec.jpeg
    if quality is not None and spec.prior_jpeg is not None:
        quality = read_jpeg(luma255(degraded), tables=quality, grid=(0, 0)).used
    return Damage(quality, float(estimate_noise(degraded))).tensor()


def _centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]


# ----------------------------------------------------------------------------------------------------------------------
# The LightningDataModule.
class DegradationDataModule(L.LightningDataModule):
    """Training pairs made on the fly from clean images, and fixed validation pairs per protocol.

    Args:
        train_dirs: folders of clean training images (recursive).
        train_dataset: a Hugging Face dataset of clean training images (may stream), in addition to ``train_dirs``.
        val_dirs: folders of clean validation images.
        val_dataset: a Hugging Face dataset of clean validation images (downloaded, not streamed).
        patch_size: side of the training crops (the paper: 64).
        val_crop: side of the centre crop of validation images; ``None`` for whole images (a batch then holds
            one group per image size, see ``collate_validation``).
        batch_size: training batch size per process.
        val_batch_size: validation batch size per process.
        num_workers: loader worker processes per training process.
        patches_per_image: training crops drawn from each image per epoch (an epoch of a 400-image set at 1 crop
            per image is too short to be a useful unit).
        degradation: the random training degradation distribution (default: the paper's, see ``Degradation``), or
            a weighted mixture of several (``DegradationMix``).
        val_protocols: named evaluation protocols applied to every validation image.
        channels: 3 for RGB models, 1 for gray.
        cache_images: decode the training images once, in memory (``InMemorySource``), instead of once per crop:
            for fast accelerators, whose loader workers would otherwise spend most of their time decoding.
        persistent_workers: keep the loader workers alive between epochs and validations (saves their start-up,
            seconds with many workers).
        jpeg_hint_withhold: probability that a training sample's JPEG hint is withheld (``HintPolicy.withhold``).
        jpeg_hint_jitter: largest error added to a training sample's JPEG hint (``HintPolicy.jitter``).
        noise_hint: ``"estimate"`` or ``"calibrated"``: how a training sample's noise level is made
            (``HintPolicy.noise``).
        uint8_batches: carry training batches from the loader workers to the device as uint8 (``collate_uint8``)
            and turn them into float there (``on_after_batch_transfer``): a quarter of the bytes, for a fast GPU whose
            loader has to move gigabytes a second; the degraded inputs are rounded to 8 bits, as real images are.

    Under DDP, Lightning gives each rank a distinct shard of the map-style sets (``DistributedSampler``); a streaming
    set is split by rank with ``datasets.distributed.split_dataset_by_node`` and by worker inside each rank.
    """

    def __init__(
        self,
        train_dirs: list[str] | None = None,
        train_dataset: HFDataset | None = None,
        val_dirs: list[str] | None = None,
        val_dataset: HFDataset | None = None,
        patch_size: int = 64,
        val_crop: int | None = 256,
        batch_size: int = 32,
        val_batch_size: int = 8,
        num_workers: int = 2,
        patches_per_image: int = 8,
        degradation: Degradation | DegradationMix | None = None,
        val_protocols: list[str] | None = None,
        channels: int = 3,
        cache_images: bool = False,
        persistent_workers: bool = False,
        jpeg_hint_withhold: float = 0.3,
        jpeg_hint_jitter: int = 3,
        noise_hint: Literal["estimate", "calibrated"] = "estimate",
        uint8_batches: bool = False,
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise InvalidArgumentError(f"channels must be 1 or 3, got {channels}")
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size), ("patch_size", patch_size)):
            if value < 1:
                raise InvalidArgumentError(f"{name} must be >= 1, got {value}")
        if num_workers < 0:
            raise InvalidArgumentError(f"num_workers must be >= 0, got {num_workers}")
        self.train_dirs = list(train_dirs or [])
        self.train_dataset = train_dataset
        self.val_dirs = list(val_dirs or [])
        self.val_dataset = val_dataset
        self.patch_size = patch_size
        self.val_crop = val_crop
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.patches_per_image = patches_per_image
        self.degradation = degradation or Degradation()
        self.val_protocols = check_protocols(val_protocols or DEFAULT_VAL_PROTOCOLS)
        self.channels = channels
        self.cache_images = cache_images
        self.persistent_workers = persistent_workers and num_workers > 0
        if not 0.0 <= jpeg_hint_withhold <= 1.0 or jpeg_hint_jitter < 0:
            raise InvalidArgumentError(
                f"jpeg_hint_withhold must be in [0, 1] and jpeg_hint_jitter >= 0, got {jpeg_hint_withhold}, "
                f"{jpeg_hint_jitter}"
            )
        if noise_hint not in ("estimate", "calibrated"):
            raise InvalidArgumentError(f"noise_hint must be 'estimate' or 'calibrated', got {noise_hint!r}")
        self.hints = HintPolicy(float(jpeg_hint_withhold), int(jpeg_hint_jitter), noise_hint)
        self.uint8_batches = bool(uint8_batches)
        self.train_set: Dataset[Any] | IterableDataset[Any] | None = None
        self.val_set: ValidationPairs | None = None

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._train_set()
        if stage in (None, "fit", "validate", "test") and self.val_set is None and (self.val_dirs or self.val_dataset):
            source: ImageSource
            if self.val_dirs:
                source = FolderSource(self.val_dirs, self.channels)
            else:
                assert self.val_dataset is not None
                source = HFSource(self.val_dataset, self.channels)
            self.val_set = ValidationPairs(source, self.val_protocols, self.val_crop)

    def _train_set(self) -> Dataset[Any] | IterableDataset[Any]:
        sets: list[Dataset[Any]] = []
        if self.train_dataset is not None and self.train_dataset.streaming:
            if self.train_dirs:
                raise InvalidArgumentError("a streaming train_dataset cannot be combined with train_dirs")
            trainer = self._attached_trainer()
            rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
            return StreamingTrainPatches(
                self.train_dataset,
                self.patch_size,
                self.degradation,
                self.patches_per_image,
                self.channels,
                rank=rank,
                world_size=world,
                hints=self.hints,
            )
        if self.train_dirs:
            folders: ImageSource = FolderSource(self.train_dirs, self.channels)
            sets.append(
                TrainPatches(
                    InMemorySource(folders) if self.cache_images else folders,
                    self.patch_size,
                    self.degradation,
                    self.patches_per_image,
                    hints=self.hints,
                )
            )
        if self.train_dataset is not None:
            hf: ImageSource = HFSource(self.train_dataset, self.channels)
            sets.append(
                TrainPatches(
                    InMemorySource(hf) if self.cache_images else hf,
                    self.patch_size,
                    self.degradation,
                    self.patches_per_image,
                    hints=self.hints,
                )
            )
        if not sets:
            raise InvalidArgumentError("no training data: set train_dirs and/or train_dataset")
        return sets[0] if len(sets) == 1 else torch.utils.data.ConcatDataset(sets)

    def _attached_trainer(self) -> L.Trainer | None:
        """The trainer this data module is attached to, if any (``self.trainer`` raises when detached)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def protocol_name(self, index: int) -> str:
        """The name of a validation protocol index."""
        return self.val_protocols[index]

    def train_dataloader(self) -> DataLoader[Any]:
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        trainer = self._attached_trainer()
        if isinstance(self.train_set, StreamingTrainPatches) and trainer is not None:
            self.train_set.set_epoch(trainer.current_epoch)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=not isinstance(self.train_set, IterableDataset),
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=torch.cuda.is_available(),
            drop_last=True,
            collate_fn=collate_uint8 if self.uint8_batches else None,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """A uint8 training batch (``uint8_batches``), on its device now, as float32 on the 0..1 scale."""
        carried = isinstance(batch, tuple | list) and len(batch) >= 2 and isinstance(batch[0], torch.Tensor)
        if carried and batch[0].dtype == torch.uint8:
            return (batch[0].float().div_(255.0), batch[1].float().div_(255.0), *batch[2:])
        return batch

    def val_dataloader(self) -> DataLoader[Any]:
        if self.val_set is None:
            self.setup("validate")
        if self.val_set is None:
            raise InvalidArgumentError("no validation data: set val_dirs or val_dataset")
        return DataLoader(
            self.val_set,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate_validation,
        )

    def test_dataloader(self) -> DataLoader[Any]:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader[Any]:
        """The validation pairs, to write restored images with ``dcicnn.train.module.RestoredImageWriter``."""
        return self.val_dataloader()
