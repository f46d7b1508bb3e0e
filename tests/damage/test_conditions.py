"""What a conditioned network is told of the damage (issue 12): the JPEG quality from a file's tables or from its
pixels, the noise level, how restore() passes them, the strength control, and the training samples' damage record."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dcicnn import DCICNN
from dcicnn.damage.conditions import (
    NOT_JPEG,
    condition_from_damage,
    estimate_jpeg_quality,
    estimate_noise,
    quality_from_tables,
)
from dcicnn.damage.record import Damage
from dcicnn.restore.inference import file_jpeg_quality
from dcicnn.restore.options import RestoreOptions
from dcicnn.restore.policy import image_damage, taper
from dcicnn.train.data import HintPolicy, PatchMaker
from dcicnn.train.degradations import Degradation, gaussian_blur, jpeg
from dcicnn_cli.main import main
from tests.conftest import REPO_ROOT
from tests.helpers import variant

SAMPLE = np.asarray(Image.open(REPO_ROOT / "dcicnn" / "assets" / "sample.png").convert("RGB"))


def jpeg_file(image: np.ndarray, quality: int, **kwargs: object) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, **kwargs)
    opened = Image.open(io.BytesIO(buffer.getvalue()))
    opened.load()
    return opened


@pytest.mark.parametrize("quality", [5, 10, 30, 50, 75, 90, 95, 100])
def test_the_quality_of_a_jpeg_file_is_read_exactly_from_its_tables(quality: int) -> None:
    opened = jpeg_file(SAMPLE[:64, :64], quality)
    assert file_jpeg_quality(opened) == quality == quality_from_tables(opened.quantization)


def test_images_not_from_a_jpeg_file_have_no_file_quality() -> None:
    buffer = io.BytesIO()
    Image.fromarray(SAMPLE).save(buffer, format="PNG")
    assert file_jpeg_quality(Image.open(buffer)) is None
    assert file_jpeg_quality(Image.fromarray(SAMPLE)) is None
    assert quality_from_tables({}) is None


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 90])
def test_the_quality_is_estimated_from_the_pixels_of_a_decoded_jpeg(quality: int) -> None:
    decoded = jpeg(SAMPLE, quality)
    estimate = estimate_jpeg_quality(decoded)
    assert estimate is not None and abs(estimate - quality) <= 5
    shifted = estimate_jpeg_quality(decoded[3:, 5:])  # a crop moves the 8x8 grid
    assert shifted is not None and abs(shifted - quality) <= 5
    as_tensor = estimate_jpeg_quality(torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 255)
    assert as_tensor == estimate


def test_images_without_a_jpeg_lattice_read_as_not_jpeg() -> None:
    assert estimate_jpeg_quality(SAMPLE) is None  # a clean image
    resized = Image.fromarray(jpeg(SAMPLE, 30)).resize((SAMPLE.shape[1] * 3 // 4, SAMPLE.shape[0] * 3 // 4))
    assert estimate_jpeg_quality(np.asarray(resized)) is None  # resampling destroys the lattice
    assert estimate_jpeg_quality(SAMPLE[:40, :40]) is None  # too few blocks to decide


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0, 50.0])
def test_noise_is_estimated_within_a_few_percent_on_a_smooth_image(sigma: float) -> None:
    smooth = gaussian_blur(SAMPLE.astype(np.float64), 3.0) / 255.0
    noisy = smooth + np.random.default_rng(0).normal(0, sigma / 255.0, smooth.shape)
    estimate = float(estimate_noise(torch.from_numpy(noisy).permute(2, 0, 1).float()))
    assert abs(estimate - sigma) < 0.05 * sigma + 0.5


def test_noise_estimates_are_per_image_and_zero_on_flat_or_tiny_images() -> None:
    flat = torch.full((2, 3, 32, 32), 0.5)
    flat[1] += torch.randn(3, 32, 32) * 20 / 255
    sigmas = estimate_noise(flat)
    assert sigmas.shape == (2,) and float(sigmas[0]) == 0.0 and 15 < float(sigmas[1]) < 25
    assert float(estimate_noise(torch.rand(3, 2, 9))) == 0.0


def test_condition_channels_from_a_damage_record() -> None:
    names = ["jpeg", "noise"]
    records = torch.stack([Damage(30, 10.0).tensor(), Damage.blind(0.0).tensor(), Damage(None, 50.0).tensor()])
    channels = condition_from_damage(names, records)
    assert torch.allclose(channels, torch.tensor([[0.7, 0.0, 0.2], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert torch.allclose(channels[0], Damage(30, 10.0).condition(names))
    assert condition_from_damage([], records).shape == (3, 0)
    assert torch.equal(Damage(30, 10.0).condition(names), channels[0])


def test_a_damage_record_is_validated_and_keeps_not_a_jpeg_apart_from_withheld() -> None:
    assert Damage(None, 2.0).no_jpeg_damage and not Damage(None, 2.0).is_jpeg
    assert Damage(NOT_JPEG).no_jpeg_damage and Damage(NOT_JPEG).is_jpeg  # told q100: as not a JPEG
    withheld = Damage.blind(2.0)
    assert withheld.withheld and not withheld.no_jpeg_damage and not withheld.is_jpeg
    assert torch.isnan(withheld.tensor()[0]) and float(Damage(None).tensor()[0]) == NOT_JPEG
    bad: list[tuple[object, float, bool]] = [
        (0, 0.0, False), (101, 0.0, False), (True, 0.0, False), (None, -1.0, False), (None, math.nan, False),
        (30, 0.0, True),
    ]  # fmt: skip
    for quality, sigma, withheld_ in bad:
        with pytest.raises(ValueError):
            Damage(quality, sigma, withheld=withheld_)  # type: ignore[arg-type]


def test_a_warm_started_conditioned_network_computes_what_its_blind_source_did() -> None:
    blind = variant("no-batchnorm")
    conditioned = DCICNN(width=8, depth=5, batch_norm=False, conditions=["jpeg", "noise"])
    conditioned.load_state_dict(conditioned.warm_start_state(blind))
    x = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(conditioned(x, torch.rand(2, 3)), blind(x))
    with pytest.raises(ValueError, match="takes no condition"):
        blind(x, torch.rand(2, 3))
    with pytest.raises(ValueError, match="does not"):
        blind.warm_start_state(conditioned)


def conditioned_model() -> DCICNN:
    """A small conditioned network whose condition channels matter."""
    model = variant("conditioned")
    with torch.no_grad():
        model.body[0].weight[:, 3:] = torch.randn_like(model.body[0].weight[:, 3:])
    return model


def test_restore_uses_the_file_quality_then_the_pixels_then_nothing() -> None:
    model = conditioned_model()
    image = SAMPLE[:96, :128]
    opened = jpeg_file(image, 40, subsampling="4:2:0")
    decoded = np.asarray(opened)
    from_file = np.asarray(model.restore(opened, dtype="fp32"))
    told = model.restore(decoded, dtype="fp32", jpeg_quality=40)
    np.testing.assert_array_equal(from_file, told)
    estimated = estimate_jpeg_quality(decoded)
    assert estimated is not None
    np.testing.assert_array_equal(
        model.restore(decoded, dtype="fp32"), model.restore(decoded, jpeg_quality=estimated, dtype="fp32")
    )
    blind = model.restore(decoded, dtype="fp32", jpeg_quality=None)
    assert not np.array_equal(blind, told)
    assert image_damage(torch.from_numpy(decoded.copy()).permute(2, 0, 1), None, scale=255.0).withheld


def test_conditions_are_measured_once_so_tiles_match_the_whole_image() -> None:
    model = conditioned_model()
    noisy = np.clip(SAMPLE[:100, :120] + np.random.default_rng(1).normal(0, 12, (100, 120, 3)), 0, 255)
    noisy = noisy.astype(np.uint8)
    whole = model.restore(noisy, dtype="fp32")
    tiled = model.restore(noisy, dtype="fp32", tile=24)
    np.testing.assert_array_equal(whole, tiled)
    forward = model(torch.from_numpy(noisy).permute(2, 0, 1)[None].float() / 255)  # default condition = restore's
    expected = torch.from_numpy(model.restore(noisy.astype(np.float32) / 255, dtype="fp32")).permute(2, 0, 1)
    torch.testing.assert_close(forward[0].detach(), expected, atol=1e-5, rtol=0)


def test_strength_scales_the_correction() -> None:
    model = variant("no-batchnorm")
    x = torch.rand(3, 40, 50)
    full = model.restore(x, dtype="fp32")
    half = model.restore(x, dtype="fp32", strength=0.5)
    torch.testing.assert_close(half, x + 0.5 * (full - x), atol=1e-5, rtol=0)
    assert torch.equal(model.restore(x, strength=0), x)
    array = (SAMPLE[:30, :30]).copy()
    np.testing.assert_array_equal(model.restore(array, strength=0.0), array)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"jpeg_quality": 101}, "jpeg_quality"),
        ({"jpeg_quality": "high"}, "jpeg_quality"),
        ({"jpeg_quality": True}, "jpeg_quality"),
        ({"strength": -0.1}, "strength"),
        ({"strength": 2.5}, "strength"),
        ({"strength": math.nan}, "strength"),
        ({"high_quality_taper": (97, 85)}, "high_quality_taper"),
        ({"high_quality_taper": (0, 50)}, "high_quality_taper"),
        ({"high_quality_taper": (85.0, 97)}, "high_quality_taper"),
        ({"high_quality_taper": "85,97"}, "high_quality_taper"),
    ],
)
def test_bad_condition_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestoreOptions(**options)  # type: ignore[arg-type]


def test_condition_options_accept_what_users_write() -> None:
    assert RestoreOptions(jpeg_quality="none").jpeg_quality is None
    assert RestoreOptions(jpeg_quality="75").jpeg_quality == 75
    assert RestoreOptions(jpeg_quality="AUTO").jpeg_quality == "auto"
    assert RestoreOptions(strength=2).strength == 2.0
    assert RestoreOptions(high_quality_taper=[80, 90]).high_quality_taper == (80, 90)  # as a config writes it
    assert RestoreOptions(high_quality_taper=None).high_quality_taper is None


def test_a_smooth_heavily_compressed_image_does_not_read_as_a_high_quality_one() -> None:
    # Few non-zero coefficients at most frequencies: zeros fit every table, so those frequencies are no evidence
    # (they once made such an image read q96, and the high-quality taper then left it unrestored).
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(30, 225, size=(4, 4, 3)).astype(np.float64), np.ones((16, 16, 1)))  # 64 x 64
    smooth = np.clip(gaussian_blur(base, 3.0), 0, 255).astype(np.uint8)
    quality = estimate_jpeg_quality(np.asarray(jpeg_file(smooth, 20)))
    assert quality is not None and 12 <= quality <= 28, quality


def test_the_taper_scales_only_a_high_quality_jpeg_without_other_damage() -> None:
    span = (85, 97)
    assert taper(Damage(80, 1.0), span) == 1.0
    assert taper(Damage(91, 1.0), span) == pytest.approx(0.5)
    assert taper(Damage(97, 1.0), span) == taper(Damage(99, 0.0), span) == 0.0
    assert taper(Damage(95, 10.0), span) == 1.0  # noisier than clean texture reads: worth removing
    assert taper(Damage(97, 7.0), span) == 0.0  # within what a clean photo's texture reads
    assert taper(Damage.blind(1.0), span) == 1.0  # quality withheld
    assert taper(Damage(None, 1.0), span) == 1.0  # not a JPEG: skip_undamaged's business
    assert taper(Damage(NOT_JPEG, 1.0), span) == 1.0  # told q100: as not a JPEG
    assert taper(Damage(96, 1.0), None) == 1.0


def test_a_high_quality_jpeg_file_gets_less_of_the_correction() -> None:
    model = conditioned_model()
    crop = SAMPLE[:96, :120]
    top = jpeg_file(crop, 95)  # at the taper's end: the file comes back as it was decoded
    np.testing.assert_array_equal(np.asarray(model.restore(top, dtype="fp32")), np.asarray(top))
    assert not np.array_equal(np.asarray(model.restore(top, dtype="fp32", high_quality_taper=None)), np.asarray(top))
    middle = jpeg_file(crop, 90)  # half way: half the correction (before rounding; the projection off to compare)
    decoded = np.asarray(middle).astype(np.float64)
    full = np.asarray(model.restore(middle, dtype="fp32", jpeg_consistency=False, high_quality_taper=None))
    half = np.asarray(model.restore(middle, dtype="fp32", jpeg_consistency=False))
    inside = (full > 0) & (full < 255)  # where rounding alone, not clipping, parts the two
    assert np.abs(half - (decoded + 0.5 * (full - decoded)))[inside].max() <= 1.0
    assert np.abs(full - decoded).max() >= 2  # the correction is there to be halved


def test_training_samples_carry_the_hint_the_policy_makes() -> None:
    compressed = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=1, jpeg_quality=(20, 20), jpeg_codec="pillow")
    exact = PatchMaker(32, compressed, hints=HintPolicy(withhold=0.0, jitter=0))
    degraded, clean, damage = exact(SAMPLE, seed=0)
    assert float(damage[0]) == 20.0 and float(damage[1]) == pytest.approx(float(estimate_noise(degraded)))
    jittered = [float(PatchMaker(32, compressed, hints=HintPolicy(0.0, 3))(SAMPLE, seed=s)[2][0]) for s in range(40)]
    assert set(jittered) <= set(range(17, 24)) and len(set(jittered)) > 3
    withheld = PatchMaker(32, compressed, hints=HintPolicy(withhold=1.0, jitter=0))(SAMPLE, seed=0)[2]
    assert math.isnan(float(withheld[0]))
    untouched = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0)
    assert float(PatchMaker(32, untouched, hints=HintPolicy(0.0, 0))(SAMPLE, seed=0)[2][0]) == NOT_JPEG


@pytest.mark.parametrize("codec", ["pillow", "opencv"])
def test_a_conditioned_network_is_told_the_quality_of_either_jpeg_codec(codec: str) -> None:
    """The default ``Degradation`` compresses with OpenCV: its samples must carry their quality, not "not a JPEG"."""
    compressed = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=1, jpeg_quality=(35, 35), jpeg_codec=codec)  # type: ignore[arg-type]
    damage = PatchMaker(32, compressed, hints=HintPolicy(withhold=0.0, jitter=0))(SAMPLE, seed=1)[2]
    assert float(damage[0]) == 35.0
    assert Degradation().jpeg_codec == "opencv"


def test_pillow_jpeg_in_training_equals_the_protocols_jpeg() -> None:
    compressed = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=1, jpeg_quality=(35, 35), jpeg_codec="pillow")
    degraded, clean, _ = PatchMaker(48, compressed, augment=False)(SAMPLE, seed=3)
    target = (clean.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    expected = jpeg(target, 35).astype(np.float32) / 255
    np.testing.assert_array_equal(degraded.permute(1, 2, 0).numpy(), expected)


def test_unclipped_noise_keeps_values_beyond_the_range() -> None:
    noisy = Degradation(blur_prob=0, noise_prob=1, noise_sigma=(50, 50), noise_clip=False, jpeg_prob=0)
    degraded, _, _ = PatchMaker(48, noisy)(SAMPLE, seed=0)
    assert float(degraded.min()) < 0 or float(degraded.max()) > 1
    clipped = Degradation(blur_prob=0, noise_prob=1, noise_sigma=(50, 50), jpeg_prob=0)
    degraded, _, _ = PatchMaker(48, clipped)(SAMPLE, seed=0)
    assert float(degraded.min()) >= 0 and float(degraded.max()) <= 1


def test_restore_cli_takes_jpeg_quality_and_strength(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    conditioned_model().save_pretrained(root / "m")
    Image.fromarray(SAMPLE[:64, :64]).save(root / "in.jpg", quality=30)
    for value in ("auto", "none", "30"):
        assert (
            main(
                [
                    "restore",
                    str(root / "in.jpg"),
                    "-o",
                    str(root / value),
                    "--model",
                    str(root / "m"),
                    "--jpeg-quality",
                    value,
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "restore",
                str(root / "in.jpg"),
                "-o",
                str(root / "s0"),
                "--model",
                str(root / "m"),
                "--format",
                "png",
                "--strength",
                "0",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        np.asarray(Image.open(root / "s0" / "in.png")), np.asarray(Image.open(root / "in.jpg"))
    )
    capsys.readouterr()
    assert (
        main(
            [
                "restore",
                str(root / "in.jpg"),
                "-o",
                str(root / "bad"),
                "--model",
                str(root / "m"),
                "--jpeg-quality",
                "0",
            ]
        )
        == 1
    )
    assert "jpeg_quality" in capsys.readouterr().err and not (root / "bad").exists()


def test_the_calibrated_noise_hint_models_the_whole_image_estimate() -> None:
    noisy = Degradation(blur_prob=0, noise_prob=1, noise_sigma=(25, 25), noise_clip=False, jpeg_prob=0)
    maker = PatchMaker(48, noisy, hints=HintPolicy(withhold=0.0, jitter=0, noise="calibrated", texture=(1.0, 4.0)))
    levels = [float(maker(SAMPLE, seed=s)[2][1]) for s in range(30)]
    assert all(24.0 * 0.9 < v < math.hypot(26.0, 4.0) * 1.1 for v in levels) and len(set(levels)) > 20
    untouched = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0)
    clean = PatchMaker(48, untouched, hints=HintPolicy(0.0, 0, "calibrated", (1.0, 4.0)))
    assert all(0.85 < float(clean(SAMPLE, seed=s)[2][1]) < 4.6 for s in range(30))


def test_the_data_module_refuses_bad_hint_options() -> None:
    from dcicnn.train.data import DegradationDataModule

    for bad in ({"jpeg_hint_withhold": 1.5}, {"jpeg_hint_jitter": -1}, {"noise_hint": "oracle"}):
        with pytest.raises(ValueError, match="hint"):
            DegradationDataModule(**bad)  # type: ignore[arg-type]


def test_a_conditioned_model_leaves_an_undamaged_image_alone() -> None:
    model = conditioned_model()
    smooth = (gaussian_blur(SAMPLE.astype(np.float64), 2.0)).round().astype(np.uint8)  # no lattice, no noise
    np.testing.assert_array_equal(model.restore(smooth, dtype="fp32"), smooth)
    assert not np.array_equal(model.restore(smooth, dtype="fp32", skip_undamaged=False), smooth)
    assert not np.array_equal(model.restore(smooth, dtype="fp32", jpeg_quality=None), smooth)  # withheld: unknown
    noisy = np.clip(smooth + np.random.default_rng(0).normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
    assert not np.array_equal(model.restore(noisy, dtype="fp32"), noisy)
    blind = variant("no-batchnorm")  # a blind model knows nothing of what it was trained on: it always runs
    assert not np.array_equal(blind.restore(smooth, dtype="fp32"), smooth)
