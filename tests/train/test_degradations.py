"""Evaluation protocols and training degradations: strengths, determinism, layouts, and albumentations' traps."""

from __future__ import annotations

import importlib.resources
import io
import math
import subprocess
import sys
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from dcicnn.train.degradations import (
    PROTOCOLS,
    Degradation,
    DegradationMix,
    applied_jpeg_quality,
    apply_protocol,
    earlier_save,
    gaussian_blur,
    jpeg,
    protocol_target,
    seed_pipeline,
)


def sample() -> np.ndarray:
    with Image.open(importlib.resources.files("dcicnn").joinpath("assets", "sample.png")) as image:
        return np.asarray(image.convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1.0 / mse)


GRAY = np.full((256, 256, 3), 128, dtype=np.uint8)


@pytest.mark.parametrize(("sigma", "expected"), [(15, 24.61), (25, 20.17), (50, 14.15)])
def test_noise_protocols_hit_the_predicted_psnr(sigma: int, expected: float) -> None:
    degraded = apply_protocol(f"noise-s{sigma}", GRAY, key="gray")
    assert degraded.dtype == np.float32 and degraded.shape == GRAY.shape
    assert abs(psnr(degraded, GRAY / 255.0) - 20 * math.log10(255 / sigma)) < 0.05
    assert abs(psnr(degraded, GRAY / 255.0) - expected) < 0.05


def test_noise_protocol_is_not_clipped() -> None:
    dark = np.zeros((64, 64, 3), dtype=np.uint8)
    degraded = apply_protocol("noise-s25", dark, key="dark")
    assert degraded.min() < -0.2 and not np.allclose(degraded * 255, np.rint(degraded * 255))


@pytest.mark.parametrize("quality", [10, 20, 30, 40, 50, 75, 90, 95])
def test_jpeg_protocols_are_pillow_420_jpeg(quality: int) -> None:
    image = sample()
    degraded = apply_protocol(f"jpeg-q{quality}", image, key="sample")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    with Image.open(buffer) as decoded:
        expected = np.asarray(decoded)
    assert np.array_equal(np.rint(degraded * 255).astype(np.uint8), expected)
    assert np.array_equal(degraded, (expected / 255.0).astype(np.float32))  # exactly representable k / 255


def test_stronger_degradations_cost_more_psnr() -> None:
    image = sample()
    image / 255.0
    scores = {
        p: psnr(apply_protocol(p, image, key="s"), protocol_target(p, image) / 255.0)
        for p in PROTOCOLS
        if not p.startswith("paper-")
    }
    assert scores["jpeg-q10"] < scores["jpeg-q20"] < scores["jpeg-q30"] < scores["jpeg-q40"]
    assert scores["noise-s50"] < scores["noise-s25"] < scores["noise-s15"]
    assert scores["blur-s2+jpeg-q30"] < scores["blur-s1+jpeg-q30"] < scores["jpeg-q30"]
    assert scores["mixed-heavy"] < scores["mixed-light"]
    # the "do no harm" protocols: light damage, and none at all
    assert scores["jpeg-q40"] < scores["jpeg-q50"] < scores["jpeg-q75"] < scores["jpeg-q90"] < scores["jpeg-q95"]
    assert scores["noise-s15"] < scores["noise-s5"]
    assert scores["clean"] > 100  # float32 rounding of k / 255 only
    # a re-saved JPEG keeps its first, heavier damage
    assert scores["jpeg-q30+q90"] < scores["jpeg-q90"] and abs(scores["jpeg-q30+q90"] - scores["jpeg-q30"]) < 0.5
    assert scores["jpeg-q75+q96"] < scores["jpeg-q95"] and abs(scores["jpeg-q75+q96"] - scores["jpeg-q75"]) < 0.5
    assert scores["jpeg-q10+shift+q30"] < scores["jpeg-q30"] and scores["jpeg-q30+shift+q50"] < scores["jpeg-q50"]
    assert all(12 < s < 50 for p, s in scores.items() if p != "clean"), scores


def test_a_resized_protocol_is_scored_against_the_clean_image_so_resized() -> None:
    image = sample()
    degraded = apply_protocol("jpeg-q30+resize+q90", image, key="s")
    target = protocol_target("jpeg-q30+resize+q90", image)
    assert degraded.shape == target.shape == (round(image.shape[0] * 0.75), round(image.shape[1] * 0.75), 3)
    assert 20 < psnr(degraded, target / 255.0) < 40


