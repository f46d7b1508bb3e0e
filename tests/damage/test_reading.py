"""The JPEG reading: a file's tables and what its pixels show (saved twice, on and off the grid), and what restore does
with it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcicnn import DCICNN
from dcicnn.damage.conditions import central_window, luma255
from dcicnn.damage.reading import JpegReading, read_jpeg
from dcicnn.restore.files import restore_file
from dcicnn.restore.policy import FileJpeg, consistency_share, measure, recorded_readings
from dcicnn.train.degradations import jpeg
from tests.conftest import REPO_ROOT

SAMPLE = np.asarray(Image.open(REPO_ROOT / "dcicnn" / "assets" / "sample.png").convert("RGB"))


def read(image: np.ndarray, tables: int | None = None) -> JpegReading:
    return read_jpeg(central_window(luma255(image)), tables=tables, grid=None if tables is None else (0, 0))


def saved(image: np.ndarray, *qualities: int, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``image`` saved at each quality in turn, cropped by ``shift`` after the first save."""
    out = jpeg(image, qualities[0])[shift[0] :, shift[1] :]
    for quality in qualities[1:]:
        out = jpeg(out, quality)
    return out


def test_single_saves_read_as_their_tables_and_clean_images_as_no_jpeg() -> None:
    assert read(SAMPLE).used is None and read(SAMPLE).describe() == "no JPEG grid in the pixels"
    for quality in (10, 40, 75, 90, 95):
        reading = read(saved(SAMPLE, quality), tables=quality)
        assert reading.used == quality and not reading.resaved, reading
        pixels = read(saved(SAMPLE, quality)).used  # an array: the pixels alone
        assert pixels is not None and abs(pixels - quality) <= 5


@pytest.mark.parametrize("quality", [85, 88, 90, 92, 95])
def test_the_pixels_read_high_qualities_exactly_despite_the_decoders_rounding(quality: int) -> None:
    # Steps of 2 and 3 sit under the rounding noise of the decoded 8-bit RGB; read against a fixed threshold a q90
    # array read as q94, and the high-quality taper gave it a fifth of its share of the correction.
    assert read(saved(SAMPLE, quality)).used == quality
    assert read(saved(SAMPLE, 98)).used is None  # steps of 1 everywhere: as good as lossless


def test_a_resave_on_the_same_grid_reads_the_earlier_heavier_save() -> None:
    reading = read(saved(SAMPLE, 75, 96), tables=96)
    assert reading.resaved and not reading.off_grid
    assert 70 <= reading.used <= 78
    assert reading.describe() == f"tables q96, pixels q{reading.pixels}: restored as q{reading.used}"
    assert read(saved(SAMPLE, 95, 96), tables=96).used == 96  # nothing heavier to find: the tables


@pytest.mark.parametrize(("first", "last", "shift"), [(10, 30, (4, 4)), (30, 90, (3, 5))])
def test_a_resave_off_the_grid_reads_the_earlier_save_on_its_own_grid(
    first: int, last: int, shift: tuple[int, int]
) -> None:
    reading = read(saved(SAMPLE, first, last, shift=shift), tables=last)
    assert reading.off_grid and abs(reading.used - first) <= 3
    assert reading.earlier_grid == ((8 - shift[0]) % 8, (8 - shift[1]) % 8)
    assert "an earlier save" in reading.describe()


def test_the_heavier_reading_counts_only_beyond_the_tolerance() -> None:
    assert JpegReading(tables=40, pixels=35).used == 40  # a single save read a little low
    assert JpegReading(tables=96, pixels=74).used == 74
    assert JpegReading(tables=50, pixels=48, earlier=30, earlier_grid=(4, 4)).used == 30
    assert JpegReading(pixels=30, earlier=57, earlier_grid=(0, 4)).used == 30  # a lighter "earlier" is ignored
    assert JpegReading(tables=90).used == 90 and not JpegReading(tables=90).resaved


