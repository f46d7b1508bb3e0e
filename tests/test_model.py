"""The DCI-CNN network: structure, shapes, argument checks, receptive field and BatchNorm folding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dcicnn import DCICNN
from tests.helpers import VARIANTS, variant


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_paper_layer_counts() -> None:
    model = DCICNN()
    assert (count(model, nn.Conv2d), count(model, nn.BatchNorm2d), count(model, nn.ReLU)) == (8, 7, 7)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs)
    assert convs[0].in_channels == 3 and convs[-1].out_channels == 3


def test_parameter_count_width_64() -> None:
    model = DCICNN(in_channels=3, width=64, depth=8)
    first = 3 * 64 * 9  # no bias: BatchNorm follows
    middle = 6 * (64 * 64 * 9)
    batchnorm = 7 * 2 * 64
    last = 64 * 3 * 9 + 3
    assert sum(p.numel() for p in model.parameters()) == first + middle + batchnorm + last == 225_539


def test_flops_per_pixel_matches_design() -> None:
    assert DCICNN().flops_per_pixel == 2 * 9 * (3 * 64 + 6 * 64 * 64 + 64 * 3)
    assert abs(DCICNN().flops_per_pixel - 0.45e6) < 0.01e6


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("size", [(1, 1), (7, 13), (33, 17), (64, 64)])
def test_forward_shapes(in_channels: int, residual: bool, batch_norm: bool, size: tuple[int, int]) -> None:
    model = DCICNN(in_channels=in_channels, width=8, depth=4, residual=residual, batch_norm=batch_norm).eval()
    x = torch.rand(2, in_channels, *size)
    y = model(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()


def test_residual_mode_subtracts_the_body_output() -> None:
    model = DCICNN(width=8, depth=3, residual=True).eval()
    x = torch.rand(1, 3, 9, 9)
    torch.testing.assert_close(model(x), x - model.body(x))
    direct = DCICNN(width=8, depth=3, residual=False).eval()
    torch.testing.assert_close(direct(x), direct.body(x))


def test_wrong_input_channels_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected a \(N, 3, H, W\) tensor"):
        DCICNN()(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_channels": 2}, "in_channels must be one of"),
        ({"in_channels": 3.0}, "in_channels must be an int"),
        ({"width": 0}, "width must be >= 1"),
        ({"depth": 1}, "depth must be >= 2"),
        ({"depth": True}, "depth must be an int"),
        ({"residual": "yes"}, "residual must be a bool"),
        ({"batch_norm": 1}, "batch_norm must be a bool"),
        ({"depth": 3, "dilation": [1, 2]}, "one value per convolution"),
        ({"depth": 2, "dilation": [1, 0]}, "dilation must be >= 1"),
        ({"depth": 2, "dilation": [1, 1.5]}, "dilation must be an int"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DCICNN(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("depth", "dilation", "expected"),
    [(2, None, 5), (5, None, 11), (8, None, 17), (8, [1, 2, 3, 4, 4, 3, 2, 1], 41), (3, [2, 1, 3], 13)],
)
def test_receptive_field_is_what_the_model_reports(depth: int, dilation: list[int] | None, expected: int) -> None:
    model = DCICNN(width=4, depth=depth, residual=False, batch_norm=False, dilation=dilation).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand_like(p) + 0.1)  # positive weights: every path carries the perturbation
    size, centre = 61, 30
    x = torch.rand(1, 3, size, size, dtype=torch.float64)
    y = model(x)
    bumped = x.clone()
    bumped[0, :, centre, centre] += 1.0
    changed = (model(bumped) - y).abs().amax(dim=1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert int(rows.max() - rows.min() + 1) == model.receptive_field == expected
    assert int(cols.max() - cols.min() + 1) == model.receptive_field
    assert model.receptive_radius == (expected - 1) // 2


@pytest.mark.parametrize("name", VARIANTS)
def test_fused_equals_unfused(name: str) -> None:
    model = variant(name, width=16, depth=8 if name != "dilated" else 5)
    batchnorms = count(model, nn.BatchNorm2d)
    fused = model.fuse_batchnorm()
    assert count(fused, nn.BatchNorm2d) == 0 and count(fused, nn.Conv2d) == count(model, nn.Conv2d)
    assert model.arch == "unet" or count(fused, nn.Conv2d) == model.depth
    assert not fused.training and fused.batch_norm is False and fused.residual is model.residual
    assert fused.dilation == model.dilation
    x = torch.rand(2, model.in_channels, 31, 45)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=0)
    assert model.training is False and count(model, nn.BatchNorm2d) == batchnorms  # the original is untouched


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_round_trips_through_save_and_load(name: str, tmp_path: Path) -> None:
    model = variant(name)
    model.save_pretrained(tmp_path / name)
    loaded = DCICNN.from_pretrained(tmp_path / name)
    assert loaded._hub_mixin_config == model._hub_mixin_config
    x = torch.rand(1, model.in_channels, 23, 19)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x), atol=0, rtol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_restores_tiled_as_whole(name: str) -> None:
    model = variant(name)
    radius, align = model.receptive_radius, model.spec.alignment
    smallest = (2 * -(-radius // align) + 2) * align  # restore's least tile for this overlap and alignment
    height, width = max(45, 2 * smallest + 13), max(38, smallest + 27)  # odd sides: the U-Net pads them
    image = torch.rand(model.in_channels, height, width, generator=torch.Generator().manual_seed(1))
    whole = model.restore(image, tile=4096, dtype="fp32")
    tiled = model.restore(image, tile=max(20, smallest), batch_size=3, dtype="fp32")
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_fusing_a_batchnorm_free_model_is_a_copy() -> None:
    model = DCICNN(width=8, depth=3, batch_norm=False).eval()
    fused = model.fuse_batchnorm()
    assert fused is not model
    x = torch.rand(1, 3, 10, 10)
    torch.testing.assert_close(fused(x), model(x))


def test_an_unshuffled_network_keeps_the_size_and_its_receptive_radius_bounds_its_context() -> None:
    torch.manual_seed(0)
    model = DCICNN(width=8, depth=4, batch_norm=False, downscale=2).eval()
    assert model.receptive_radius == 2 * (4 + 1) - 1 and model.spec.alignment == 2
    assert model.flops_per_pixel == 2 * 9 * (12 * 8 + 2 * 8 * 8 + 8 * 12) // 4  # a quarter of the pixels
    x = torch.rand(1, 3, 31, 27)
    with torch.no_grad():
        base = model(x)
        assert base.shape == x.shape
        poked = x.clone()
        poked[0, :, 15, 13] += 1.0
        changed = (model(poked) - base).abs().sum(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    radius = model.receptive_radius
    assert int((rows - 15).abs().max()) <= radius and int((cols - 13).abs().max()) <= radius
    torch.testing.assert_close(model.restore(x[0], dtype="fp32"), base[0], atol=1e-5, rtol=0)


def test_tiles_align_to_the_network_blocks() -> None:
    from dcicnn.restore.tiling import plan_tiles

    tiles = plan_tiles(100, 64, 40, 9, align=4)
    assert all(v % 4 == 0 for t in tiles for v in (t.y0, t.y1, t.x0, t.x1, t.cy0, t.cy1, t.cx0, t.cx1))
    covered = torch.zeros(100, 64, dtype=torch.int)
    for t in tiles:
        covered[t.cy0 : t.cy1, t.cx0 : t.cx1] += 1
    assert bool((covered == 1).all())
    with pytest.raises(ValueError, match="blocks of 4"):
        plan_tiles(99, 64, 40, 9, align=4)


@pytest.mark.parametrize(("scales", "blocks"), [(2, 1), (3, 2), (4, 1)])
def test_the_unet_radius_is_exact_and_bounds_its_context(scales: int, blocks: int) -> None:
    """Poking one input pixel changes outputs at most ``receptive_radius`` away, and at some offset exactly that far
    (over output pixels at every phase of the lowest scale's grid)."""
    model = DCICNN(arch="unet", width=4, scales=scales, blocks=blocks, residual=False).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    radius, align = model.receptive_radius, model.alignment
    side = 2 * radius + 3 * align
    x = torch.rand(1, 3, side, side, dtype=torch.float64, requires_grad=True)
    reach = 0
    for offset in range(align):
        centre = radius + align + offset
        x.grad = None
        model(x)[0, :, centre, centre].sum().backward()
        assert x.grad is not None
        rows, cols = torch.nonzero(x.grad[0].abs().sum(dim=0), as_tuple=True)
        reach = max(reach, int((rows - centre).abs().max()), int((cols - centre).abs().max()))
    assert reach == radius


def test_unet_options_are_checked() -> None:
    with pytest.raises(ValueError, match="plain network only"):
        DCICNN(arch="unet", depth=12)
    with pytest.raises(ValueError, match="plain network only"):
        DCICNN(arch="unet", batch_norm=True)
    with pytest.raises(ValueError, match="arch must be"):
        DCICNN(arch="transformer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scales must be"):
        DCICNN(arch="unet", scales=1)
    assert DCICNN().batch_norm is True and DCICNN(arch="unet").batch_norm is False


def test_a_new_unet_is_the_identity_and_costs_what_it_says() -> None:
    model = DCICNN(arch="unet", width=32, scales=3, blocks=2, conditions=["jpeg", "noise"]).eval()
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        assert torch.equal(model(x, torch.rand(1, 3)), x)  # tail at zero: a residual restorer starts as identity
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, 64, 64), torch.rand(1, 3))
    assert abs(counter.get_total_flops() / 64**2 - model.flops_per_pixel) < 0.01 * model.flops_per_pixel
    assert model.flops_per_pixel < 0.4e6 and model.receptive_radius == 45


