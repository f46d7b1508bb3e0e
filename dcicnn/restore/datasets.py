"""Restore every image of a Hugging Face dataset (a Hub id, or a local ``imagefolder`` / ``parquet`` folder).

Two outputs, both resumable and written atomically:

* image files, ``<output>/<row index>-<original name>.<ext>``, one per row (``restore_to_files``);
* a parquet dataset that keeps every other column, in shards of ``shard_rows`` rows
  (``<output>/data-<first row>.parquet``), the image column replaced by the restored PNGs (``restore_to_parquet``):
  ``datasets.load_dataset("parquet", data_dir=output)`` reads it back.

Images are decoded from the dataset's own bytes, so a JPEG keeps its quantisation tables and a conditioned model
is told the file's quality, as ``dcicnn restore`` does for files. Both take a downloaded ``datasets.Dataset`` or a
streaming ``datasets.IterableDataset`` (rows read as they arrive, nothing stored but the outputs); the outputs are
the same either way.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dcicnn.errors import DcicnnError, one_line
from dcicnn.imageio import save_image_atomic
from dcicnn.restore.inference import restore
from dcicnn.restore.options import RestoreOptions
from dcicnn.restore.runner import Restorer

__all__ = ["DatasetReport", "image_name", "image_names", "restore_to_files", "restore_to_parquet"]

#: What a failed row reports: its index and one line saying why.
Failure = tuple[int, str]


@dataclass
class DatasetReport:
    """What a dataset restore did: rows restored, rows skipped (their output existed) and rows that failed."""

    done: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)


def image_name(index: int, cell: dict[str, Any] | None) -> str:
    """A unique, sortable name for row ``index``: its number, then the stem of the file it came from if known."""
    path = (cell or {}).get("path")
    stem = Path(str(path)).stem if path else ""
    return f"{index:07d}-{stem}" if stem else f"{index:07d}"


def image_names(dataset: Any, column: str) -> list[str]:
    """``image_name`` of every row, read from the column's ``path`` field alone (Arrow, without the image bytes)."""
    import pyarrow.compute as pc

    paths = pc.struct_field(dataset.with_format("arrow")[column], "path").to_pylist()
    return [image_name(index, {"path": path}) for index, path in enumerate(paths)]


def decode(cell: dict[str, Any] | None) -> Image.Image:
    """The image of one undecoded cell, opened from its bytes (or its path), fully loaded."""
    if not cell or (cell.get("bytes") is None and not cell.get("path")):
        raise OSError("the row holds no image")
    source: Any = io.BytesIO(cell["bytes"]) if cell.get("bytes") is not None else cell["path"]
    image = Image.open(source)
    image.load()
    return image


def restore_to_files(
    model: Restorer,
    dataset: Any,
    column: str,
    output: Path,
    options: RestoreOptions,
    *,
    extension: str = ".png",
    skip_existing: bool = False,
    save: Callable[[Image.Image, Path], None] | None = None,
    progress: Callable[[Iterator[Any]], Iterator[Any]] = iter,
) -> DatasetReport:
    """Restore every row's image into ``output/<image_name><extension>``; a row that fails is reported and the
    others go on. ``skip_existing``: rows whose file exists are left alone (a killed run resumes where it stopped)."""
    report = DatasetReport()
    output.mkdir(parents=True, exist_ok=True)
    for index, row in enumerate(progress(iter(dataset))):
        cell = row.get(column)
        target = output / (image_name(index, cell) + extension)
        if skip_existing and target.exists():
            report.skipped += 1
            continue
        try:
            restored = restore(model, decode(cell), options)
            (save or _save_plain)(restored, target)
            report.done += 1
        except (DcicnnError, OSError, ValueError, Image.DecompressionBombError) as err:
            report.failed.append((index, one_line(err)))
    return report


def restore_to_parquet(
    model: Restorer,
    dataset: Any,
    column: str,
    output: Path,
    options: RestoreOptions,
    *,
    shard_rows: int = 256,
    skip_existing: bool = False,
    progress: Callable[[Iterator[Any]], Iterator[Any]] = iter,
) -> DatasetReport:
    """Restore every row into parquet shards of ``shard_rows`` rows that keep the other columns. Each shard is built
    with ``datasets``' batched ``map`` and written atomically (a temporary name, then a rename), so a killed run
    leaves only whole shards; ``skip_existing`` keeps them and restores the rest. A row whose image fails gets an
    empty image cell and is reported."""
    import datasets

    report = DatasetReport()
    output.mkdir(parents=True, exist_ok=True)
    features = dataset.features.copy()
    features[column] = datasets.Image()

    def restore_batch(batch: dict[str, list[Any]], indices: list[int], first: int) -> dict[str, list[Any]]:
        cells: list[dict[str, Any] | None] = []
        for offset, cell in zip(indices, batch[column], strict=True):
            index = first + offset
            try:
                restored = restore(model, decode(cell), options)
                buffer = io.BytesIO()
                restored.save(buffer, format="PNG")
                cells.append({"bytes": buffer.getvalue(), "path": image_name(index, cell) + ".png"})
                report.done += 1
            except (DcicnnError, OSError, ValueError, Image.DecompressionBombError) as err:
                cells.append(None)
                report.failed.append((index, one_line(err)))
        return {**batch, column: cells}

    for start, rows, load in progress(_shards(dataset, shard_rows)):
        target = output / f"data-{start:07d}.parquet"
        if skip_existing and target.exists():
            report.skipped += rows
            continue
        shard = load().map(
            restore_batch, batched=True, batch_size=16, with_indices=True, fn_kwargs={"first": start},
            features=features, keep_in_memory=True,
        )  # fmt: skip
        partial = target.with_name(f".{target.name}.partial")
        shard.to_parquet(str(partial))
        os.replace(partial, target)
    return report


def _shards(dataset: Any, shard_rows: int) -> Iterator[tuple[int, int, Callable[[], Any]]]:
    """``(first row, rows, load)`` for each shard: ``load()`` gives the shard as a ``datasets.Dataset``. A downloaded
    dataset is sliced (a skipped shard is never read); a streaming one is read in order, a shard at a time."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        total = len(dataset)
        for start in range(0, total, shard_rows):
            stop = min(start + shard_rows, total)
            yield start, stop - start, functools.partial(dataset.select, range(start, stop))
        return
    rows = iter(dataset)
    for start in itertools.count(0, shard_rows):
        chunk = list(itertools.islice(rows, shard_rows))
        if not chunk:
            return
        yield start, len(chunk), functools.partial(datasets.Dataset.from_list, chunk, features=dataset.features)


def _save_plain(image: Image.Image, target: Path) -> None:
    save_image_atomic(image, target)