def test_a_shifted_protocol_crops_between_the_saves_and_scores_against_the_crop() -> None:
    image = sample()
    degraded = apply_protocol("jpeg-q10+shift+q30", image, key="s")
    target = protocol_target("jpeg-q10+shift+q30", image)
    assert np.array_equal(target, image[4:, 4:]) and degraded.shape == target.shape
    first = jpeg(image, 10)[4:, 4:]  # the first save, cropped: the second grid lies 4 pixels off the first
    assert np.array_equal(np.rint(degraded * 255).astype(np.uint8), jpeg(first, 30))


def test_clean_protocol_is_the_image_itself() -> None:
    image = sample()
    degraded = apply_protocol("clean", image, key="sample")
    assert np.array_equal(degraded, (image / 255.0).astype(np.float32))


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_blur_matches_scipy_reflect_with_the_specified_kernel(sigma: float) -> None:
    image = sample().astype(np.float64)
    # For integer sigma, scipy's radius int(3 * sigma + 0.5) equals the protocol's ceil(3 * sigma).
    expected = gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect", truncate=3.0)
    np.testing.assert_allclose(gaussian_blur(image, sigma), expected, atol=1e-9)


def test_blur_kernel_size_for_fractional_sigma() -> None:
    impulse = np.zeros((31, 31))
    impulse[15, 15] = 1.0
    support = np.nonzero(gaussian_blur(impulse, 0.7)[15])[0]
    assert len(support) == 2 * math.ceil(3 * 0.7) + 1 == 7


def test_protocols_are_deterministic_per_key_and_across_processes() -> None:
    image = sample()
    a = apply_protocol("mixed-light", image, key="kodim23.png")
    b = apply_protocol("mixed-light", image, key="kodim23.png")
    c = apply_protocol("mixed-light", image, key="other.png")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    code = (
        "import hashlib, numpy as np; from dcicnn.train.degradations import apply_protocol; "
        "from tests.train.test_degradations import sample; "
        "print(hashlib.sha256(apply_protocol('noise-s25', sample(), key='k').tobytes()).hexdigest())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=Path(__file__).parents[2],
    )
    import hashlib

    assert other.stdout.strip() == hashlib.sha256(apply_protocol("noise-s25", image, key="k").tobytes()).hexdigest()


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_paper_protocols_resize_the_centre_square(size: int) -> None:
    image = sample()  # 384 x 256
    target = protocol_target(f"paper-{size}", image)
    degraded = apply_protocol(f"paper-{size}", image, key="s")
    assert target.shape == (size, size, 3) and target.dtype == np.uint8
    assert degraded.shape == (size, size, 3)
    crop = Image.fromarray(image[:, 64:320]).resize((size, size), Image.Resampling.BICUBIC)
    assert np.array_equal(target, np.asarray(crop))
    assert 18 < psnr(degraded, target / 255.0) < 40
    assert np.array_equal(protocol_target("jpeg-q10", image), image)


@pytest.mark.parametrize("shape", [(48, 40), (48, 40, 1)])
def test_grayscale_layouts_are_kept(shape: tuple[int, ...]) -> None:
    image = sample()[:48, :40, 0].reshape(shape)
    for protocol in ("jpeg-q10", "noise-s25", "mixed-heavy", "paper-32"):
        out = apply_protocol(protocol, image, key="g")
        expected = (32, 32) if protocol == "paper-32" else (48, 40)
        assert out.shape == expected + shape[2:]


def test_bad_protocol_inputs() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'jpeg-q11'.*jpeg-q10"):
        apply_protocol("jpeg-q11", GRAY, key="k")
    with pytest.raises(ValueError, match="uint8"):
        apply_protocol("jpeg-q10", GRAY.astype(np.float32), key="k")
    with pytest.raises(ValueError, match="shape"):
        apply_protocol("jpeg-q10", np.zeros((8, 8, 4), np.uint8), key="k")


# ----------------------------------------------------------------------------------------------------------------------
# Training degradations.
def test_training_noise_strength_is_as_specified() -> None:
    pipeline = Degradation(blur_prob=0, noise_prob=1, noise_sigma=(20, 20), jpeg_prob=0).build()
    seed_pipeline(pipeline, 0)
    degraded = pipeline(image=(GRAY / 255.0).astype(np.float32))["image"]
    assert degraded.dtype == np.float32
    assert abs(psnr(degraded, GRAY / 255.0) - 20 * math.log10(255 / 20)) < 0.05


