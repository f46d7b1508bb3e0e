"""JPEG consistency (dcicnn.damage.consistency): the projection onto a JPEG's quantisation bins only moves the luma
towards the original, keeps the chroma, and restore() applies it exactly where the JPEG is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dcicnn.damage.conditions import estimate_jpeg_grid
from dcicnn.damage.consistency import JpegGrid, project
from dcicnn.spec import Tuning
from dcicnn.train.degradations import jpeg
from tests.conftest import REPO_ROOT
from tests.helpers import variant

SAMPLE = np.asarray(Image.open(REPO_ROOT / "dcicnn" / "assets" / "sample.png").convert("RGB"))


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def luma(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]


@pytest.mark.parametrize("quality", [10, 30, 75, 90])
def test_the_projection_moves_the_luma_towards_the_original(quality: int) -> None:
    clean = chw(SAMPLE)
    decoded = chw(jpeg(SAMPLE, quality))
    grid = JpegGrid.from_quality(quality)
    generator = torch.Generator().manual_seed(quality)
    for strength in (4.0, 8.0):  # restorations off by a few levels, as a network's are
        restored = clean + torch.randn(clean.shape, generator=generator) * strength / 255
        projected = project(restored, decoded, grid)
        before = float((luma(restored) - luma(clean)).pow(2).mean().sqrt()) * 255
        after = float((luma(projected) - luma(clean)).pow(2).mean().sqrt()) * 255
        # closer where the bins are narrow; where they are wide (q10) it barely acts, and what the bins read from
        # rounded pixels miss can cost a few hundredths of a level
        assert after <= before + 0.1 and (quality < 75 or after < before)
    # the decoded image is (up to its rounding) consistent already: the projection hardly touches it
    assert float((project(decoded, decoded, grid) - decoded).abs().max()) < 2.5 / 255


def test_the_projection_keeps_the_chroma_and_works_on_gray_images() -> None:
    decoded = chw(jpeg(SAMPLE, 20))
    restored = decoded + torch.rand(decoded.shape, generator=torch.Generator().manual_seed(0)) * 0.1
    projected = project(restored, decoded, JpegGrid.from_quality(20))

    def chroma(x: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [-0.168736 * x[0] - 0.331264 * x[1] + 0.5 * x[2], 0.5 * x[0] - 0.418688 * x[1] - 0.081312 * x[2]]
        )

    torch.testing.assert_close(chroma(projected), chroma(restored), atol=1e-5, rtol=0)
    assert not torch.allclose(projected, restored)
    gray = luma(decoded)[None]
    out = project(gray + 0.05, gray, JpegGrid.from_quality(20))
    assert out.shape == gray.shape and float((out - gray).abs().mean()) < 0.05


def test_blocks_cut_by_the_edge_are_left_alone_and_odd_grids_are_followed() -> None:
    decoded = chw(jpeg(SAMPLE, 30))[:, 3:, 5:]  # a crop: the grid now starts at (5, 3)
    found = estimate_jpeg_grid(decoded)
    assert found is not None and found[1:] == (5, 3)
    grid = JpegGrid.from_quality(30, found[1], found[2])
    restored = decoded + 0.2
    projected = project(restored, decoded, grid)
    assert torch.equal(projected[:, :5], restored[:, :5]) and torch.equal(projected[:, :, :3], restored[:, :, :3])
    assert float((projected[:, 5:85, 3:83] - decoded[:, 5:85, 3:83]).abs().mean()) < 0.1  # pulled back into the bins
    with pytest.raises(ValueError, match="one shape"):
        project(restored, decoded[:, :10], grid)


def test_restore_projects_known_jpegs_only() -> None:
    model = variant("no-batchnorm")
    model.tuning = Tuning(consistency_gate=None)  # a random network's "correction" leaves the bins: ungated here
    decoded = jpeg(SAMPLE, 25)
    on = model.restore(decoded, dtype="fp32")
    off = model.restore(decoded, dtype="fp32", jpeg_consistency=False)
    assert not np.array_equal(on, off)
    np.testing.assert_array_equal(on, model.restore(decoded, dtype="fp32", tile=40))  # tiles equal the whole image
    clean = SAMPLE.copy()  # no JPEG lattice: nothing to project onto
    np.testing.assert_array_equal(
        model.restore(clean, dtype="fp32"), model.restore(clean, jpeg_consistency=False, dtype="fp32")
    )
    withheld = model.restore(decoded, dtype="fp32", jpeg_quality=None)  # withheld: no grid either
    np.testing.assert_array_equal(withheld, off)
