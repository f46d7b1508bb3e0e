"""The ``dcicnn`` console script: the demo, and one-line errors with a non-zero exit instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcicnn import DCICNN
from tests.conftest import REPO_ROOT

EXE = Path(sys.executable).with_name("dcicnn")


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_demo_writes_a_comparison(tmp_path: Path) -> None:
    result = run("demo", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["clean.png", "comparison.png", "degraded.png", "restored.png"]
    clean, comparison = read(out / "clean.png"), read(out / "comparison.png")
    assert comparison.shape[1] > 3 * clean.shape[1] and comparison.shape[0] > clean.shape[0]
    assert "model: bundled default weights" in result.stdout
    # the bundled weights must improve the JPEG q20 sample: "... input: 30.04 dB  restored: 30.50 dB (+0.46 dB)"
    gain = float(result.stdout.split("restored:")[1].split("(")[1].split("dB")[0])
    assert gain > 0, result.stdout


@pytest.mark.slow
def test_demo_with_a_local_model(tmp_path: Path) -> None:
    DCICNN(width=8, depth=3).save_pretrained(tmp_path / "m")
    result = run("demo", "-o", "out", "--model", str(tmp_path / "m"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"model: {tmp_path / 'm'}" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--model", "/no/such/model"], "no such directory"),
        (["demo", "--quality", "0"], "--quality must be in 1..95"),
        (["download", "not a repo id!"], "not a valid Hub repo id"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "demo_output").exists()  # nothing half-written


def test_help_lists_the_commands() -> None:
    from dcicnn_cli.main import build_parser

    text = build_parser().format_help()
    for command in ("demo", "push", "download", "models"):
        assert command in text


def test_models_lists_the_bundled_names_and_their_folders(capsys: pytest.CaptureFixture[str]) -> None:
    from dcicnn_cli.main import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("default (also v4): v4: 3-scale U-Net") and "\nv3: the paper's plain" in out
    for folder in ("default", "v3"):
        assert str(REPO_ROOT / "dcicnn" / "pretrained" / folder) in out


HEAVY = ("lightning", "albumentations", "torchmetrics")


@pytest.mark.parametrize(
    ("code", "forbidden"),
    [
        ("import dcicnn", (*HEAVY, "torch")),
        ("from dcicnn import DCICNN; DCICNN.from_pretrained()", HEAVY),
        ("from dcicnn import __version__, WeightsNotFoundError, TrainingDivergedError", (*HEAVY, "torch")),
        (
            "import sys; sys.argv = ['dcicnn', '--help']\ntry:\n from dcicnn_cli.main import main; main()\n"
            "except SystemExit: pass",
            (*HEAVY, "torch"),
        ),
        (
            "from dcicnn_cli.main import main\ntry: main(['restore', '--help'])\nexcept SystemExit: pass",
            (*HEAVY, "torch"),
        ),
    ],
)
def test_light_imports(code: str, forbidden: tuple[str, ...]) -> None:
    """Start-up: the library and the non-training commands never load the training stack (torch only to restore)."""
    check = f"{code}\nimport sys\nprint(sorted(m for m in {forbidden!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_public_names_resolve_lazily() -> None:
    import dcicnn

    assert set(dcicnn.__all__) == {*dcicnn._EXPORTS, "__version__"}
    for name in dcicnn.__all__:
        assert getattr(dcicnn, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dcicnn.nope  # noqa: B018


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dcicnn.errors import DcicnnError, InvalidArgumentError
    from dcicnn_cli import card
    from dcicnn_cli.main import main

    def user_error(args: object) -> int:
        raise InvalidArgumentError("--name must not be empty")

    monkeypatch.setattr(card, "run", user_error)
    assert main(["card", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        "dcicnn card: error: --name must not be empty (DCICNN_TRACEBACK=1 shows the traceback)"
    )
    assert issubclass(InvalidArgumentError, DcicnnError) and issubclass(InvalidArgumentError, ValueError)

    def bug(args: object) -> int:
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(card, "run", bug)
    with pytest.raises(ValueError, match="internal invariant"):
        main(["card", str(tmp_path)])
