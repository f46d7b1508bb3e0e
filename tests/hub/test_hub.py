"""Hub round trips over real HTTP: the real huggingface_hub client against a loopback Hub-compatible server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants, hf_hub_download

import dcicnn
from dcicnn import DCICNN, WeightsMismatchError, WeightsNotFoundError
from tests.helpers import randomise_batchnorm
from tests.hub_server import FakeHub


def make_model(seed: int, **kwargs: object) -> DCICNN:
    torch.manual_seed(seed)
    return randomise_batchnorm(DCICNN(width=16, depth=5, **kwargs), seed)  # type: ignore[arg-type]


def outputs(model: DCICNN, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images)


def test_push_then_load_into_an_empty_cache(fake_hub: FakeHub, tmp_path: Path, images: torch.Tensor) -> None:
    model = make_model(0)
    model.push_to_hub("acme/dcicnn-test", model_card_kwargs={"repo_id": "acme/dcicnn-test"})
    assert set(fake_hub.repos["acme/dcicnn-test"].commits[fake_hub.repos["acme/dcicnn-test"].refs["main"]]) >= {
        "config.json",
        "model.safetensors",
        "README.md",
    }

    cache = tmp_path / "empty-cache"
    loaded = DCICNN.from_pretrained("acme/dcicnn-test", cache_dir=cache)
    assert torch.equal(outputs(loaded, images), outputs(model, images))
    assert any(cache.rglob("model.safetensors"))
    card = ModelCard.load("acme/dcicnn-test")
    assert card.data.library_name == "dcicnn" and 'from_pretrained("acme/dcicnn-test")' in card.text
    assert ("GET", "/acme/dcicnn-test/resolve/main/model.safetensors") in fake_hub.requests


def test_second_revision_and_old_revision(fake_hub: FakeHub, tmp_path: Path, images: torch.Tensor) -> None:
    first, second = make_model(0), make_model(1)
    first.push_to_hub("acme/versions")
    sha_first = HfApi().model_info("acme/versions").sha
    second.push_to_hub("acme/versions")
    sha_second = HfApi().model_info("acme/versions").sha
    assert sha_first != sha_second

    cache = tmp_path / "cache"
    latest = DCICNN.from_pretrained("acme/versions", cache_dir=cache)
    old = DCICNN.from_pretrained("acme/versions", revision=sha_first, cache_dir=cache)
    assert torch.equal(outputs(latest, images), outputs(second, images))
    assert torch.equal(outputs(old, images), outputs(first, images))
    assert not torch.equal(outputs(old, images), outputs(latest, images))


def test_push_model_directory_to_a_branch(fake_hub: FakeHub, tmp_path: Path, images: torch.Tensor) -> None:
    main_model, branch_model = make_model(0), make_model(2, residual=False)
    main_model.push_to_hub("acme/branches")
    branch_model.save_pretrained(tmp_path / "saved", model_card_kwargs={"training": "a branch test"})
    DCICNN.push_directory(tmp_path / "saved", "acme/branches", branch="experiment")
    on_branch = DCICNN.from_pretrained("acme/branches", revision="experiment", cache_dir=tmp_path / "c")
    on_main = DCICNN.from_pretrained("acme/branches", cache_dir=tmp_path / "c")
    assert on_branch.residual is False and on_main.residual is True
    assert torch.equal(outputs(on_branch, images), outputs(branch_model, images))
    assert ("POST", "/api/validate-yaml") in fake_hub.requests  # the card was validated before upload
    card = hf_hub_download("acme/branches", "README.md", revision="experiment", cache_dir=tmp_path / "c")
    assert "a branch test" in Path(card).read_text()  # the directory's own card, pushed as is


def test_missing_repo_revision_and_file(fake_hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="no such repository on the Hub"):
        DCICNN.from_pretrained("acme/does-not-exist", cache_dir=tmp_path)
    make_model(0).push_to_hub("acme/exists")
    with pytest.raises(WeightsNotFoundError, match="no revision 'nope'"):
        DCICNN.from_pretrained("acme/exists", revision="nope", cache_dir=tmp_path)
    api = HfApi()
    api.create_repo("acme/config-only")
    api.upload_file(
        path_or_fileobj=b'{"width": 16, "depth": 5}', path_in_repo="config.json", repo_id="acme/config-only"
    )
    with pytest.raises(WeightsNotFoundError, match="no model.safetensors"):
        DCICNN.from_pretrained("acme/config-only", cache_dir=tmp_path)
    api.create_repo("acme/weights-only")
    with pytest.raises(WeightsNotFoundError, match="no config.json|missing file"):
        DCICNN.from_pretrained("acme/weights-only", cache_dir=tmp_path)


def test_local_files_only_from_cache_with_the_server_stopped(
    fake_hub: FakeHub, tmp_path: Path, images: torch.Tensor
) -> None:
    model = make_model(3)
    model.push_to_hub("acme/offline")
    cache = tmp_path / "cache"
    DCICNN.from_pretrained("acme/offline", cache_dir=cache)
    fake_hub.stop()
    loaded = DCICNN.from_pretrained("acme/offline", cache_dir=cache, local_files_only=True)
    assert torch.equal(outputs(loaded, images), outputs(model, images))
    with pytest.raises(WeightsNotFoundError, match="not in the local cache"):
        DCICNN.from_pretrained("acme/never-downloaded", cache_dir=cache, local_files_only=True)


def test_download_model_into_a_directory(fake_hub: FakeHub, tmp_path: Path, images: torch.Tensor) -> None:
    model = make_model(4)
    model.push_to_hub("acme/dl")
    path = DCICNN.download_directory("acme/dl", tmp_path / "out")
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert torch.equal(outputs(DCICNN.from_pretrained(path), images), outputs(model, images))
    # downloads say which library made them (the Hub's statistics), as timm's do
    downloads = [agent for (method, _), agent in zip(fake_hub.requests, fake_hub.user_agents, strict=True)]
    assert any(f"dcicnn/{dcicnn.__version__}" in agent for agent in downloads), downloads
    fake_hub.user_agents.clear()
    fake_hub.requests.clear()
    DCICNN.from_pretrained("acme/dl", cache_dir=tmp_path / "fresh-cache")
    assert any(f"dcicnn/{dcicnn.__version__}" in agent for agent in fake_hub.user_agents), fake_hub.user_agents


def test_download_of_weights_that_do_not_load_leaves_nothing(fake_hub: FakeHub, tmp_path: Path) -> None:
    make_model(6).save_pretrained(tmp_path / "broken")
    config = tmp_path / "broken" / "config.json"
    config.write_text(config.read_text().replace('"width": 16', '"width": 8'))  # weights of another architecture
    HfApi().create_repo("acme/broken")
    HfApi().upload_folder(repo_id="acme/broken", folder_path=tmp_path / "broken")
    with pytest.raises(WeightsMismatchError):
        DCICNN.download_directory("acme/broken", tmp_path / "out" / "broken")
    assert list((tmp_path / "out").iterdir()) == []  # no broken files, no .cache/, no half folder


@pytest.mark.slow
def test_cli_push_and_download(fake_hub: FakeHub, tmp_path: Path, images: torch.Tensor) -> None:
    model = make_model(5)
    model.save_pretrained(tmp_path / "saved")
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url}
    exe = Path(sys.executable).with_name("dcicnn")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    pushed = run("push", str(tmp_path / "saved"), "acme/cli")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed" in pushed.stdout and "acme/cli" in pushed.stdout
    got = run("download", "acme/cli")
    assert got.returncode == 0, got.stderr
    assert torch.equal(outputs(DCICNN.from_pretrained(tmp_path / "cli"), images), outputs(model, images))

    missing = run("download", "acme/missing", "-o", str(tmp_path / "missing"))
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "no such repository" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_dir = run("push", str(tmp_path / "nowhere"), "acme/cli")
    assert bad_dir.returncode == 1 and "no such directory" in bad_dir.stderr and "Traceback" not in bad_dir.stderr


@pytest.fixture
def dropping_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A 'Hub' on 127.0.0.1 that accepts every connection and closes it without an answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    try:
        yield url
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_dropped_connection_is_one_clear_error(
    dropping_hub: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(WeightsNotFoundError, match="the Hub could not be reached or broke off"):
        DCICNN.download_directory("acme/x", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(WeightsNotFoundError, match="the Hub could not be reached or broke off"):
        DCICNN.from_pretrained("acme/x")
    make_model(7).save_pretrained(tmp_path / "saved")
    from dcicnn_cli.main import main

    assert main(["push", str(tmp_path / "saved"), "acme/y"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the Hub could not be reached or broke off" in err[0], err
