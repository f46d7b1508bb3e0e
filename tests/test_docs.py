"""Every code block of the README, the documentation pages (docs/) and the shipped model cards runs: Python blocks
as written (in order, one namespace per file, beside a ``photo.jpg``), and every ``dcicnn`` command line of a bash
block parses (training commands also compose their configs, with ``--print_config``).

What a reader fills in themselves is resolved here, and only this: ``photo.jpg`` / ``q92.jpg`` (the bundled sample,
saved as JPEG), ``path/to/model`` (the directory of the card it appears in), ``device="cuda"`` (the CPU where there
is no GPU), ``compile=True`` (off: compiling is ``tests/restore/test_inference.py``'s), ``push_to_hub`` (a local
Hub server).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dcicnn import hub
from dcicnn_cli.main import build_parser
from tests.conftest import REPO_ROOT
from tests.hub_server import FakeHub

#: Documents whose code a reader copies: the README and every model card shipped beside weights.
DOCUMENTS = sorted(
    [REPO_ROOT / "README.md", *REPO_ROOT.glob("dcicnn/pretrained/*/README.md"), *REPO_ROOT.glob("docs/**/*.md")]
)
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def blocks(document: Path, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(document.read_text(encoding="utf-8")) if lang == language]


def command_lines(document: Path, files: Path | None = None) -> list[list[str]]:
    """The ``dcicnn`` invocations of a document's bash blocks (continuations joined, comments dropped, launchers such
    as ``srun`` and ``torchrun ... -m dcicnn_cli.main`` stripped), as argument lists; lines using shell variables are
    left out (they are not commands a test can complete). With ``files``, a ``git show REV:PATH > FILE`` line (a
    card's recipe of an earlier commit) is run into ``files``, and later commands read that copy."""
    commands = []
    written: dict[str, str] = {}
    for body in blocks(document, "bash"):
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            shown = re.match(r"\s*git show (\S+) > (\S+)", line)
            if shown and files is not None:
                copy = files / Path(shown[2]).name
                copy.write_bytes(
                    subprocess.run(["git", "show", shown[1]], cwd=REPO_ROOT, capture_output=True, check=True).stdout
                )
                written[shown[2]] = str(copy)
                continue
            if "$" in line or "dcicnn" not in line:  # (a multi-line shell string is no command either)
                continue
            words = [written.get(word, word) for word in shlex.split(line, comments=True)]
            if "dcicnn" in words:
                commands.append(words[words.index("dcicnn") + 1 :])
            elif "dcicnn_cli.main" in words:
                commands.append(words[words.index("dcicnn_cli.main") + 1 :])
    return commands


def resolve(code: str, document: Path) -> str:
    """The block with the reader's placeholders filled in (see the module docstring)."""
    card_dir = document.parent if (document.parent / "config.json").is_file() else hub.bundled_model_dir()
    code = code.replace('"path/to/model"', repr(str(card_dir))).replace("compile=True", "compile=False")
    if not torch.cuda.is_available():
        code = code.replace('device="cuda"', 'device="cpu"')
    return code


def _name(document: Path) -> str:
    return str(document.relative_to(REPO_ROOT))


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if blocks(d, "python")], ids=_name)
def test_python_blocks_run_as_written(
    document: Path, fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = REPO_ROOT / "dcicnn" / "assets"
    photo = next(p for p in sorted(sample.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    with Image.open(photo) as image:
        rgb = image.convert("RGB").crop((0, 0, 96, 80))  # small: the blocks run every restore option
    rgb.save(tmp_path / "photo.jpg", quality=40)
    rgb.save(tmp_path / "q92.jpg", quality=92)
    monkeypatch.chdir(tmp_path)
    if (REPO_ROOT.parent / "shared").is_dir():  # paths such as ../shared/data/... resolve as from the repository
        (tmp_path.parent / "shared").exists() or os.symlink(REPO_ROOT.parent / "shared", tmp_path.parent / "shared")
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for index, code in enumerate(blocks(document, "python")):
        try:
            exec(compile(resolve(code, document), f"{_name(document)} block {index + 1}", "exec"), namespace)  # noqa: S102
        except Exception as err:  # noqa: BLE001 - any failure of a documented block is the finding
            pytest.fail(f"{_name(document)}, Python block {index + 1} fails as written: {type(err).__name__}: {err}")
    if "push_to_hub(" in "".join(blocks(document, "python")):
        assert fake_hub.repos, "the README's push_to_hub went nowhere"


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if command_lines(d)], ids=_name)
def test_command_lines_parse(document: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(REPO_ROOT)  # configs/... paths are the repository's
    monkeypatch.setattr(sys, "argv", ["dcicnn"])  # LightningCLI reads it beside args=
    parser = build_parser()
    for argv in command_lines(document, tmp_path):
        if argv and argv[0] in LIGHTNING_COMMANDS:
            _compose(argv)
            continue
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                parser.parse_args(argv)
            except SystemExit as exit_:
                if exit_.code:
                    pytest.fail(f"{_name(document)}: `dcicnn {shlex.join(argv)}` does not parse: {err.getvalue()}")


def _compose(argv: list[str]) -> None:
    """LightningCLI parses the command and composes its configs; ``--print_config`` stops it before any run."""
    from dcicnn_cli import train

    args = [*argv, "--print_config"] if "--print_config" not in argv else argv
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            train.main(args)
        except SystemExit as exit_:
            if exit_.code:
                pytest.fail(f"`dcicnn {shlex.join(argv)}` does not compose: {err.getvalue()[-1500:]}")
            return
    pytest.fail(f"`dcicnn {shlex.join(argv)}` did not stop at --print_config")


def test_readme_links_resolve() -> None:
    """The README is not part of the site (``mkdocs build --strict`` checks the pages' links): its own relative
    links must name files that exist."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    targets = [m[0] for m in re.findall(r"\]\(([^)#\s]+)(#[^)]*)?\)", text) if not m[0].startswith("http")]
    assert targets and all((REPO_ROOT / target).exists() for target in targets), [
        t for t in targets if not (REPO_ROOT / t).exists()
    ]
    headings = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)
    }
    anchors = re.findall(r"\]\(#([^)]+)\)", text)
    assert set(anchors) <= headings, sorted(set(anchors) - headings)
