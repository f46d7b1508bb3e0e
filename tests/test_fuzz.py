"""A fuzzer for the image paths: images built by hypothesis (every Pillow mode the README promises, 1x1 to a few
thousand pixels a side, alpha, palettes with transparency, EXIF orientations, ICC profiles) through ``restore()``,
and folders of such files plus corrupted ones (bytes flipped, truncated, headers lying about their size) through
``dcicnn restore``. Whatever comes in: no traceback, one line per bad file, no partial output, and every good image
restored with its size, mode, depth, alpha and colour profile.

A short run by default; ``-m slow`` runs the long one (many more examples), as CI does.
"""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps

from dcicnn import DCICNN
from dcicnn_cli.main import main

#: Pillow mode (or "P+t", a palette with a transparent entry) -> the mode ``restore`` returns (README, *Images*).
RESTORED_MODE = {
    "1": "L", "L": "L", "LA": "LA", "La": "LA", "P": "RGB", "P+t": "RGBA", "PA": "RGBA", "RGB": "RGB",
    "RGBA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB",
    "I": "I;16", "I;16": "I;16", "F": "F",
}  # fmt: skip
#: The formats a file fuzzer writes, and the modes each holds (as Pillow writes them).
FORMAT_MODES = {
    "png": ("1", "L", "LA", "P", "P+t", "RGB", "RGBA", "I;16"),
    "jpg": ("L", "RGB", "CMYK"),
    "tif": ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F"),
    "webp": ("RGB", "RGBA"),
    "bmp": ("1", "L", "P", "RGB"),
    "gif": ("L", "P"),
}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# capsys is read before and after each example, so sharing it between examples is safe
_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
SHORT = settings(max_examples=20, deadline=None, suppress_health_check=_CHECKS)
LONG = settings(max_examples=250, deadline=None, suppress_health_check=_CHECKS)


@pytest.fixture(scope="module")
def model() -> DCICNN:
    """Small, conditioned (so every reading of the damage runs), with weights that change the image."""
    import torch

    torch.manual_seed(0)
    return DCICNN(width=4, depth=2, batch_norm=False, conditions=["jpeg", "noise"]).eval()


@pytest.fixture(scope="module")
def model_dir(model: DCICNN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz-model")
    model.save_pretrained(path)
    return path


def make_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """A ``width`` x ``height`` image of ``mode`` with random content."""
    rng = np.random.default_rng(seed)
    rgba = Image.fromarray(rng.integers(0, 256, size=(height, width, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, size=(height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(-1000, 70000, size=(height, width), dtype=np.int32))
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32), "F")
    if mode in ("P", "P+t", "PA"):
        palette = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        if mode == "P+t":
            palette.info["transparency"] = int(np.asarray(palette)[0, 0])
        return palette.convert("PA") if mode == "PA" else palette
    if mode in ("La", "RGBa"):
        return rgba.convert(mode[:-1] + "A").convert(mode)
    if mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        return rgba.convert("RGB").convert(mode)
    return rgba.convert(mode)


@dataclass(frozen=True)
class Case:
    mode: str
    width: int
    height: int
    seed: int
    orientation: int
    icc: bool


def sides() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, 48), st.integers(49, 300), st.integers(1000, 3000))


