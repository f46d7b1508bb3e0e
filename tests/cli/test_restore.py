"""`dcicnn restore`: inputs of every kind, bad files, atomic outputs and --overwrite."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcicnn import DCICNN
from dcicnn.imageio import ImageReadError, open_image
from dcicnn_cli.main import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model")
    DCICNN(width=8, depth=3).save_pretrained(path)
    return path


def photo(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB", **save: object) -> Path:
    rng = np.random.default_rng(len(str(path)))
    rgb = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    (rgb if mode == "RGB" else rgb.convert(mode)).save(path, **save)
    return path


def huge_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG file whose header claims width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    )
    return path


def restore(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["restore", *args])
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()], captured.out


def test_files_folders_and_globs(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "in" / "a.jpg")
    photo(tmp_path / "in" / "sub" / "b.png")
    photo(tmp_path / "loose" / "c.bmp")
    photo(tmp_path / "loose" / "d.webp")
    code, errors, out = restore(
        capsys,
        str(tmp_path / "in"),
        str(tmp_path / "loose" / "c.bmp"),
        str(tmp_path / "loose" / "*.webp"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(model_dir),
    )
    assert code == 0 and errors == [], errors
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert written == ["a.png", "c.png", "d.png", "sub", "sub/b.png"]
    assert "restored 4 of 4" in out
    code, _, _ = restore(
        capsys,
        str(tmp_path / "loose" / "c.bmp"),
        "-o",
        str(tmp_path / "jpg"),
        "--format",
        "jpg",
        "--model",
        str(model_dir),
    )
    with Image.open(tmp_path / "jpg" / "c.jpg") as image:
        assert code == 0 and image.format == "JPEG" and image.size == (40, 30)


def test_every_bad_input_is_one_line_and_the_rest_is_restored(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    photo(folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a JPEG")
    data = photo(folder / "truncated.jpg", size=(64, 64), quality=90).read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    huge_png(folder / "bomb.png")
    code, errors, out = restore(
        capsys,
        str(folder),
        str(tmp_path / "missing.png"),
        str(tmp_path / "none-*.png"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(model_dir),
    )
    assert code == 1
    assert len(errors) == 6, errors
    text = "\n".join(errors)
    assert "empty.png: empty file" in text
    assert "text.jpg: not an image format Pillow can read" in text
    assert "truncated.jpg: truncated image data" in text
    assert "bomb.png: the image claims more pixels than the limit" in text and "--max-pixels" in text
    assert "missing.png: no such file" in text
    assert "none-*.png: no file matches this pattern" in text
    assert "Traceback" not in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]  # no partial files
    assert "restored 1 of 6" in out


def test_directory_where_a_file_is_expected(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").mkdir()
    with pytest.raises(ImageReadError, match="is a directory"):
        open_image(tmp_path / "photo.jpg")


def test_max_pixels_option(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "a.png", size=(40, 30))
    code, errors, _ = restore(
        capsys, str(tmp_path / "a.png"), "-o", str(tmp_path / "o1"), "--model", str(model_dir), "--max-pixels", "1000"
    )
    assert code == 1 and "more pixels than the limit of 1,000" in errors[0]
    code, errors, _ = restore(
        capsys, str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"), "--model", str(model_dir), "--max-pixels", "1200"
    )
    assert code == 0 and errors == []
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the process-wide guard is left as it was


def test_overwrite_semantics(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    code, errors, _ = restore(capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir))
    assert code == 1 and "1 of 1 output(s) already exist" in errors[0] and "--overwrite to replace them" in errors[0]
    assert (out / "a.png").read_bytes() == b"keep me"
    code, errors, _ = restore(capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir), "--overwrite")
    assert code == 0 and errors == []
    with Image.open(out / "a.png") as image:
        assert image.size == (40, 30)
    before = (tmp_path / "in" / "a.png").read_bytes()
    code, errors, _ = restore(  # a file named on the command line, written back into its own folder
        capsys, str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "in"), "--model", str(model_dir), "--overwrite"
    )
    assert code == 1 and "would overwrite an input" in errors[0]
    assert (tmp_path / "in" / "a.png").read_bytes() == before


def test_an_output_folder_inside_the_input_folder_is_not_an_input(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo(tmp_path / "in" / "a.jpg")
    out = tmp_path / "in" / "restored"
    for _ in range(2):  # the second run must not restore restored/a.png into restored/restored/a.png
        code, errors, _ = restore(
            capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir), "--skip-existing"
        )
        assert code == 0 and errors == [], errors
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.png"]


def test_skip_existing_resumes_a_folder(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"done before")
    code, errors, summary = restore(
        capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir), "--skip-existing"
    )
    assert code == 0 and errors == [] and "restored 1 of 2 image(s)" in summary and "1 skipped" in summary
    assert (out / "a.png").read_bytes() == b"done before" and (out / "b.png").is_file()
    code, errors, _ = restore(capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir))
    assert code == 1 and "--skip-existing to keep them" in errors[0]
    with pytest.raises(SystemExit):  # one or the other
        main(["restore", str(tmp_path / "in"), "-o", str(out), "--overwrite", "--skip-existing"])
    capsys.readouterr()


def test_same_stem_inputs_name_both_and_keep_extension_separates_them(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo(tmp_path / "in" / "photo.jpg")
    photo(tmp_path / "in" / "photo.webp")
    out = tmp_path / "out"
    code, errors, _ = restore(capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir))
    assert code == 1 and len(errors) == 1
    assert "photo.webp" in errors[0] and "photo.jpg" in errors[0] and "--keep-extension" in errors[0]
    code, errors, _ = restore(
        capsys, str(tmp_path / "in"), "-o", str(tmp_path / "kept"), "--model", str(model_dir), "--keep-extension"
    )
    assert code == 0 and errors == []
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["photo.jpg.png", "photo.webp.png"]


def test_a_total_failure_leaves_no_empty_output_folder(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    code, errors, _ = restore(capsys, str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_dir))
    assert code == 1 and len(errors) == 1 and not (tmp_path / "out").exists()


def test_failed_save_leaves_no_partial_file(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo(tmp_path / "rgba.png", mode="RGBA")
    code, errors, _ = restore(
        capsys, str(tmp_path / "rgba.png"), "-o", str(tmp_path / "out"), "--format", "jpg", "--model", str(model_dir)
    )
    assert code == 1 and "JPEG cannot store a RGBA image" in errors[0]
    assert not (tmp_path / "out").exists()  # no partial file, and no empty folder either


def test_unwritable_output(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "a.png")
    (tmp_path / "file").write_text("a file, not a folder")
    for target in (tmp_path / "file" / "out", Path("/proc/dcicnn-test-output")):
        code, errors, _ = restore(capsys, str(tmp_path / "a.png"), "-o", str(target), "--model", str(model_dir))
        assert code == 1 and len(errors) == 1 and "Traceback" not in errors[0], errors


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("L", "L"), ("LA", "LA"), ("P", "RGB"), ("RGBA", "RGBA"), ("CMYK", "RGB"), ("I;16", "I;16")],
)
def test_modes_through_files(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], mode: str, expected: str
) -> None:
    source = tmp_path / ("in.tif" if mode == "CMYK" else "in.png")
    if mode == "I;16":
        Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(source)
    else:
        photo(source, mode=mode)
    code, errors, _ = restore(capsys, str(source), "-o", str(tmp_path / "out"), "--model", str(model_dir))
    assert code == 0, errors
    with Image.open(tmp_path / "out" / "in.png") as image:
        assert image.mode == expected and image.size == (40, 30)


def test_exif_rotated_input(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = Image.fromarray(np.zeros((20, 50, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    code, _, _ = restore(capsys, str(tmp_path / "rotated.jpg"), "-o", str(tmp_path / "out"), "--model", str(model_dir))
    with Image.open(tmp_path / "out" / "rotated.png") as out:
        assert code == 0 and out.size == (20, 50)


def test_missing_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "a.png")
    code, errors, _ = restore(
        capsys, str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "no-model")
    )
    assert code == 1 and len(errors) == 1 and "no such directory" in errors[0]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--device", "foo"], "unknown device 'foo'"),
        (["--dtype", "int8"], "dtype must be 'auto' or one of fp32, bf16, fp16"),
        (["--tile", "0"], "tile must be 'auto' or an int >= 1"),
        (["--format", "jpg", "--quality", "-5"], "--quality must be in 1..100"),
        (["--quality", "150"], "--quality must be in 1..100"),
        *([(["--device", "cuda"], "no usable CUDA GPU")] if not torch.cuda.is_available() else []),
    ],
)
def test_bad_options_fail_once_before_any_work(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "b.png")
    out = tmp_path / "out"
    code, errors, _ = restore(capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir), *option)
    assert code == 1 and len(errors) == 1 and message in errors[0], errors  # once, not once per image
    assert not out.exists()  # nothing created


@pytest.mark.slow
def test_console_script(tmp_path: Path, model_dir: Path) -> None:
    photo(tmp_path / "a.jpg")
    exe = Path(sys.executable).with_name("dcicnn")
    result = subprocess.run(
        [str(exe), "restore", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--model", str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "a.png").is_file()


def test_ensemble_option(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = photo(tmp_path / "a.png")
    for flag in ([], ["--ensemble"]):
        code, errors, _ = restore(
            capsys,
            str(source),
            "-o",
            str(tmp_path / f"out{len(flag)}"),
            "--model",
            str(model_dir),
            "--dtype",
            "fp32",
            *flag,
        )
        assert code == 0 and errors == [], errors
    with Image.open(source) as image:
        expected = DCICNN.from_pretrained(model_dir).restore(image.convert("RGB"), dtype="fp32", ensemble=True)
    with Image.open(tmp_path / "out1" / "a.png") as ensembled, Image.open(tmp_path / "out0" / "a.png") as plain:
        assert np.array_equal(np.asarray(ensembled), np.asarray(expected))
        assert not np.array_equal(np.asarray(ensembled), np.asarray(plain))


@pytest.mark.parametrize("fmt", ["png", "jpg", "same"])
def test_dpi_and_exif_go_with_the_output(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: applied on restore, so the output's EXIF must no longer say so
    exif[0x010F] = "Camera maker"
    photo(tmp_path / "in.jpg", size=(40, 30), exif=exif.tobytes(), dpi=(300, 300))
    code, errors, _ = restore(
        capsys, str(tmp_path / "in.jpg"), "-o", str(tmp_path / "out"), "--format", fmt, "--model", str(model_dir)
    )
    assert code == 0 and errors == []
    (out,) = (tmp_path / "out").iterdir()
    with Image.open(out) as image:
        assert image.size == (30, 40)  # the rotation was applied ...
        tags = image.getexif()
        assert tags.get(0x010F) == "Camera maker" and tags.get(0x0112) in (None, 1)  # ... and not applied twice
        assert tuple(round(v) for v in image.info["dpi"]) == (300, 300)


def test_every_format_pillow_reads_is_restored_and_other_files_are_named(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo(tmp_path / "in" / "a.gif")
    photo(tmp_path / "in" / "b.ppm")
    frames = [Image.fromarray(np.full((30, 40, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "in" / "moving.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    code, errors, out = restore(capsys, str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_dir))
    assert code == 0 and "restored 3 of 3" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "moving.png"]
    assert any("skipped 1 file(s) that are not images" in e and "notes.txt" in e for e in errors), errors
    assert any("first of its 2 frames" in e for e in errors), errors


def test_a_float_tiff_is_restored_as_float(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.random.default_rng(0).random((30, 40), dtype=np.float32), mode="F").save(tmp_path / "f.tif")
    code, errors, _ = restore(
        capsys, str(tmp_path / "f.tif"), "-o", str(tmp_path / "out"), "--model", str(model_dir), "--format", "tiff"
    )
    assert code == 0, errors
    with Image.open(tmp_path / "out" / "f.tif") as image:
        assert image.mode == "F" and image.size == (40, 30)
    # in a folder restored to PNG (the default), it is written as TIFF and the summary says so
    photo(tmp_path / "mixed" / "a.png")
    (tmp_path / "mixed" / "f.tif").write_bytes((tmp_path / "f.tif").read_bytes())
    code, errors, summary = restore(
        capsys, str(tmp_path / "mixed"), "-o", str(tmp_path / "png"), "--model", str(model_dir)
    )
    assert code == 0 and errors == [] and "restored 2 of 2" in summary
    assert "1 floating-point image(s) as TIFF: --format png cannot hold them" in summary
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["a.png", "f.tif"]
    with Image.open(tmp_path / "png" / "f.tif") as image:
        assert image.mode == "F"
    code, errors, summary = restore(  # resumed: the TIFF is the output that exists
        capsys, str(tmp_path / "mixed"), "-o", str(tmp_path / "png"), "--model", str(model_dir), "--skip-existing"
    )
    assert code == 0 and errors == [] and "2 skipped" in summary
    # never over its own input: f.tif restored to PNG in its own folder would be f.tif
    code, errors, _ = restore(
        capsys, str(tmp_path / "f.tif"), "-o", str(tmp_path), "--model", str(model_dir), "--overwrite"
    )
    assert code == 1 and len(errors) == 1 and "would overwrite an input" in errors[0]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_colour_stays_16_bit(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    import cv2

    pixels = np.random.default_rng(0).integers(0, 65536, (30, 40, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"deep{suffix}"), pixels)
    code, errors, _ = restore(
        capsys,
        str(tmp_path / f"deep{suffix}"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(model_dir),
        "--format",
        "same",
    )
    assert code == 0, errors
    restored = cv2.imread(str(tmp_path / "out" / f"deep{suffix}"), cv2.IMREAD_UNCHANGED)
    assert restored.dtype == np.uint16 and restored.shape == (30, 40, 3)
    assert len(np.unique(restored % 257)) > 1  # not 8-bit values scaled up
    code, errors, _ = restore(
        capsys,
        str(tmp_path / f"deep{suffix}"),
        "-o",
        str(tmp_path / "jpg"),
        "--model",
        str(model_dir),
        "--format",
        "jpg",
    )
    assert code == 0 and any("8 bits per channel" in e for e in errors), errors


@pytest.mark.parametrize("orientation", range(1, 9))
def test_wide_colour_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    from PIL import ImageOps

    from dcicnn.imageio import _orient

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif.tobytes())
    with Image.open(tmp_path / "o.png") as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened))
    np.testing.assert_array_equal(_orient(np.asarray(image), orientation), expected)


def test_output_folder_equal_to_the_input_folder_says_what_happened(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a.jpg", "b.jpg"):
        photo(tmp_path / "in" / name)
    code, errors, summary = restore(capsys, str(tmp_path / "in"), "-o", str(tmp_path / "in"), "--model", str(model_dir))
    assert code == 1 and len(errors) == 1
    assert "every image in it is under the output folder" in errors[0] and "-o in-restored" in errors[0]
    assert summary.strip() == "no image to restore; 1 failed"


def test_a_missing_input_names_no_output_folder(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, errors, summary = restore(
        capsys, str(tmp_path / "nothere.jpg"), "-o", str(tmp_path / "out"), "--model", str(model_dir)
    )
    assert code == 1 and len(errors) == 1 and "no such file" in errors[0]
    assert summary.strip() == "restored 0 of 1 image(s); 1 failed" and not (tmp_path / "out").exists()


def test_existing_outputs_are_one_line(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for index in range(6):
        photo(tmp_path / "in" / f"p{index}.jpg")
    photo(tmp_path / "in" / "new.jpg")
    out = tmp_path / "out"
    assert restore(capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir))[0] == 0
    (out / "new.png").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, errors, summary = restore(capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir))
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith("dcicnn restore: error: 6 of 7 output(s) already exist in")
    assert "--overwrite" in errors[0] and "--skip-existing" in errors[0]
    assert "restored 1 of 7 image(s)" in summary and "6 failed" in summary  # the one without an output is restored
    assert all((out / name).read_bytes() == data for name, data in before.items())


def test_an_empty_model_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo(tmp_path / "a.png")
    (tmp_path / "empty").mkdir()
    done = subprocess.run(  # a new process: huggingface_hub's own logging handlers are as a user's would be
        [sys.executable, "-m", "dcicnn_cli.main", "restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"),
         "--model", str(tmp_path / "empty")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "no config.json" in lines[0] and not (tmp_path / "out").exists()
