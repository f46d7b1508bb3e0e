"""Image sources: indexable clean images from folders or Hugging Face datasets, free of Lightning and albumentations.

Used by training (``dcicnn.train.data``), evaluation and any tool that only needs to list and decode images.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from dcicnn.errors import InvalidArgumentError
from dcicnn.imageio import image_to_uint8, read_image, readable_extensions

__all__ = ["FolderSource", "HFDataset", "HFSource", "ImageSource", "InMemorySource", "decode_hf_cell", "report_once"]

log = logging.getLogger(__name__)

_REPORTED: set[str] = set()


def report_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process (one line per bad file)."""
    if key not in _REPORTED:
        _REPORTED.add(key)
        log.warning(message)


# ----------------------------------------------------------------------------------------------------------------------
# Image sources.
class ImageSource(Protocol):
    """Indexable images: ``len``, ``load(i)`` -> uint8 ``(H, W, C)``, and a stable ``key(i)`` naming image i."""

    def __len__(self) -> int: ...
    def load(self, index: int) -> np.ndarray: ...
    def key(self, index: int) -> str: ...


class FolderSource:
    """Images under one or more folders (recursive): jpg, jpeg, png, bmp, tif, tiff, webp, in sorted order.

    Files whose header cannot be read (empty, truncated header, not an image) are reported once and skipped when the
    source is built; a file that fails later, while decoding, is reported once and replaced by the next image.
    Gray, palette, CMYK and 16-bit images are converted (see ``dcicnn.imageio.image_to_uint8``); alpha is dropped.
    """

    def __init__(self, roots: str | Path | Sequence[str | Path], channels: int = 3) -> None:
        roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
        self.channels = channels
        self.roots = [Path(r).expanduser() for r in roots]
        files: list[Path] = []
        extensions = readable_extensions()
        for root in self.roots:
            if not root.is_dir():
                raise FileNotFoundError(f"{root}: no such image folder")
            files.extend(sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file()))
        self.files = [f for f in files if _readable_header(f)]
        if not self.files:
            raise InvalidArgumentError(f"no readable images in {', '.join(map(str, self.roots))}")

    def __len__(self) -> int:
        return len(self.files)

    def key(self, index: int) -> str:
        path = self.files[index]
        root = next((r for r in self.roots if path.is_relative_to(r)), path.parent)
        return path.relative_to(root).as_posix()

    def load(self, index: int) -> np.ndarray:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                return read_image(path, self.channels)
            except OSError as err:
                report_once(str(path), f"skipping unreadable image: {err}")
        raise OSError(f"no image under {self.roots} could be decoded")


class InMemorySource:
    """Another source's images decoded once and kept in memory.

    Training draws many crops from each image; decoding a 481x321 JPEG for every 64x64 crop costs more than the crop's
    degradation, and is what limits a GPU's loader workers. Built in the main process before the loader workers
    start, the arrays are shared with them copy-on-write (BSDS500's 400 images: about 185 MB).
    """

    def __init__(self, source: ImageSource) -> None:
        self.source = source
        self.images = [source.load(i) for i in range(len(source))]

    def __len__(self) -> int:
        return len(self.images)

    def key(self, index: int) -> str:
        return self.source.key(index)

    def load(self, index: int) -> np.ndarray:
        return self.images[index]


def _readable_header(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - opening parses the header
        return True
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        report_once(str(path), f"skipping unreadable image {path}: {' '.join(str(err).split())}")
        return False


@dataclass
class HFDataset:
    """A Hugging Face ``datasets`` source of images.

    Attributes:
        path: a Hub dataset id (``user/name``), or ``imagefolder`` with ``data_dir`` for a local folder.
        split: the split to read.
        image_column: the column that holds the images.
        data_dir: local directory for ``imagefolder`` (or a sub-directory of a Hub dataset).
        revision: Hub revision of the dataset.
        streaming: stream instead of downloading (for sets too big for the disk); training only.
    """

    path: str
    split: str = "train"
    image_column: str = "image"
    data_dir: str | None = None
    revision: str | None = None
    streaming: bool = False

    def load(self) -> Any:
        import datasets

        kwargs: dict[str, Any] = {"split": self.split, "streaming": self.streaming}
        if self.data_dir is not None:
            kwargs["data_dir"] = str(Path(self.data_dir).expanduser()) if self.path == "imagefolder" else self.data_dir
        if self.revision is not None:
            kwargs["revision"] = self.revision
        dataset = datasets.load_dataset(self.path, **kwargs)
        if self.image_column not in (dataset.column_names or []):
            raise InvalidArgumentError(
                f"{self.path}: no column {self.image_column!r}; columns are {dataset.column_names}"
            )
        # Decode ourselves: cheap skipping in streams, and the same mode handling as for folders.
        return dataset.cast_column(self.image_column, datasets.Image(decode=False))


def decode_hf_cell(cell: dict[str, Any], channels: int) -> np.ndarray:
    if cell.get("bytes") is not None:
        with Image.open(io.BytesIO(cell["bytes"])) as image:
            image.load()
            return image_to_uint8(image, channels)
    return read_image(cell["path"], channels)


class HFSource:
    """A map-style (downloaded) Hugging Face dataset as an ``ImageSource``."""

    def __init__(self, spec: HFDataset, channels: int = 3) -> None:
        if spec.streaming:
            raise InvalidArgumentError("HFSource needs a downloaded dataset; use StreamingTrainPatches for streaming")
        self.spec = spec
        self.channels = channels
        self.dataset = spec.load()

    def __len__(self) -> int:
        return len(self.dataset)

    def key(self, index: int) -> str:
        cell = self.dataset[index][self.spec.image_column]
        name = cell.get("path")
        return os.path.basename(name) if name else f"{self.spec.split}-{index:07d}"

    def load(self, index: int) -> np.ndarray:
        for offset in range(len(self.dataset)):
            i = (index + offset) % len(self.dataset)
            try:
                return decode_hf_cell(self.dataset[i][self.spec.image_column], self.channels)
            except (OSError, ValueError) as err:
                report_once(f"{self.spec.path}:{i}", f"skipping unreadable image {i} of {self.spec.path}: {err}")
        raise OSError(f"no image of {self.spec.path} could be decoded")