def test_a_unet_card_describes_the_unet(tmp_path: Path) -> None:
    DCICNN(arch="unet", width=8, scales=2, blocks=1).save_pretrained(tmp_path / "m")
    card = (tmp_path / "m" / "README.md").read_text()
    assert "U-Net of 2 scales, 8 channels" in card and "dcicnn-unet-w8-s2-b1" in card
    assert "BatchNorm ->" not in card and '"batch_norm": false' in (tmp_path / "m" / "config.json").read_text()
    plain = DCICNN(width=8, depth=3)
    plain.save_pretrained(tmp_path / "p")
    assert '"batch_norm": true' in (tmp_path / "p" / "config.json").read_text()
    assert "-> BatchNorm" in (tmp_path / "p" / "README.md").read_text()


GOLDEN_VARIANTS = Path(__file__).parent / "golden" / "variants.npz"


def test_every_variant_reproduces_its_golden_output() -> None:
    """timm/spandrel-style regression test of the network code: each of ``VARIANTS`` (seeded random weights and
    BatchNorm statistics) on a fixed odd-sized input gives its stored output (fp32, within 1e-4: BLAS kernels differ
    between CPUs). A change to a network's layout or arithmetic fails here; after a deliberate one, regenerate:
    DCICNN_UPDATE_GOLDEN=1 pytest -k golden."""
    import os

    import numpy as np

    outputs = {}
    for name in VARIANTS:
        model = variant(name, width=8, depth=5, seed=3)
        x = torch.rand(1, model.in_channels, 29, 38, generator=torch.Generator().manual_seed(7))
        condition = torch.tensor([[0.4, 0.0, 0.1]]) if model.conditions else None
        with torch.no_grad():
            outputs[name] = model(x, condition).numpy()
    if os.environ.get("DCICNN_UPDATE_GOLDEN"):
        np.savez_compressed(GOLDEN_VARIANTS, **outputs)
    stored = np.load(GOLDEN_VARIANTS)
    assert sorted(stored.files) == sorted(VARIANTS), "a variant without a golden output: regenerate (see docstring)"
    for name, output in outputs.items():
        np.testing.assert_allclose(output, stored[name], atol=1e-4, rtol=0, err_msg=name)