def test_training_jpeg_and_blur_degrade() -> None:
    image = sample()
    only_jpeg = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=1, jpeg_quality=(10, 10)).build()
    only_blur = Degradation(blur_prob=1, blur_sigma=(2.0, 2.0), noise_prob=0, jpeg_prob=0).build()
    for pipeline in (only_jpeg, only_blur):
        seed_pipeline(pipeline, 1)
        out = pipeline(image=(image / 255.0).astype(np.float32))["image"]
        assert out.shape == image.shape and 20 < psnr(out, image / 255.0) < 35
    seed_pipeline(only_jpeg, 2)
    coded = only_jpeg(image=(image / 255.0).astype(np.float32))["image"]
    assert np.allclose(coded * 255, np.rint(coded * 255), atol=1e-3)  # JPEG output is k / 255


def test_seeded_stages_draw_independently() -> None:
    spec = Degradation(blur_prob=0.5, noise_prob=0.5, jpeg_prob=0.5)
    pipeline = A.Compose(spec.build().transforms, save_applied_params=True, strict=True)
    applied = []
    for seed in range(200):
        seed_pipeline(pipeline, seed)
        names = {name for name, _ in pipeline(image=GRAY[:32, :32])["applied_transforms"]}
        applied.append(("GaussianBlur" in names, "GaussNoise" in names, "ImageCompression" in names))
    rates = np.mean(applied, axis=0)
    assert np.all((rates > 0.35) & (rates < 0.65)), rates
    blur, noise, _ = np.array(applied).T
    assert 0.3 < np.mean(blur == noise) < 0.7  # independent, not lock-stepped as with Compose.set_random_seed


def test_paper_degradation() -> None:
    spec = Degradation.paper()
    assert spec.resize == 64 and spec.noise_levels == (5.0, 10.0, 15.0, 20.0)
    assert (spec.blur_prob, spec.noise_prob, spec.jpeg_prob) == (1.0, 1.0, 1.0)


def test_noise_levels_are_drawn_from_the_list() -> None:
    pipeline = Degradation(blur_prob=0, noise_prob=1, noise_levels=(5, 20), jpeg_prob=0).build()
    flat = (GRAY[:64, :64] / 255.0).astype(np.float32)
    sigmas = []
    for seed in range(40):
        seed_pipeline(pipeline, seed)
        sigmas.append(float((pipeline(image=flat)["image"] - flat).std() * 255))
    assert all(abs(s - 5) < 0.5 or abs(s - 20) < 1.0 for s in sigmas), sigmas
    assert 10 < sum(s < 10 for s in sigmas) < 30  # both levels, about equally often


def test_an_earlier_save_on_the_grid_is_the_protocols_double_jpeg() -> None:
    image = sample()[:64, :64]
    np.testing.assert_array_equal(earlier_save(image, 30), jpeg(image, 30))
    double = jpeg(earlier_save(image, 30), 90)
    np.testing.assert_array_equal(double, np.rint(apply_protocol("jpeg-q30+q90", image, key="k") * 255))


def test_an_earlier_save_off_the_grid_or_resized_leaves_its_blocks_elsewhere() -> None:
    image = sample()[:96, :96]
    shifted = earlier_save(image, 10, shift=(3, 5))
    # the shifted save's block edges run along rows 5, 13, ... and columns 3, 11, ...: the steps between pixels
    # are largest there, and not on the image's own 8x8 grid
    rows = np.abs(np.diff(shifted.astype(np.float64), axis=0)).mean(axis=(1, 2))
    cols = np.abs(np.diff(shifted.astype(np.float64), axis=1)).mean(axis=(0, 2))
    assert int(np.argmax([rows[k::8].mean() for k in range(8)])) == 4  # between rows 4 and 5
    assert int(np.argmax([cols[k::8].mean() for k in range(8)])) == 2
    resized = earlier_save(image, 10, scale=0.75)
    assert resized.shape == image.shape and 20 < psnr(resized / 255.0, image / 255.0) < 32
    assert psnr(resized / 255.0, image / 255.0) < psnr(earlier_save(image, 90, scale=0.75) / 255.0, image / 255.0)


