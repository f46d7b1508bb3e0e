"""Shared fixtures. No test may reach the internet: the Hub is a loopback server, W&B is disabled."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ["HF_DATASETS_OFFLINE"] = "1"
# Anything that forgets the fake Hub fails fast instead of trying huggingface.co.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"

from huggingface_hub import constants  # noqa: E402 - must follow the environment set-up above

from tests.hub_server import FakeHub  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A Hub-compatible server on 127.0.0.1 with HF_ENDPOINT pointing at it and an empty, private cache."""
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def images() -> torch.Tensor:
    """A small batch of RGB images on the 0..1 scale with an odd size."""
    return torch.rand(2, 3, 37, 29, generator=torch.Generator().manual_seed(0))