def test_measure_acts_on_the_heavier_save_and_drops_the_grid_of_an_off_grid_one() -> None:
    twice = torch.from_numpy(saved(SAMPLE, 75, 96).copy()).permute(2, 0, 1)
    file = FileJpeg(96, None)
    damage, grid, reading = measure(twice, "auto", file_jpeg=file, scale=255.0)
    assert damage.jpeg_quality == reading.used < 80 and grid is not None  # same grid: projected on q7x's bins
    assert grid.table[0, 0] == pytest.approx(float(np.clip((16 * (200 - 2 * reading.used) + 50) // 100, 1, 255)))
    damage, _, _ = measure(twice, 96, file_jpeg=file, scale=255.0)
    assert damage.jpeg_quality == 96  # an int is taken as given
    shifted = torch.from_numpy(saved(SAMPLE, 10, 30, shift=(4, 4)).copy()).permute(2, 0, 1)
    damage, grid, reading = measure(shifted, "auto", file_jpeg=FileJpeg(30, None), scale=255.0)
    assert damage.jpeg_quality is not None and damage.jpeg_quality <= 13 and grid is None and reading.off_grid


def test_the_consistency_gate_scales_the_projection_by_what_it_would_remove() -> None:
    degraded = torch.zeros(1, 8, 8)
    restored = torch.ones(1, 8, 8)
    for removed, share in ((0.0, 1.0), (0.1, 1.0), (0.25, 0.5), (0.5, 0.0)):
        projected = restored - np.sqrt(removed)  # removes `removed` of the correction's energy
        assert consistency_share(restored, projected, degraded, (0.15, 0.35)) == pytest.approx(share)
    assert consistency_share(restored, degraded, degraded, None) == 1.0
    assert consistency_share(degraded, degraded, degraded, (0.15, 0.35)) == 1.0  # no correction at all


def test_the_gate_keeps_projecting_where_the_network_invents_texture_in_a_few_cells() -> None:
    degraded = torch.zeros(3, 64, 64)
    restored = torch.ones(3, 64, 64)  # the network changed every 16x16 cell alike
    blur_like = restored * 0.3  # the projection would undo half its energy everywhere: blur under the JPEG
    assert consistency_share(restored, blur_like, degraded, (0.15, 0.35)) == 0.0
    local = restored.clone()
    local[:, :16, :32] = 0.0  # ... and all of it in 2 cells of 16: a pattern invented there
    assert consistency_share(restored, local, degraded, (0.15, 0.35)) == 1.0


def test_a_resaved_jpeg_file_is_restored_and_the_reading_noted(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(saved(SAMPLE, 74)).save(buffer, format="JPEG", quality=96)
    source = tmp_path / "twice.jpg"
    source.write_bytes(buffer.getvalue())
    model = DCICNN.from_pretrained()
    notes: list[str] = []
    with recorded_readings() as readings:
        target = restore_file(model, source, tmp_path / "out.png", note=notes.append)
    assert readings[0].tables == 96 and readings[0].used is not None and readings[0].used < 80
    assert notes == [f"{source}: {readings[0].describe()}"] and "tables q96, pixels q7" in notes[0]
    with Image.open(source) as before, Image.open(target) as after:
        assert not np.array_equal(np.asarray(before), np.asarray(after))  # deblocked, not returned untouched
    for quality in (96, 98):  # a single save: nothing to note; the default's taper (85, 98) gives q96 2/13 of the
        once = tmp_path / f"once-{quality}.jpg"  # correction (a light touch) and q98 none (untouched)
        Image.fromarray(SAMPLE).save(once, quality=quality)
        notes.clear()
        restore_file(model, once, tmp_path / f"once-{quality}.png", note=notes.append)
        with Image.open(once) as before, Image.open(tmp_path / f"once-{quality}.png") as after:
            change = np.abs(np.asarray(before).astype(int) - np.asarray(after).astype(int))
            assert notes == [] and (change.max() == 0 if quality == 98 else 0 < change.mean() < 0.5)


@pytest.mark.parametrize("shape", [(8, 600), (600, 8), (15, 520), (16, 520)])
def test_a_strip_one_block_high_is_read_without_warnings(shape: tuple[int, int]) -> None:
    luma = np.random.default_rng(0).uniform(0, 255, shape)
    reading = read_jpeg(luma, tables=50)  # the test run turns numpy's "mean of empty slice" into an error
    assert reading.tables == 50 and reading.earlier is None


def test_random_images_of_any_size_read_as_no_jpeg_and_small_crops_read_right() -> None:
    # the reading tries many steps on the best of 64 grids: chance alone must not make a JPEG of noise (it did, for
    # a float 86 x 86 noise image read as q96, whose restore was then held in q96's bins)
    for seed, size in enumerate([64, 86, 100, 128, 160, 200, 256, 300] * 4):
        noise = torch.rand(3, size, size + seed, generator=torch.Generator().manual_seed(seed))
        if seed % 2:
            noise = (noise * 255).round() / 255
        assert read_jpeg(central_window(luma255(noise))).used is None, (seed, size)
    crop = np.ascontiguousarray(SAMPLE[:128, :128])
    assert read(saved(crop, 90)).used == 90
