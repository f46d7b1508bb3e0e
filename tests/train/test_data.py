"""Image sources, training and validation pairs, and the DegradationDataModule."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from dcicnn import DCICNN, DegradationDataModule, RestorationModule
from dcicnn.train.data import (
    FolderSource,
    HFDataset,
    HFSource,
    InMemorySource,
    StreamingTrainPatches,
    TrainPatches,
    ValidationPairs,
    collate_validation,
)
from dcicnn.train.degradations import Degradation, DegradationMix
from tests.conftest import REPO_ROOT

RNG = np.random.default_rng(0)


def textured(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))[:h, :w]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Six small RGB images, one in a sub-folder."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        target = root / ("sub" if i == 5 else "") / f"img{i}.png"
        Image.fromarray(textured(40 + i, 48, i)).save(target)
    return root


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """One file of every awkward kind the folder source documents."""
    root = tmp_path / "odd"
    root.mkdir()
    Image.fromarray(textured(32, 32, 1)).save(root / "a_rgb.png")
    Image.fromarray(np.full((32, 32), 77, np.uint8), mode="L").save(root / "b_gray.png")
    palette = Image.new("P", (32, 32))
    palette.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    palette.paste(1, (0, 0, 32, 32))
    palette.save(root / "c_palette.png")
    rgba = np.dstack([np.full((32, 32, 3), 90, np.uint8), np.zeros((32, 32), np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(root / "d_rgba.png")
    Image.fromarray(np.full((32, 32), 65535, np.uint16)).save(root / "e_16bit.png")
    Image.fromarray(textured(64, 64, 2)).save(root / "f_truncated.jpg", quality=90)
    data = (root / "f_truncated.jpg").read_bytes()
    (root / "f_truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "g_text.jpg").write_text("this is not a JPEG")
    (root / "h_empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image extension: ignored")
    return root


def test_folder_source_is_recursive_and_sorted(folder: Path) -> None:
    source = FolderSource(folder)
    assert len(source) == 6
    assert [source.key(i) for i in range(6)] == [f"img{i}.png" for i in range(5)] + ["sub/img5.png"]
    image = source.load(2)
    assert image.dtype == np.uint8 and image.shape == (42, 48, 3)


def test_odd_files_behave_as_documented(odd_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dcicnn.train.data"):
        source = FolderSource(odd_folder)
        keys = [source.key(i) for i in range(len(source))]
        # unreadable headers: skipped when the source is built, one warning each
        assert keys == ["a_rgb.png", "b_gray.png", "c_palette.png", "d_rgba.png", "e_16bit.png", "f_truncated.jpg"]
        assert sum("g_text.jpg" in r.message for r in caplog.records) == 1
        assert sum("h_empty.png" in r.message for r in caplog.records) == 1
        gray, palette, rgba, wide = (source.load(i) for i in range(1, 5))
        assert gray.shape == (32, 32, 3) and (gray == 77).all()  # gray -> RGB
        assert (palette == [200, 10, 20]).all()  # palette -> its RGB colours
        assert (rgba == 90).all()  # alpha dropped, colour kept
        assert (wide == 255).all()  # 16-bit scaled by 1/257, not clipped
        # a file that fails while decoding: reported once, the next image is used instead
        first = source.load(5)
        second = source.load(5)
        assert np.array_equal(first, source.load(0)) and np.array_equal(second, first)
        assert sum("f_truncated.jpg" in r.message for r in caplog.records) == 1
    gray_source = FolderSource(odd_folder, channels=1)
    assert gray_source.load(0).shape == (32, 32, 1)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such image folder"):
        FolderSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        FolderSource(tmp_path / "empty")


def test_clean_target_is_an_untouched_crop(folder: Path) -> None:
    source = FolderSource(folder)
    heavy = Degradation(blur_prob=1.0, noise_prob=1.0, jpeg_prob=1.0, jpeg_quality=(10, 20))
    dataset = TrainPatches(source, patch_size=16, degradation=heavy, augment=False)
    torch.manual_seed(0)
    for index in range(len(dataset)):
        degraded, clean, _ = dataset[index]
        assert degraded.shape == clean.shape == (3, 16, 16)
        image = source.load(index)
        patch = (clean.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        windows = np.lib.stride_tricks.sliding_window_view(image, (16, 16, 3))[:, :, 0]
        assert (windows == patch).all(axis=(2, 3, 4)).any(), "clean patch is not an exact crop of its image"
        assert not torch.equal(degraded, clean)


def test_augmented_crops_are_dihedral_transforms_of_the_image(folder: Path) -> None:
    source = FolderSource(folder)
    dataset = TrainPatches(source, 12, Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0))
    torch.manual_seed(1)
    for index in range(len(dataset)):
        degraded, clean, _ = dataset[index]
        assert torch.equal(degraded, clean)  # nothing applied: the input equals the target
        patch = (clean.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        image = source.load(index)
        variants = [np.rot90(v, k) for v in (image, image[:, ::-1]) for k in range(4)]
        found = any(
            (np.lib.stride_tricks.sliding_window_view(v, (12, 12, 3))[:, :, 0] == patch).all(axis=(2, 3, 4)).any()
            for v in variants
        )
        assert found


def test_small_images_are_mirror_padded(folder: Path) -> None:
    dataset = TrainPatches(FolderSource(folder), 64, Degradation())
    degraded, clean, _ = dataset[0]
    assert degraded.shape == clean.shape == (3, 64, 64)


def test_paper_resize_makes_64x64_pairs(folder: Path) -> None:
    dataset = TrainPatches(FolderSource(folder), 40, Degradation.paper())
    degraded, clean, _ = dataset[0]
    assert degraded.shape == clean.shape == (3, 64, 64)


def module(folder: Path, **kwargs: object) -> DegradationDataModule:
    defaults: dict[str, object] = {
        "train_dirs": [str(folder)],
        "val_dirs": [str(folder)],
        "patch_size": 16,
        "batch_size": 4,
        "val_batch_size": 4,
        "num_workers": 0,
        "patches_per_image": 2,
        "val_crop": 24,
        "val_protocols": ["jpeg-q10", "noise-s25", "paper-32"],
    }
    return DegradationDataModule(**{**defaults, **kwargs})  # type: ignore[arg-type]


def flatten(loader: torch.utils.data.DataLoader) -> list[torch.Tensor]:
    return [t for batch in loader for group in batch for t in group]


def test_validation_pairs_are_identical_across_runs_and_worker_counts(folder: Path) -> None:
    runs = []
    for workers in (0, 2, 0):
        dm = module(folder, num_workers=workers)
        dm.setup("validate")
        runs.append(flatten(dm.val_dataloader()))
    assert len(runs[0]) == len(runs[1]) == len(runs[2]) > 0
    for a, b, c in zip(*runs, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_validation_batches_group_sizes_and_name_protocols(folder: Path) -> None:
    dm = module(folder, val_batch_size=64)
    dm.setup("validate")
    (batch,) = list(dm.val_dataloader())
    shapes = sorted(tuple(group[0].shape) for group in batch)
    assert shapes == [(6, 3, 32, 32), (12, 3, 24, 24)]  # one group per size, protocols may share a group
    names = {dm.protocol_name(int(i)) for group in batch for i in group.protocol}
    assert dm.val_set is not None
    described = {dm.val_set.describe(int(i)) for group in batch for i in group.index}
    assert len(described) == 18 and ("paper-32", "sub/img5.png") in described
    assert names == {"jpeg-q10", "noise-s25", "paper-32"}
    whole = ValidationPairs(FolderSource(folder), ["jpeg-q10"], crop=None)
    groups = collate_validation([whole[i] for i in range(len(whole))])
    assert sorted(g.degraded.shape[2] for g in groups) == [40, 41, 42, 43, 44, 45]  # whole images of every size


def test_training_pairs_differ_between_epochs_and_repeat_with_the_seed(folder: Path) -> None:
    def epochs(seed: int, workers: int) -> list[list[torch.Tensor]]:
        L.seed_everything(seed, workers=True, verbose=False)
        dm = module(folder, num_workers=workers)
        dm.setup("fit")
        loader = dm.train_dataloader()
        return [flatten_train(loader) for _ in range(2)]

    for workers in (0, 2):
        first, second = epochs(0, workers)
        assert len(first) == len(second) == 12 // 4 * 2
        assert not any(torch.equal(a, b) for a, b in zip(first, second, strict=True))
        again, _ = epochs(0, workers)
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_a_degradation_mixture_trains_like_a_single_distribution(folder: Path) -> None:
    noise = Degradation(blur_prob=0, noise_prob=1, noise_sigma=(30, 30), jpeg_prob=0)
    untouched = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0)
    L.seed_everything(0, verbose=False)
    dm = module(folder, degradation=DegradationMix([noise, untouched], weights=[1, 1]), patches_per_image=8)
    dm.setup("fit")
    pairs = [(d, c) for degraded, clean, _ in dm.train_dataloader() for d, c in zip(degraded, clean, strict=True)]
    changed = [not torch.equal(d, c) for d, c in pairs]
    assert len(pairs) == 48 and 0 < sum(changed) < len(pairs)  # both components drawn
    for (degraded, clean), noisy in zip(pairs, changed, strict=True):
        if noisy:
            assert 20 < float((degraded - clean).std()) * 255 < 35


def flatten_train(loader: torch.utils.data.DataLoader) -> list[torch.Tensor]:
    return [t for batch in loader for t in batch[:2]]  # degraded, clean (the damage record has NaNs)


def test_workers_draw_distinct_degradations(folder: Path) -> None:
    source = FolderSource(folder)
    same_image = TrainPatches(source, 16, Degradation(noise_prob=1.0, blur_prob=0, jpeg_prob=0), patches_per_image=8)
    indices = [0 + len(source) * k for k in range(8)]  # eight crops of image 0
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(same_image, indices), batch_size=1, num_workers=2)
    L.seed_everything(0, workers=True, verbose=False)
    noises = [d - c for d, c, _ in loader]
    assert all(not torch.equal(noises[i], noises[j]) for i in range(8) for j in range(i))


def write_imagefolder(root: Path, count: int) -> Path:
    """An imagefolder whose images are flat colours, so every patch names its image."""
    (root / "train").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full((20, 20, 3), 10 * i, np.uint8)).save(root / "train" / f"{i:03d}.png")
    return root


def test_hf_imagefolder_source_from_a_local_directory(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "hf", 5)
    source = HFSource(HFDataset(path="imagefolder", data_dir=str(root), split="train"))
    assert len(source) == 5
    assert sorted(source.key(i) for i in range(5)) == [f"{i:03d}.png" for i in range(5)]
    assert {int(source.load(i)[0, 0, 0]) for i in range(5)} == {0, 10, 20, 30, 40}
    dm = DegradationDataModule(
        train_dataset=HFDataset(path="imagefolder", data_dir=str(root)),
        val_dataset=HFDataset(path="imagefolder", data_dir=str(root)),
        patch_size=8,
        batch_size=2,
        num_workers=0,
        val_crop=16,
        val_protocols=["jpeg-q30"],
    )
    dm.setup("fit")
    degraded, clean, _ = next(iter(dm.train_dataloader()))
    assert degraded.shape == clean.shape == (2, 3, 8, 8)
    assert len(flatten(dm.val_dataloader())) == 5  # one group: degraded, clean, protocol, index, damage
    with pytest.raises(ValueError, match="no column 'picture'"):
        HFSource(HFDataset(path="imagefolder", data_dir=str(root), image_column="picture"))


def streamed_images(dataset: StreamingTrainPatches, workers: int) -> list[int]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers)
    return sorted(int(round(float(clean[0, 0, 0]) * 255)) // 10 for _, clean, _ in loader)


def test_streaming_source_is_split_by_rank_and_worker(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "stream", 8)
    spec = HFDataset(path="imagefolder", data_dir=str(root), streaming=True)
    clean_only = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0)
    whole = streamed_images(StreamingTrainPatches(spec, 8, clean_only), workers=0)
    assert whole == list(range(8))
    per_rank = [
        streamed_images(StreamingTrainPatches(spec, 8, clean_only, rank=r, world_size=2), workers=2) for r in (0, 1)
    ]
    assert sorted(per_rank[0] + per_rank[1]) == list(range(8))  # every image once, none twice
    assert per_rank[0] and per_rank[1] and not set(per_rank[0]) & set(per_rank[1])


def test_datamodule_argument_checks(folder: Path) -> None:
    with pytest.raises(ValueError, match="unknown protocols"):
        module(folder, val_protocols=["jpeg-q11"]).setup("validate")
    with pytest.raises(ValueError, match="no training data"):
        DegradationDataModule(val_dirs=[str(folder)]).setup("fit")
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        DegradationDataModule(channels=2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DegradationDataModule(batch_size=0)


def test_in_memory_source_serves_the_same_images_and_pairs() -> None:
    folder = FolderSource([REPO_ROOT / "dcicnn" / "assets"])
    cached = InMemorySource(folder)
    assert len(cached) == len(folder) and cached.key(0) == folder.key(0)
    assert np.array_equal(cached.load(0), folder.load(0))
    mix = DegradationMix([Degradation(), Degradation(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)])
    pairs = []
    for source in (folder, cached):
        torch.manual_seed(3)
        pairs.append(TrainPatches(source, 32, mix, patches_per_image=4)[2])
    assert all(torch.equal(a, b) for a, b in zip(pairs[0], pairs[1], strict=True))


def test_cache_images_and_persistent_workers_reach_the_loaders() -> None:
    assets = [str(REPO_ROOT / "dcicnn" / "assets")]
    dm = DegradationDataModule(
        train_dirs=assets,
        val_dirs=assets,
        num_workers=1,
        cache_images=True,
        persistent_workers=True,
        batch_size=2,
        patch_size=16,
    )
    dm.setup("fit")
    assert isinstance(dm.train_set, TrainPatches) and isinstance(dm.train_set.source, InMemorySource)
    assert dm.train_dataloader().persistent_workers and dm.val_dataloader().persistent_workers
    # without workers there is nothing to keep alive
    assert not DegradationDataModule(train_dirs=assets, num_workers=0, persistent_workers=True).persistent_workers


def test_uint8_batches_carry_a_quarter_of_the_bytes_and_arrive_as_the_float_pairs(folder: Path) -> None:
    def first_batch(**kwargs: object) -> tuple[DegradationDataModule, list[torch.Tensor]]:
        L.seed_everything(0, workers=True, verbose=False)
        dm = module(folder, **kwargs)
        dm.setup("fit")
        return dm, next(iter(dm.train_dataloader()))

    _, (degraded, clean, damage) = first_batch()
    dm, carried = first_batch(uint8_batches=True)
    assert [t.dtype for t in carried] == [torch.uint8, torch.uint8, torch.float32]
    restored = dm.on_after_batch_transfer(carried, 0)
    assert [t.dtype for t in restored] == [torch.float32] * 3
    assert torch.equal(restored[1], clean)  # the clean target is 8-bit already
    assert float((restored[0] - degraded).abs().max()) <= 0.5 / 255 + 1e-6  # the input rounded to 8 bits
    assert torch.equal(restored[2].nan_to_num(-1), damage.nan_to_num(-1))
    validation = next(iter(dm.val_dataloader()))
    assert dm.on_after_batch_transfer(validation, 0) is validation  # validation batches pass through


def test_a_run_with_uint8_batches_trains_on_floats(folder: Path) -> None:
    seen: list[torch.dtype] = []

    class Recording(RestorationModule):
        def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
            seen.append(batch[0].dtype)
            return super().training_step(batch, batch_idx)

    trainer = L.Trainer(
        fast_dev_run=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Recording(DCICNN(width=8, depth=3)), datamodule=module(folder, uint8_batches=True))
    assert seen == [torch.float32, torch.float32]
