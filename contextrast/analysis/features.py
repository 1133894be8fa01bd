"""Feature maps → RGB by PCA, and the SRM's feature before and after warping (METHOD.md §1 "SRM")."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from contextrast.analysis.forward import ModelRun, one_image


def pca_basis(*features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mean (C,), top-3 principal axes (C, 3) and the 1st/99th percentile (3,) of the projections
    of the pixels of all `features` (each (C, h, w) or (1, C, h, w)), so that several maps drawn
    with one basis have comparable colours."""
    flat = torch.cat([_pixels(f) for f in features], dim=0)  # (N, C)
    mean = flat.mean(dim=0)
    centred = flat - mean
    if centred.shape[1] < 3:
        centred = F.pad(centred, (0, 3 - centred.shape[1]))
        mean = F.pad(mean, (0, 3 - mean.shape[0]))
    # the covariance's eigenvectors: C×C, cheap for C ≤ 512 and deterministic (unlike randomised PCA)
    cov = centred.T @ centred / max(centred.shape[0] - 1, 1)
    _, vecs = torch.linalg.eigh(cov.double())
    axes = vecs[:, -3:].flip(-1).float()  # largest variance first
    # the sign of an eigenvector is arbitrary; fix it so the colours do not flip between runs
    signs = torch.sign(axes[axes.abs().argmax(dim=0), torch.arange(3)])
    axes = axes * torch.where(signs == 0, torch.ones_like(signs), signs)
    proj = centred @ axes
    lo = torch.quantile(proj[:: max(1, proj.shape[0] // 20000)], 0.01, dim=0)
    hi = torch.quantile(proj[:: max(1, proj.shape[0] // 20000)], 0.99, dim=0)
    return mean, axes, lo, hi


def _pixels(feature: Tensor) -> Tensor:
    return one_image(feature.detach().float(), "feature map").flatten(1).T  # (h·w, C)


def pca_rgb(feature: Tensor, basis: tuple[Tensor, Tensor, Tensor, Tensor] | None = None) -> np.ndarray:
    """(C, h, w) or (1, C, h, w) feature → (h, w, 3) uint8: the top three principal components as R, G, B,
    each stretched from its 1st to 99th percentile. Pass `basis` (from `pca_basis`) to share colours."""
    mean, axes, lo, hi = basis if basis is not None else pca_basis(feature)
    f = feature.detach().float()
    h, w = f.shape[-2:]
    x = _pixels(f)
    if x.shape[1] < 3:
        x = F.pad(x, (0, 3 - x.shape[1]))
    proj = (x - mean) @ axes
    rgb = ((proj - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1).reshape(h, w, 3)
    return (rgb.numpy() * 255.0 + 0.5).astype(np.uint8)


def srm_warp_features(run: ModelRun, step: int) -> tuple[Tensor, Tensor]:
    """The upsampled coarse feature G↑ (1, C, h, w) before warping and Ĝ = warp(G↑, Δ) after it, for SRM step
    0..2, as the step itself recorded them in `run`'s eval-mode forward (`SRMIntermediates.upsampled/warped`)."""
    if not 0 <= step < len(run.output.srm):
        raise ValueError(f"SRM step must be 0..{len(run.output.srm) - 1}; got {step}")
    inter = run.output.srm[step]
    if inter is None:
        raise ValueError("this model has no SRM (align=bilinear): there are no offsets to warp with")
    if inter.upsampled is None or inter.warped is None:
        raise ValueError("the forward pass kept no warped features: run the model in eval mode with intermediates")
    return inter.upsampled, inter.warped
