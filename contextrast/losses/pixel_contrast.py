"""`pixel_contrast`: the pixel-to-pixel supervised contrastive loss of Wang et al., "Exploring Cross-Image
Pixel Contrast for Semantic Segmentation", ICCV 2021 (METHOD.md §2 "Baselines").

On one encoder layer's embedding (`pc_layer`, default E2 at stride 8: the method samples anchors at stride 4–8;
the last stage's stride 32 leaves an 8×8 grid per 256² crop) with its nearest-downsampled labels and prediction:
- hard-anchor sampling: every (image, class) present is a unit; each unit gets n_view =
  min(pc_max_per_class, pc_max_anchors // #units) views, half of them wrongly predicted ("hard")
  when it can, the rest correctly predicted ("easy") — the reference code's keep rule, written so that
  it also covers units with fewer than n_view pixels (the reference skips such units; [choice]);
- supervised contrastive loss over all views (contrast mode "all"): for view i and a positive j
  (same class, j ≠ i), log( e^{s_ij} / (e^{s_ij} + Σ_{k: other class} e^{s_ik}) ) with s = z·z'/τ,
  averaged over positives, times τ/τ_base (τ_base = 0.07 as in the reference code), averaged over views
  that have a positive.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses.base import SegmentationLoss
from contextrast.losses.grid import flat_to_coords, gather_pixels, nearest_resize, prediction_at
from contextrast.losses.record import ANCHOR_SAMPLE, LayerRecord, SampledPixels
from contextrast.losses.registry import LOSSES
from contextrast.losses.sampling import random_rank_within_groups

BASE_TEMPERATURE = 0.07  # the reference code scales the loss by τ/τ_base


def supervised_contrast(features: Tensor, labels: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """features (M, D) (L2-normalised), labels (M,) → (per-view loss (M,), has_positive (M,) bool)."""
    sims = features @ features.T / tau  # (M, M), fp32
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~eye, ~same
    lse_neg = torch.logsumexp(torch.where(negative, sims, -1e9), dim=1, keepdim=True)
    log_prob = sims - torch.logaddexp(sims, lse_neg)
    n_pos = positive.sum(1)
    per_view = -(tau / BASE_TEMPERATURE) * (log_prob * positive).sum(1) / n_pos.clamp(min=1)
    return per_view, n_pos > 0


def hard_anchor_quota(num_hard: Tensor, num_easy: Tensor, n_view: int) -> tuple[Tensor, Tensor]:
    """Per unit: how many hard / easy views to keep (half hard when possible, the rest filled by the other kind)."""
    hard_keep = torch.minimum(num_hard, torch.clamp(n_view - num_easy, min=n_view // 2))
    easy_keep = torch.minimum(num_easy, n_view - hard_keep)
    return hard_keep, easy_keep


@LOSSES.register("pixel_contrast", "CE + pixel-to-pixel contrast (Wang et al. ICCV 2021) on one layer (loss.pc_layer)")
class PixelContrastLoss(SegmentationLoss):
    """CE + α·pixel-to-pixel contrast with hard-anchor sampling on E_{pc_layer} (τ = pc_tau, ≤ pc_max_anchors views,
    ≤ pc_max_per_class per (image, class))."""

    def __init__(self, cfg: LossConfig, num_classes: int, ignore_index: int = IGNORE_INDEX, **options) -> None:
        super().__init__(cfg, num_classes, ignore_index, **options)
        self.contrastive_layers = (int(cfg.pc_layer),)

    def contrastive(
        self, logits: Tensor, embeddings: list[Tensor], target: Tensor, generator: torch.Generator, record: bool
    ) -> tuple[Tensor, list[LayerRecord]]:
        emb = embeddings[self.cfg.pc_layer]
        size = tuple(emb.shape[-2:])
        y = nearest_resize(target, size)
        pred = prediction_at(logits, size)
        b, k, hw = y.shape[0], self.num_classes, size[0] * size[1]
        flat_y, flat_p = y.reshape(-1), pred.reshape(-1)
        pix = (flat_y != self.ignore_index).nonzero().squeeze(1)
        unit = (pix // hw) * k + flat_y[pix]  # (image, class)
        hard = (flat_p[pix] != flat_y[pix]).long()
        counts = torch.bincount(unit * 2 + hard, minlength=2 * b * k).view(b * k, 2)
        present = counts.sum(1) > 0
        n_units = int(present.sum())
        loss = emb.new_zeros((), dtype=torch.float32)
        if n_units == 0:
            return loss, [self._record(self.cfg.pc_layer, y, pred, None)] if record else []
        n_view = min(self.cfg.pc_max_per_class, self.cfg.pc_max_anchors // n_units)
        if n_view == 0:  # more units than anchors: one view for a random subset of pc_max_anchors units
            n_view = 1
            scores = torch.rand(b * k, generator=generator, device=y.device).masked_fill(~present, -1.0)
            chosen = torch.zeros_like(present)
            chosen[scores.topk(self.cfg.pc_max_anchors).indices] = True
            present = present & chosen
        hard_keep, easy_keep = hard_anchor_quota(counts[:, 1], counts[:, 0], n_view)
        quota = torch.stack([easy_keep, hard_keep], 1) * present[:, None]  # (units, [easy, hard])
        rank = random_rank_within_groups(unit * 2 + hard, 2 * b * k, generator)
        take = rank < quota[unit, hard]
        index, view_labels = pix[take], flat_y[pix[take]]
        features = gather_pixels(emb.float(), index)  # (M, D)
        per_view, has_pos = supervised_contrast(features, view_labels, self.cfg.pc_tau)
        loss = (per_view * has_pos).sum() / has_pos.sum().clamp(min=1)
        layers = [self._record(self.cfg.pc_layer, y, pred, (index, view_labels, per_view.detach(), has_pos, loss))] if record else []
        return loss, layers

    @staticmethod
    def _record(layer: int, y: Tensor, pred: Tensor, views: tuple[Tensor, Tensor, Tensor, Tensor, Tensor] | None) -> LayerRecord:
        """views: (flat index (M,), labels (M,), per-view loss (M,), has_positive (M,), loss) or None."""
        rec = LayerRecord(
            layer=layer,
            grid=(int(y.shape[-2]), int(y.shape[-1])),
            labels=y.cpu(),
            prediction=pred.cpu(),
            error_distance=None,
        )
        if views is None:
            rec.loss = 0.0
            return rec
        index, labels, per_view, has_pos, loss = views
        image, yy, xx = flat_to_coords(index, rec.grid)
        rec.samples = SampledPixels(
            image=image.cpu(),
            y=yy.cpu(),
            x=xx.cpu(),
            cls=labels.cpu(),
            role=torch.full((index.numel(),), ANCHOR_SAMPLE, dtype=torch.uint8),
            distance=torch.full((index.numel(),), float("nan")),
        )
        for c in labels[has_pos].unique().tolist():
            rec.class_loss[int(c)] = float(per_view[has_pos & (labels == c)].mean())
        rec.loss = float(loss.detach())
        return rec
