"""Per-weights settings: what ``restore()`` was tuned with travels with the weights (``config.json`` "tuning")."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcicnn import DCICNN, RestoreOptions
from dcicnn.spec import Tuning


def conditioned(**tuning: object) -> DCICNN:
    torch.manual_seed(0)
    model = DCICNN(width=8, depth=3, batch_norm=False, conditions=["jpeg", "noise"], tuning=tuning or None)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    return model.eval()


def jpeg(quality: int) -> Image.Image:
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(40, 200, size=(12, 12, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(smooth).save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_tuning_is_saved_and_read_back(tmp_path: Path) -> None:
    model = conditioned(high_quality_taper=[50, 60], undamaged_noise=2.0)
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["tuning"]
    assert saved == {
        "high_quality_taper": [50, 60],
        "undamaged_noise": 2.0,
        "texture_noise": 9.0,
        "consistency_gate": [0.15, 0.35],
        "tile": 512,
    }
    loaded = DCICNN.from_pretrained(tmp_path / "m")
    assert loaded.spec.tuning == Tuning(high_quality_taper=(50, 60), undamaged_noise=2.0)
    assert DCICNN.from_pretrained("v3").spec.tuning == Tuning()  # v3's values, written in its config
    assert DCICNN.from_pretrained().spec.tuning == Tuning(high_quality_taper=(85, 98))  # v4: its own taper


def test_restore_follows_the_weights_taper_unless_told_otherwise() -> None:
    image = jpeg(70)
    decoded = np.asarray(image.convert("RGB"))
    v3_like = conditioned()
    tuned = conditioned(high_quality_taper=[50, 60])  # the same weights, tuned to leave q60 and above alone
    assert not np.array_equal(np.asarray(v3_like.restore(image, dtype="fp32")), decoded)
    assert np.array_equal(np.asarray(tuned.restore(image, dtype="fp32")), decoded)
    override = tuned.restore(image, dtype="fp32", high_quality_taper=None)  # the caller's word wins
    assert np.array_equal(np.asarray(override), np.asarray(v3_like.restore(image, dtype="fp32")))
    assert RestoreOptions().high_quality_taper == "auto"


def test_undamaged_threshold_is_the_weights() -> None:
    rng = np.random.default_rng(1)
    noisy = np.clip(128 + rng.normal(0, 3.0, size=(64, 64, 3)), 0, 255).astype(np.uint8)  # reads about 3
    assert np.array_equal(conditioned().restore(noisy, dtype="fp32"), noisy)  # below v3's 4.5: left alone
    strict = conditioned(undamaged_noise=0.5)  # the same weights, tuned to call that noise
    assert not np.array_equal(strict.restore(noisy, dtype="fp32"), noisy)


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        ({"taper": [80, 90]}, "unknown tuning setting"),
        ({"high_quality_taper": [90, 80]}, "high_quality_taper"),
        ({"undamaged_noise": -1}, "undamaged_noise"),
        ({"texture_noise": "9"}, "texture_noise"),
        ({"tile": 8}, "tuning tile must be an int >= 16"),
    ],
)
def test_bad_tuning_is_one_clear_error(tuning: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DCICNN(conditions=["jpeg", "noise"], tuning=tuning)


def test_the_tile_is_the_weights_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcicnn.restore import inference

    sides: list[int] = []
    plan = inference.plan_tiles
    monkeypatch.setattr(inference, "plan_tiles", lambda h, w, tile, *a: sides.append(tile) or plan(h, w, tile, *a))
    image = jpeg(30)  # 96 x 96, a JPEG file's image: restored, not skipped
    small = conditioned(tile=48)
    tiled = np.asarray(small.restore(image, dtype="fp32"))
    assert np.array_equal(tiled, np.asarray(conditioned().restore(image, dtype="fp32")))  # as a whole-image pass
    small.restore(image, dtype="fp32", tile=200)  # the caller's word wins
    conditioned().restore(image, dtype="fp32", tile="auto")
    assert sides == [48, 512, 200, 512]
    assert RestoreOptions().tile == "auto" and RestoreOptions(tile="256").tile == 256
