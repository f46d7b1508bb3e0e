"""save_pretrained / from_pretrained on local directories: identical outputs, strictness, safetensors only, cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import EvalResult, ModelCard
from safetensors.torch import save_file

from dcicnn import DCICNN, WeightsMismatchError, WeightsNotFoundError, hub
from tests.conftest import REPO_ROOT
from tests.helpers import randomise_batchnorm


def saved(tmp_path: Path, **kwargs: object) -> tuple[DCICNN, Path]:
    torch.manual_seed(1)
    model = randomise_batchnorm(DCICNN(**kwargs))  # type: ignore[arg-type]
    directory = tmp_path / "model"
    model.save_pretrained(directory)
    return model, directory


def test_save_writes_hub_layout(tmp_path: Path) -> None:
    _, directory = saved(tmp_path, width=16, depth=5, residual=False)
    assert sorted(p.name for p in directory.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((directory / "config.json").read_text())
    assert config == {
        "in_channels": 3,
        "width": 16,
        "depth": 5,
        "residual": False,
        "batch_norm": True,
        "dilation": None,
        "conditions": None,
        "downscale": 1,
        "arch": "plain",
        "scales": 3,
        "blocks": 2,
        "tuning": {
            "high_quality_taper": [85, 95],
            "undamaged_noise": 4.5,
            "texture_noise": 9.0,
            "consistency_gate": [0.15, 0.35],
            "tile": 512,
        },
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"in_channels": 1, "width": 8, "depth": 3, "batch_norm": False},
        {"width": 8, "depth": 3, "dilation": [1, 3, 2]},
    ],
)
def test_save_then_load_gives_identical_outputs(tmp_path: Path, images: torch.Tensor, kwargs: dict) -> None:
    model, directory = saved(tmp_path, **kwargs)
    loaded = DCICNN.from_pretrained(directory)
    assert not loaded.training
    assert (loaded.in_channels, loaded.width, loaded.depth, loaded.residual, loaded.batch_norm, loaded.dilation) == (
        model.in_channels,
        model.width,
        model.depth,
        model.residual,
        model.batch_norm,
        model.dilation,
    )
    x = images[:, : model.in_channels]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_fused_model_round_trips(tmp_path: Path, images: torch.Tensor) -> None:
    model, _ = saved(tmp_path, width=8, depth=4)
    fused = model.fuse_batchnorm()
    fused.save_pretrained(tmp_path / "fused")
    loaded = DCICNN.from_pretrained(tmp_path / "fused")
    with torch.no_grad():
        assert torch.equal(loaded(images), fused(images))


def test_config_that_does_not_match_weights_is_rejected(tmp_path: Path) -> None:
    _, directory = saved(tmp_path, width=16, depth=4)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "width": 32}))
    with pytest.raises(WeightsMismatchError, match="config.json does not match the stored weights.*size mismatch"):
        DCICNN.from_pretrained(directory)


def test_strict_by_default_rejects_missing_and_unexpected_tensors(tmp_path: Path) -> None:
    model, directory = saved(tmp_path, width=8, depth=4)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    dropped = dict(state)
    dropped.pop("body.0.weight")
    save_file(dropped, str(directory / "model.safetensors"))
    with pytest.raises(WeightsMismatchError, match="Missing key"):
        DCICNN.from_pretrained(directory)
    save_file({**state, "extra.weight": torch.zeros(1)}, str(directory / "model.safetensors"))
    with pytest.raises(WeightsMismatchError, match="Unexpected key"):
        DCICNN.from_pretrained(directory)
    loose = DCICNN.from_pretrained(directory, strict=False)  # an explicit opt-out still works
    assert torch.equal(loose.body[0].weight, model.body[0].weight)


def test_pickle_weights_need_explicit_opt_in(tmp_path: Path, images: torch.Tensor) -> None:
    model, directory = saved(tmp_path, width=8, depth=4)
    (directory / "model.safetensors").unlink()
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    with pytest.raises(WeightsNotFoundError, match="allow_pickle=True"):
        DCICNN.from_pretrained(directory)
    loaded = DCICNN.from_pretrained(directory, allow_pickle=True)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_corrupt_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    _, directory = saved(tmp_path, width=8, depth=4)
    (directory / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsMismatchError, match="not a readable safetensors file"):
        DCICNN.from_pretrained(directory)


@pytest.mark.parametrize("case", ["missing-dir", "file", "no-config", "no-weights", "bad-id"])
def test_missing_things_are_clear_errors(tmp_path: Path, case: str) -> None:
    _, directory = saved(tmp_path, width=8, depth=3)
    source: Path | str = directory
    message = {
        "missing-dir": "no such directory",
        "file": "is a file",
        "no-config": "no config.json",
        "no-weights": "no model.safetensors",
        "bad-id": "not a valid Hub repo id",
    }[case]
    if case == "missing-dir":
        source = tmp_path / "does" / "not-exist"
    elif case == "file":
        source = directory / "config.json"
    elif case == "no-config":
        (directory / "config.json").unlink()
    elif case == "no-weights":
        (directory / "model.safetensors").unlink()
    else:
        source = "not a repo id!"
    with pytest.raises(WeightsNotFoundError, match=message):
        DCICNN.from_pretrained(source)


def test_bundled_default_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.has_bundled_weights()
    model = DCICNN.from_pretrained()
    assert model.in_channels == 3 and model.residual and not model.training
    card = ModelCard.load(hub.bundled_model_dir() / "README.md")
    assert card.data.to_dict()["model-index"][0]["results"], "the bundled card carries its evaluation"
    with pytest.raises(WeightsNotFoundError, match="ships no trained 'nonexistent' weights"):
        hub.bundled_model_dir("nonexistent")


def test_model_card_metadata_and_sections(tmp_path: Path) -> None:
    model = DCICNN(width=16, depth=6)
    results = [
        EvalResult(
            task_type="image-to-image",
            dataset_type="kodak24",
            dataset_name="Kodak24",
            dataset_config="jpeg-q10",
            metric_type="psnr",
            metric_name="PSNR RGB (dB)",
            metric_value=29.5,
        ),
        EvalResult(
            task_type="image-to-image",
            dataset_type="kodak24",
            dataset_name="Kodak24",
            dataset_config="jpeg-q10",
            metric_type="ssim",
            metric_name="SSIM",
            metric_value=0.8123,
        ),
    ]
    model.save_pretrained(
        tmp_path / "m",
        model_card_kwargs={
            "model_name": "dcicnn-test",
            "repo_id": "org/dcicnn-test",
            "eval_results": results,
            "training": "Trained on nothing, for a test.",
            "reproduce": "dcicnn fit --config configs/smoke.yaml",
        },
    )
    card = ModelCard.load(tmp_path / "m" / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "dcicnn" and data["pipeline_tag"] == "image-to-image"
    assert data["license"] == "mit" and "image-restoration" in data["tags"]
    index = data["model-index"][0]
    assert index["name"] == "dcicnn-test"
    metrics = index["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == {"psnr": 29.5, "ssim": 0.8123}
    text = card.text
    assert 'DCICNN.from_pretrained("org/dcicnn-test")' in text
    assert "| Kodak24 | jpeg-q10 | 29.5000 | 0.8123 |" in text
    assert "| `width` | `16` |" in text
    assert "13 x 13 pixels" in text and "Trained on nothing, for a test." in text
    assert "dcicnn fit --config configs/smoke.yaml" in text


def test_model_card_without_results_says_so(tmp_path: Path) -> None:
    DCICNN(width=8, depth=3).save_pretrained(tmp_path / "m")
    card = ModelCard.load(tmp_path / "m" / "README.md")
    assert "model-index" not in card.data.to_dict()
    assert "No evaluation results were supplied" in card.text
    assert "Not recorded for these weights." in card.text


def test_save_replaces_a_stale_card(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "README.md").write_text("stale card of other weights")
    DCICNN(width=8, depth=3).save_pretrained(tmp_path / "m")
    assert "stale" not in (tmp_path / "m" / "README.md").read_text()


GOLDEN = REPO_ROOT / "tests" / "golden" / "default-sample-jpeg-q20.png"


def test_bundled_weights_reproduce_their_golden_output() -> None:
    """A regression test of the shipped weights and the inference path: the bundled default restores a JPEG q20
    crop of the sample photo to the stored result, within one level per pixel (fp32; BLAS kernels differ slightly
    between CPUs). After deliberately changing the weights, regenerate: DCICNN_UPDATE_GOLDEN=1 pytest -k golden."""
    import os

    import numpy as np
    from PIL import Image

    from dcicnn.train.degradations import jpeg

    with Image.open(Path(hub.__file__).parents[1] / "assets" / "sample.png") as sample:
        clean = np.asarray(sample.convert("RGB"))[:128, :160]
    degraded = jpeg(clean, 20)
    restored = np.asarray(DCICNN.from_pretrained().restore(Image.fromarray(degraded), dtype="fp32"))
    if os.environ.get("DCICNN_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        Image.fromarray(restored).save(GOLDEN)
    with Image.open(GOLDEN) as golden:
        expected = np.asarray(golden)
    difference = np.abs(restored.astype(int) - expected.astype(int))
    assert restored.shape == expected.shape and difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert not np.array_equal(restored, degraded)  # the model does something


def test_a_mistyped_local_path_is_not_sent_to_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "hub").mkdir(parents=True)
    with pytest.raises(WeightsNotFoundError, match=r"runs/hubb: no such directory \(./runs exists here"):
        DCICNN.from_pretrained("runs/hubb")


def test_bundled_weights_load_by_name_and_a_directory_wins_over_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(hub.PRETRAINED) == {"default", "v3"} and hub.ALIASES == {"v4": "default"}
    for name, folder in [("v3", "v3"), ("v4", "default"), ("default", "default")]:
        model = DCICNN.from_pretrained(name)
        bundled = DCICNN.from_pretrained(REPO_ROOT / "dcicnn" / "pretrained" / folder)
        assert model.config == bundled.config
        assert all(
            torch.equal(a, b) for a, b in zip(model.state_dict().values(), bundled.state_dict().values(), strict=True)
        )
    assert DCICNN.from_pretrained("v3").config["arch"] == "plain"
    assert DCICNN.from_pretrained().config["arch"] == "unet"
    # each carries the taper it was measured with (docs/restoring.md)
    assert DCICNN.from_pretrained("v3").tuning.high_quality_taper == (85, 95)
    assert DCICNN.from_pretrained().tuning.high_quality_taper == (85, 98)
    monkeypatch.chdir(tmp_path)
    DCICNN(width=8, depth=3).save_pretrained(tmp_path / "v3")
    assert DCICNN.from_pretrained("v3").config["width"] == 8  # ./v3 exists: the user's folder, not ours


def test_an_unknown_bare_name_lists_the_bundled_names_without_asking_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match=r"v5: no such directory, and not the name .*\(default, v3, v4\)"):
        DCICNN.from_pretrained("v5")
