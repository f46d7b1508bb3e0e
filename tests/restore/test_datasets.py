"""`dcicnn restore --hf`: every image of a Hugging Face dataset (here a local imagefolder with a caption column)
into image files or a parquet dataset that keeps the other columns; resumable, one bad row never stops the rest."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from dcicnn import DCICNN
from dcicnn_cli.main import main
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model")
    DCICNN(width=8, depth=3, conditions=["jpeg", "noise"], batch_norm=False).save_pretrained(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An imagefolder dataset: a PNG, two JPEGs of different qualities, and a caption for each."""
    sample = Image.open(REPO_ROOT / "dcicnn" / "assets" / "sample.png").convert("RGB")
    root = tmp_path / "photos"
    (root / "train").mkdir(parents=True)
    sample.crop((0, 0, 96, 80)).save(root / "train" / "a.png")
    sample.crop((40, 40, 160, 120)).save(root / "train" / "b.jpg", quality=30)
    sample.crop((10, 60, 90, 140)).save(root / "train" / "c.jpg", quality=60)
    rows = [("a.png", "first"), ("b.jpg", "second"), ("c.jpg", "third")]
    lines = [f'{{"file_name": "{name}", "caption": "{caption}"}}' for name, caption in rows]
    (root / "train" / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["restore", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected(model: DCICNN, path: Path) -> np.ndarray:
    """What `restore()` gives for the file itself (a JPEG opened from its file: the file's quality)."""
    with Image.open(path) as image:
        return np.asarray(model.restore(image, dtype="fp32"))


def test_a_dataset_into_image_files(
    folder: Path, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = ["--hf", "imagefolder", "--data-dir", str(folder), "-o", str(out), "--model", str(model_dir)]
    code, stdout, _ = run(capsys, *base, "--dtype", "fp32")
    assert code == 0 and "restored 3 of 3 image(s) of imagefolder (train)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["0000000-a.png", "0000001-b.png", "0000002-c.png"]
    model = DCICNN.from_pretrained(model_dir)
    for name, source in [("0000000-a.png", "a.png"), ("0000001-b.png", "b.jpg"), ("0000002-c.png", "c.jpg")]:
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), expected(model, folder / "train" / source))
    # a killed run resumes: what exists stays, the rest is restored
    (out / "0000001-b.png").unlink()
    before = (out / "0000000-a.png").stat().st_mtime_ns
    code, stdout, _ = run(capsys, *base, "--dtype", "fp32", "--skip-existing")
    assert code == 0 and "restored 1 of 3" in stdout and "2 skipped" in stdout, stdout
    assert (out / "0000001-b.png").is_file() and (out / "0000000-a.png").stat().st_mtime_ns == before
    code, _, stderr = run(capsys, *base)  # never mixed silently into a finished folder
    assert code == 1 and "is not empty (pass --skip-existing" in stderr


def test_a_dataset_into_parquet_keeps_its_columns(
    folder: Path, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["--hf", "imagefolder", "--data-dir", str(folder), "-o", str(out), "--model", str(model_dir)]
    code, stdout, _ = run(capsys, *args, "--to-parquet", "--shard-rows", "2", "--dtype", "fp32")
    assert code == 0 and "restored 3 of 3" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["data-0000000.parquet", "data-0000002.parquet"]  # no partials
    restored = datasets.load_dataset("parquet", data_dir=str(out), split="train")
    assert restored["caption"] == ["first", "second", "third"]
    model = DCICNN.from_pretrained(model_dir)
    for row, source in zip(restored, ["a.png", "b.jpg", "c.jpg"], strict=True):
        np.testing.assert_array_equal(np.asarray(row["image"]), expected(model, folder / "train" / source))
    (out / "data-0000002.parquet").unlink()
    code, stdout, _ = run(capsys, *args, "--to-parquet", "--shard-rows", "2", "--skip-existing")
    assert code == 0 and "restored 1 of 3" in stdout and "2 skipped" in stdout


def test_a_bad_row_is_reported_and_the_others_restored(
    folder: Path, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "train" / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    code, stdout, stderr = run(
        capsys, "--hf", "imagefolder", "--data-dir", str(folder), "-o", str(out), "--model", str(model_dir)
    )
    assert code == 1 and "restored 2 of 3" in stdout and "1 failed" in stdout
    assert "imagefolder row 1:" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["0000000-a.png", "0000002-c.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["photo.png"], "give INPUTs or --hf, not both"),
        (["--format", "same"], "--format same needs input files"),
        (["--shard-rows", "0", "--to-parquet"], "--shard-rows must be >= 1"),
        (["--image-column", "picture"], "no column 'picture'"),
        (["--split", "validation"], "cannot load dataset 'imagefolder'"),
    ],
)
def test_dataset_mistakes_are_one_line(
    folder: Path, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["--hf", "imagefolder", "--data-dir", str(folder), "-o", str(tmp_path / "out"), "--model", str(model_dir)]
    code, _, stderr = run(capsys, *args, *extra)
    assert code == 1 and message in stderr and "Traceback" not in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_inputs_or_a_dataset_are_needed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run(capsys, "-o", str(tmp_path / "out"))
    assert code == 1 and "give at least one INPUT" in stderr
    code, _, stderr = run(capsys, str(tmp_path), "-o", str(tmp_path / "out"), "--to-parquet")
    assert code == 1 and "--to-parquet writes a dataset: it needs --hf" in stderr


def test_streaming_gives_the_same_outputs(
    folder: Path, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--streaming` reads rows as they arrive (a `datasets.IterableDataset`): the same files, the same parquet."""
    base = ["--hf", "imagefolder", "--data-dir", str(folder), "--model", str(model_dir), "--dtype", "fp32"]
    for label, extra in (("files", []), ("parquet", ["--to-parquet", "--shard-rows", "2"])):
        downloaded, streamed = tmp_path / f"downloaded-{label}", tmp_path / f"streamed-{label}"
        assert run(capsys, *base, *extra, "-o", str(downloaded))[0] == 0
        code, stdout, _ = run(capsys, *base, *extra, "-o", str(streamed), "--streaming")
        assert code == 0 and "restored 3 of 3" in stdout, stdout
        names = sorted(p.name for p in downloaded.iterdir())
        assert names == sorted(p.name for p in streamed.iterdir())
        if not extra:
            for name in names:
                assert (downloaded / name).read_bytes() == (streamed / name).read_bytes()
        else:
            a = datasets.load_dataset("parquet", data_dir=str(downloaded), split="train")
            b = datasets.load_dataset("parquet", data_dir=str(streamed), split="train")
            assert a["caption"] == b["caption"] == ["first", "second", "third"]
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(np.asarray(x["image"]), np.asarray(y["image"]))
    # a killed streaming run resumes: the remaining shard is restored, the finished one kept
    streamed = tmp_path / "streamed-parquet"
    (streamed / "data-0000002.parquet").unlink()
    kept = (streamed / "data-0000000.parquet").stat().st_mtime_ns
    code, stdout, _ = run(
        capsys, *base, "--to-parquet", "--shard-rows", "2", "-o", str(streamed), "--streaming", "--skip-existing"
    )
    assert code == 0 and "restored 1 of 3" in stdout and "2 skipped" in stdout, stdout
    assert (streamed / "data-0000000.parquet").stat().st_mtime_ns == kept
    code, _, stderr = run(capsys, *base, "-o", str(tmp_path / "x"), "--streaming", "--devices", "2")
    assert code == 1 and "--devices needs a downloaded dataset" in stderr