@st.composite
def cases(draw: st.DrawFn, modes: tuple[str, ...] = tuple(RESTORED_MODE)) -> Case:
    width, height = draw(sides()), draw(sides())
    if width * height > 120_000:  # a few thousand pixels a side, as strips: the tiny model runs them in a blink
        height = max(1, 120_000 // width)
    return Case(
        draw(st.sampled_from(modes)), width, height, draw(st.integers(0, 2**16)), draw(st.integers(1, 8)),
        draw(st.booleans()),
    )  # fmt: skip


def with_metadata(image: Image.Image, case: Case) -> Image.Image:
    """``image`` as a file would hand it over: an EXIF orientation, maybe an ICC profile."""
    exif = Image.Exif()
    exif[0x0112] = case.orientation
    image.info["exif"] = exif.tobytes()
    if case.icc and image.mode not in ("1", "I;16", "I", "F"):
        image.info["icc_profile"] = SRGB
    return image


def upright(image: Image.Image, orientation: int) -> Image.Image:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    return ImageOps.exif_transpose(image)


def alpha_of(image: Image.Image, mode: str) -> np.ndarray | None:
    """The alpha a restored ``mode`` image must keep: the input's, as RGBA/LA would carry it."""
    if RESTORED_MODE[mode] not in ("LA", "RGBA"):
        return None
    straight = image.convert({"La": "LA", "RGBa": "RGBA"}.get(image.mode, image.mode))  # Pillow: no La -> RGBA
    return np.asarray(straight.convert("RGBA").getchannel("A"))


def check_restored(model: DCICNN, case: Case) -> None:
    image = with_metadata(make_image(case.mode, case.width, case.height, case.seed), case)
    expected_alpha = alpha_of(upright(image.copy(), case.orientation), case.mode)
    out = model.restore(image, tile=64)
    assert out.mode == RESTORED_MODE[case.mode]
    turned = case.orientation in (5, 6, 7, 8)
    assert out.size == ((case.height, case.width) if turned else (case.width, case.height))
    if expected_alpha is not None:
        assert np.array_equal(np.asarray(out.getchannel("A")), expected_alpha)
    assert out.info.get("icc_profile") == image.info.get("icc_profile")
    if out.mode == "F":
        assert np.isfinite(np.asarray(out)).all()


@SHORT
@given(case=cases())
def test_restore_takes_every_image(model: DCICNN, case: Case) -> None:
    check_restored(model, case)


@pytest.mark.slow
@LONG
@given(case=cases())
def test_restore_takes_every_image_long(model: DCICNN, case: Case) -> None:
    check_restored(model, case)


# --- files through `dcicnn restore` -----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, case: Case) -> bytes:
    """The file a camera, editor or website might have written."""
    buffer = io.BytesIO()
    options: dict[str, object] = {}
    if fmt in ("jpg", "png", "tif", "webp") and "exif" in image.info:
        options["exif"] = image.info["exif"]
    if fmt in ("jpg", "png", "tif", "webp") and "icc_profile" in image.info:
        options["icc_profile"] = image.info["icc_profile"]
    if "transparency" in image.info and fmt == "png":
        options["transparency"] = image.info["transparency"]
    if fmt == "jpg":
        options["quality"] = 20 + case.seed % 75
    image.save(buffer, format={"jpg": "JPEG", "tif": "TIFF"}.get(fmt, fmt.upper()), **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


Corruption = Callable[[bytes], bytes]
Folder = tuple[list[tuple[str, Case]], list[tuple[str, Case, Corruption]]]  # good files, corrupted files


@st.composite
def corruptions(draw: st.DrawFn) -> Corruption:
    kind = draw(st.sampled_from(["flip", "truncate", "header", "empty", "text"]))
    if kind == "flip":
        positions = draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=8))

        def flip(data: bytes) -> bytes:
            out = bytearray(data)
            for p in positions:
                out[int(p * len(out))] ^= 0xFF
            return bytes(out)

        return flip
    if kind == "truncate":
        keep = draw(st.floats(0.0, 0.95))
        return lambda data: data[: int(len(data) * keep)]
    if kind == "header":
        width, height = draw(st.sampled_from([(100_000, 100_000), (0, 10), (1, 2**31 - 1), (65_535, 65_535)]))
        return lambda data: png_claiming(width, height)
    if kind == "empty":
        return lambda data: b""
    return lambda data: b"this is not an image\n"