def test_training_saves_twice_and_records_what_a_reader_would_find() -> None:
    image = (sample()[:64, :64] / 255.0).astype(np.float32)
    twice = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=1, jpeg_quality=(90, 90), jpeg_codec="pillow",
                        prior_jpeg_prob=1, prior_jpeg_quality=(20, 20), prior_shift_prob=0.5, prior_rescale_prob=0.3)
    pipeline = twice.build()
    seen: dict[str, list[int | None]] = {"on grid": [], "shifted": [], "resized": []}
    for seed in range(60):
        seed_pipeline(pipeline, seed)
        result = pipeline(image=image)
        applied = result["applied_transforms"]
        [prior] = [params for name, params in applied if name == "PriorJPEG"]
        kind = "resized" if prior["scale"] < 1 else "shifted" if prior["shift"] != (0, 0) else "on grid"
        seen[kind].append(applied_jpeg_quality(applied))
        if kind == "on grid":
            pixels = np.rint(image * 255).astype(np.uint8)
            np.testing.assert_array_equal(np.rint(result["image"] * 255), jpeg(jpeg(pixels, 20), 90))
    assert all(seen.values()), {k: len(v) for k, v in seen.items()}
    assert set(seen["on grid"]) == {20}  # the heavier save, which the pixels show on the file's own grid
    assert set(seen["shifted"]) == set(seen["resized"]) == {90}  # the file's tables: the pixels must tell the rest
    prior_only = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0, prior_jpeg_prob=1, prior_jpeg_quality=(40, 40))
    pipeline = prior_only.build()
    seed_pipeline(pipeline, 0)
    assert applied_jpeg_quality(pipeline(image=image)["applied_transforms"]) == 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blur_prob": 1.5}, "blur_prob must be in"),
        ({"noise_sigma": (20, 5)}, "noise_sigma must satisfy"),
        ({"jpeg_quality": (0, 50)}, "jpeg_quality must satisfy"),
        ({"jpeg_quality": (10.5, 50)}, "jpeg_quality must be integers"),
        ({"blur_sigma": (0, 1)}, "blur_sigma must be > 0"),
        ({"order": ("blur", "blur")}, "order must list distinct"),
        ({"order": ("sharpen",)}, "order must list distinct"),
        ({"resize": 0}, "resize must be"),
        ({"noise_levels": (0, 5)}, "noise_levels must be values"),
        ({"prior_jpeg_prob": 2}, "prior_jpeg_prob must be in"),
        ({"prior_jpeg_quality": (50, 10)}, "prior_jpeg_quality must satisfy"),
        ({"prior_rescale": (0.05, 0.5)}, "prior_rescale must satisfy"),
    ],
)
def test_degradation_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Degradation(**kwargs)


def test_mixture_draws_components_by_weight_and_stages_independently() -> None:
    noise = Degradation(blur_prob=0, noise_prob=1, noise_sigma=(20, 20), jpeg_prob=0)
    blur_or_jpeg = Degradation(blur_prob=0.5, blur_sigma=(2, 2), noise_prob=0, jpeg_prob=0.5, jpeg_quality=(10, 10))
    pipeline = DegradationMix([noise, blur_or_jpeg], weights=[1, 3]).build()
    image = (sample()[:48, :48] / 255.0).astype(np.float32)
    noisy, blurred, coded = [], [], []
    for seed in range(400):
        seed_pipeline(pipeline, seed)
        out = pipeline(image=image)["image"]
        residual = (out - image) * 255
        noisy.append(abs(residual.std() - 20) < 2 and abs(gaussian_blur(residual, 2.0)).mean() < 4)
        coded.append(bool(np.allclose(out * 255, np.rint(out * 255), atol=1e-3)) and residual.std() > 0.5)
        blurred.append(not noisy[-1] and residual.std() > 0.5 and not coded[-1])
    assert 0.19 < np.mean(noisy) < 0.31  # weight 1 of 4
    # the second component applies blur and JPEG independently, with probability 0.5 each
    assert 0.3 < np.mean(coded) < 0.45 and 0.14 < np.mean(blurred) < 0.24
    draws = []
    for _ in range(2):
        seed_pipeline(pipeline, 7)
        draws.append(pipeline(image=image)["image"])
    np.testing.assert_array_equal(draws[0], draws[1])  # one seed, one draw


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"components": []}, "at least one component"),
        ({"components": [Degradation()], "weights": [1, 2]}, "weights must be 1 non-negative"),
        ({"components": [Degradation(), Degradation()], "weights": [0, 0]}, "positive sum"),
        ({"components": [Degradation(), Degradation(resize=64)]}, "share the same resize"),
    ],
)
def test_mixture_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DegradationMix(**kwargs)


def test_misspelled_albumentations_arguments_cannot_slip_through() -> None:
    # albumentations 2.x only warns about old argument names; the test run turns that warning into an error.
    with pytest.raises(UserWarning, match="var_limit"):
        A.GaussNoise(var_limit=(10.0, 50.0))
    with pytest.raises(UserWarning, match="quality_lower"):
        A.ImageCompression(quality_lower=10)
