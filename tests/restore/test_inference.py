"""DCICNN.restore: seamless tiling, every kind of image in and out, and the inference settings."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from dcicnn import DCICNN
from dcicnn.restore.options import RestoreOptions
from dcicnn.restore.runner import resolve_device_dtype
from dcicnn.restore.tiling import plan_tiles
from tests.helpers import variant


def model(in_channels: int = 3, seed: int = 0) -> DCICNN:
    return variant("gray" if in_channels == 1 else "default", depth=4, seed=seed)


MODEL = model()
DILATED = variant("dilated")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    tile=st.integers(9, 70),
    extra_overlap=st.integers(0, 6),
    batch_size=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    dilated=st.booleans(),
)
def test_tiled_equals_whole_image(
    height: int, width: int, tile: int, extra_overlap: int, batch_size: int, seed: int, dilated: bool
) -> None:
    net = DILATED if dilated else MODEL
    overlap = net.receptive_radius + extra_overlap
    x = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))
    tiled = net.restore(x, tile=max(tile, 2 * overlap + 2), overlap=overlap, batch_size=batch_size, dtype="fp32")
    with torch.no_grad():
        whole = net(x[None])[0]
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


@settings(max_examples=100, deadline=None)
@given(length=st.integers(1, 300), tile=st.integers(18, 120), overlap=st.integers(8, 8))
def test_tile_plan_covers_every_pixel_once_with_context(length: int, tile: int, overlap: int) -> None:
    # 612 px with tile 512: two windows just big enough, not two full tiles
    assert [(t.x0, t.x1) for t in plan_tiles(5, 612, 512, 8)] == [(0, 315), (297, 612)]
    tiles = plan_tiles(length, 5, tile, overlap)
    owner = np.zeros(length, dtype=int)
    assert len({t.y1 - t.y0 for t in tiles}) == 1  # one tile shape: tiles batch together
    for t in tiles:
        assert t.y1 - t.y0 <= tile and t.y0 >= 0 and t.y1 <= length
        owner[t.cy0 : t.cy1] += 1
        assert t.cy0 - t.y0 >= overlap or t.y0 == 0
        assert t.y1 - t.cy1 >= overlap or t.y1 == length
    assert (owner == 1).all()


def test_overlap_below_the_receptive_radius_is_refused() -> None:
    with pytest.raises(ValueError, match="below the model's receptive radius"):
        MODEL.restore(torch.rand(3, 40, 40), tile=20, overlap=MODEL.receptive_radius - 1)


def test_tensors_in_tensors_out() -> None:
    batch = torch.rand(2, 3, 21, 30)
    out = MODEL.restore(batch, tile=16, dtype="fp32")
    assert out.shape == batch.shape and out.dtype == batch.dtype
    single = MODEL.restore(batch[1], tile=16, dtype="fp32")
    torch.testing.assert_close(single, out[1])
    with pytest.raises(ValueError, match="float"):
        MODEL.restore(torch.zeros(3, 8, 8, dtype=torch.uint8))


def test_numpy_dtypes_and_alpha() -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(33, 41, 4), dtype=np.uint8)
    out = MODEL.restore(rgba, tile=20)
    assert out.dtype == np.uint8 and out.shape == rgba.shape
    assert np.array_equal(out[:, :, 3], rgba[:, :, 3])  # alpha untouched
    as_float = MODEL.restore(rgba[:, :, :3].astype(np.float32) / 255, dtype="fp32")
    as_uint8 = MODEL.restore(rgba[:, :, :3], dtype="fp32")
    assert as_float.dtype == np.float32
    assert np.abs(np.clip(np.rint(as_float * 255), 0, 255) - as_uint8).max() <= 1
    wide = rng.integers(0, 65536, size=(20, 25), dtype=np.uint16)
    out16 = MODEL.restore(wide)
    assert out16.dtype == np.uint16 and out16.shape == wide.shape
    with pytest.raises(ValueError, match="unsupported image dtype"):
        MODEL.restore(np.zeros((8, 8, 3), dtype=np.int8))


def test_gray_and_colour_across_models() -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(30, 30), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)
    assert MODEL.restore(gray).shape == (30, 30)
    gray_model = model(in_channels=1)
    assert gray_model.restore(gray).shape == (30, 30)
    out = gray_model.restore(colour, dtype="fp32")
    assert out.shape == colour.shape
    # the gray model changes luma only: the chroma differences between channels are kept (up to rounding)
    diff_in = colour[:, :, 0].astype(int) - colour[:, :, 1].astype(int)
    diff_out = out[:, :, 0].astype(int) - out[:, :, 1].astype(int)
    clipped = (out == 0).any(axis=2) | (out == 255).any(axis=2)
    assert np.abs(diff_in - diff_out)[~clipped].max() <= 1


def pil(mode: str, size: tuple[int, int] = (37, 29)) -> Image.Image:
    rng = np.random.default_rng(2)
    rgba = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, size=(size[1], size[0]), dtype=np.uint16))
    if mode == "P":
        return rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    return rgba.convert(mode)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("L", "L"), ("LA", "LA"), ("RGB", "RGB"), ("RGBA", "RGBA"), ("P", "RGB"), ("CMYK", "RGB"), ("I;16", "I;16")],
)
def test_pil_modes(mode: str, expected: str) -> None:
    image = pil(mode)
    out = MODEL.restore(image, tile=24)
    assert out.mode == expected and out.size == image.size
    if "A" in mode:
        assert np.array_equal(np.asarray(out)[..., -1], np.asarray(image)[..., -1])


def test_exif_orientation_is_applied_and_icc_profile_kept() -> None:
    image = Image.fromarray(np.zeros((20, 50, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), icc_profile=icc)
    with Image.open(io.BytesIO(buffer.getvalue())) as loaded:
        out = MODEL.restore(loaded)
    assert out.size == (20, 50)  # upright
    assert out.info.get("icc_profile") == icc


def test_bf16_is_close_to_fp32_and_auto_picks_by_hardware() -> None:
    x = torch.rand(3, 64, 64)
    fp32 = MODEL.restore(x, dtype="fp32")
    bf16 = MODEL.restore(x, dtype="bf16")
    assert (bf16 - fp32).abs().max() < 0.02
    device, dtype = resolve_device_dtype(MODEL, RestoreOptions())
    assert device.type == "cpu" and dtype in (torch.float32, torch.bfloat16)
    assert MODEL.restore(x, dtype=torch.float32).equal(fp32)  # a torch.dtype is accepted too
    with pytest.raises(ValueError, match="dtype must be 'auto' or one of fp32, bf16, fp16, got 'int8'"):
        MODEL.restore(x, dtype="int8")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tile": 0}, "tile must be 'auto' or an int >= 1"),
        ({"batch_size": -1}, "batch_size must be an int >= 1"),
        ({"overlap": -2}, "overlap must be None or an int >= 0"),
        ({"device": "foo"}, "unknown device 'foo'"),
        ({"overlap": 1}, "below the model's receptive radius"),
    ],
)
def test_bad_options_are_one_clear_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MODEL.restore(torch.rand(3, 8, 8), **options)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        MODEL.restore(torch.rand(3, 8, 8), device="cuda")


def test_an_empty_image_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="the image is empty"):
        MODEL.restore(np.zeros((0, 0, 3), dtype=np.uint8))


def test_options_object_and_keywords_agree() -> None:
    x = torch.rand(3, 40, 30)
    options = RestoreOptions(tile=20, batch_size=2, dtype="fp32")
    torch.testing.assert_close(MODEL.restore(x, options=options), MODEL.restore(x, tile=20, batch_size=2, dtype="fp32"))


def test_runner_follows_weight_updates() -> None:
    m = model(seed=3)
    x = torch.rand(3, 16, 16)
    before = m.restore(x, dtype="fp32")
    with torch.no_grad():
        m.body[0].weight.mul_(0.5)
    after = m.restore(x, dtype="fp32")
    with torch.no_grad():
        expected = m(x[None])[0]
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=st.integers(1, 40), width=st.integers(1, 40), tile=st.integers(18, 40), seed=st.integers(0, 2**16))
def test_ensemble_is_the_mean_over_the_eight_orientations(height: int, width: int, tile: int, seed: int) -> None:
    x = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))
    ensembled = MODEL.restore(x, tile=tile, dtype="fp32", ensemble=True)
    outputs = []
    with torch.no_grad():
        for flip in (False, True):
            base = x.flip(-1) if flip else x
            for turns in range(4):
                y = torch.rot90(MODEL(torch.rot90(base, turns, (-2, -1))[None])[0], -turns, (-2, -1))
                outputs.append(y.flip(-1) if flip else y)
    torch.testing.assert_close(ensembled, torch.stack(outputs).mean(0), atol=1e-5, rtol=0)
    if height * width > 1:  # a single pixel looks the same in every orientation
        assert not torch.allclose(ensembled, MODEL.restore(x, tile=tile, dtype="fp32"), atol=1e-4)


def test_ensemble_through_numpy_uint8() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(21, 34, 3), dtype=np.uint8)
    restored = MODEL.restore(image, dtype="fp32", ensemble=True)
    expected = MODEL.restore(torch.from_numpy(image).permute(2, 0, 1).float() / 255, dtype="fp32", ensemble=True)
    assert restored.dtype == np.uint8 and restored.shape == image.shape
    reference = (expected.permute(1, 2, 0).numpy() * 255).round().clip(0, 255)
    assert np.abs(restored.astype(np.float64) - reference).max() <= 1


def test_a_gray_picture_stored_as_rgb_comes_back_achromatic() -> None:
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, size=(37, 41), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    out = MODEL.restore(rgb, dtype="fp32")
    assert (
        out.dtype == np.uint8 and np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    )
    pil = MODEL.restore(Image.fromarray(rgb), dtype="fp32")
    assert np.array_equal(np.asarray(pil), out)
    colour = rgb.copy()
    colour[0, 0, 0] ^= 1  # one coloured pixel: restored as colour
    assert not np.array_equal(MODEL.restore(colour, dtype="fp32")[..., 0], MODEL.restore(colour, dtype="fp32")[..., 2])