@st.composite
def folders(draw: st.DrawFn) -> Folder:
    goods, bads = [], []
    for index in range(draw(st.integers(1, 3))):
        fmt = draw(st.sampled_from(sorted(FORMAT_MODES)))
        goods.append((f"good{index}.{fmt}", draw(cases(FORMAT_MODES[fmt]))))
    for index in range(draw(st.integers(0, 3))):
        fmt = draw(st.sampled_from(sorted(FORMAT_MODES)))
        bads.append((f"bad{index}.{fmt}", draw(cases(FORMAT_MODES[fmt])), draw(corruptions())))
    return goods, bads


def small(case: Case) -> Case:
    """Files stay small: the command's per-file work, not the pixels, is under test."""
    return Case(case.mode, min(case.width, 200), min(case.height, 150), case.seed, case.orientation, case.icc)


def check_folder(
    model_dir: Path, folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    goods, bads = folder
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "in", Path(tmp) / "out"
        source.mkdir()
        expected: dict[str, Case] = {}
        for name, case in goods:
            case = small(case)
            image = with_metadata(make_image(case.mode, case.width, case.height, case.seed), case)
            (source / name).write_bytes(encode(image, name.rsplit(".", 1)[1], case))
            expected[name] = case
        for name, case, corrupt in bads:
            case = small(case)
            image = make_image(case.mode, case.width, case.height, case.seed)
            (source / name).write_bytes(corrupt(encode(image, name.rsplit(".", 1)[1], case)))
        capsys.readouterr()
        code = main(["restore", str(source), "-o", str(out), "--model", str(model_dir), "--tile", "64"])
        captured = capsys.readouterr()
        errors = [line for line in captured.err.splitlines() if line.startswith("dcicnn restore: error:")]
        assert "Traceback" not in captured.err and all(
            line.startswith(("dcicnn restore: ", "restoring")) or not line.strip() for line in captured.err.splitlines()
        ), captured.err
        outputs = {p.name for p in out.iterdir()} if out.is_dir() else set()
        assert not [n for n in outputs if n.startswith(".") or n.endswith((".tmp", ".part"))], outputs  # no partials
        restored_names = {n.rsplit(".", 1)[0] for n in outputs}
        for name, case in expected.items():  # every good file restored, as it was
            stem = name.rsplit(".", 1)[0]
            assert stem in restored_names, (name, captured.err)
            (target,) = [out / n for n in outputs if n.rsplit(".", 1)[0] == stem]
            check_file(source / name, target, case)
        failed = [name for name, _, _ in bads if name.rsplit(".", 1)[0] not in restored_names]
        assert len(errors) == len(failed) and code == (1 if failed else 0), (failed, captured.err)
        for name in failed:  # one line each, naming the file
            assert sum(name in line for line in errors) == 1, (name, errors)


def check_file(source: Path, target: Path, case: Case) -> None:
    with Image.open(source) as before, Image.open(target) as after:
        upright_before = ImageOps.exif_transpose(before)
        assert after.size == upright_before.size
        mode = "P+t" if before.mode == "P" and "transparency" in before.info else before.mode
        restored = RESTORED_MODE.get(mode, mode)
        saved = {"I;16": ("I;16", "I"), "1": ("L",)}.get(restored, (restored,))
        assert after.mode in saved, (source.name, before.mode, after.mode)
        if restored in ("LA", "RGBA"):
            assert np.array_equal(
                np.asarray(after.convert("RGBA").getchannel("A")),
                np.asarray(upright_before.convert("RGBA").getchannel("A")),
            )
        if before.info.get("icc_profile") and target.suffix != ".tif":
            assert after.info.get("icc_profile") == before.info["icc_profile"]


@SHORT
@given(folder=folders())
def test_dcicnn_restore_takes_every_folder(
    model_dir: Path, folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    check_folder(model_dir, folder, capsys)


@pytest.mark.slow
@LONG
@given(folder=folders())
def test_dcicnn_restore_takes_every_folder_long(
    model_dir: Path, folder: Folder, capsys: pytest.CaptureFixture[str]
) -> None:
    check_folder(model_dir, folder, capsys)
