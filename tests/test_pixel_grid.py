"""The pixel-grid convention (METHOD.md §4): labels, upsampling and pooling read where strided features sit."""

from __future__ import annotations

import pytest
import torch

from contextrast.losses.grid import nearest_resize
from contextrast.models.srm import warp
from contextrast.pixel_grid import pool_to, sample_indices, stride_between, upsample


def ramp(h: int, w: int) -> torch.Tensor:
    """x coordinate as the value: (1, 1, h, w)."""
    return torch.arange(w, dtype=torch.float32).expand(1, 1, h, w).contiguous()


def test_strided_convolutions_sit_where_labels_are_read():
    x = torch.randint(0, 11, (1, 1, 45, 61)).float()  # label values
    conv = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0  # picks the input at its centre
    out = conv(x)[0, 0]
    labels = nearest_resize(x[0], tuple(out.shape))  # the same grid through the label path
    assert torch.equal(out, labels[0].float())
    assert sample_indices(360, 12).tolist()[:3] == [0, 32, 64] and stride_between(360, 12) == 32


@pytest.mark.parametrize("size", [(12, 16), (23, 31)])
def test_bilinear_upsampling_moves_no_edge_in_the_strided_grid(size):
    fine = ramp(2 * size[0], 2 * size[1] - (size[1] % 2))
    coarse = fine[..., ::2, ::2]  # what a stride-2 map holds: the value at 2·o
    up = upsample(coarse, tuple(fine.shape[-2:]))
    interior = (up - fine)[..., :, : fine.shape[-1] - 2]
    assert interior.abs().max() < 1e-5  # exact: no systematic shift left for SRM to learn
    if fine.shape[-1] == 2 * size[1]:
        old = upsample(coarse, tuple(fine.shape[-2:]), grid="centred")
        assert (old - fine)[..., :, 2:-2].mean() == pytest.approx(-0.5, abs=1e-4)  # the half-pixel the old grid left


def test_pooling_keeps_the_coarse_grid_centres():
    fine = ramp(32, 64)
    coarse_size = (4, 8)
    pooled = pool_to(fine, coarse_size)
    assert torch.allclose(pooled[0, 0, 0, 1:-1], torch.arange(1, 7, dtype=torch.float32) * 8)  # centred on 8·o
    adaptive = pool_to(fine, coarse_size, grid="centred")
    assert adaptive[0, 0, 0, 1] == pytest.approx(11.5)  # the old window sat 3.5 pixels to the right


def test_a_feature_shifted_against_its_label_is_recovered_by_learned_offsets():
    xs = torch.arange(32, dtype=torch.float32)
    target = torch.exp(-((xs - 16) / 4) ** 2).expand(1, 1, 8, 32).contiguous()  # a boundary response at x = 16
    feature = torch.exp(-((xs - 18) / 4) ** 2).expand(1, 1, 8, 32).contiguous()  # upsampled 2 px to the right
    offset = torch.zeros(1, 2, 8, 32, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        (warp(feature, offset) - target).square().sum().backward()
        opt.step()
    dx = offset.detach()[0, 0, :, 4:28]
    # Δx ≈ +2: pixels read the feature 2 px to their right (a pixel whose value already matches may stay at 0)
    assert dx.median() == pytest.approx(2.0, abs=0.05) and (dx - 2.0).abs().lt(0.05).float().mean() > 0.9
    assert offset.detach()[0, 1].abs().max() < 0.05  # and nothing vertical
    assert warp(feature, torch.zeros(1, 2, 8, 32)).sub(feature).abs().max() < 1e-5  # zero offset: identity
