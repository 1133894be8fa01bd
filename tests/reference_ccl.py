"""A plain, loop-based reference of CCL + BANE (METHOD.md §2), for checking the vectorised loss.

Written for reading, not speed: loops over layers, images and classes, numpy/scipy for BANE's
distance transform and percentile (BANE's `percentile` rule on each layer's grid). With caps at least as large as every candidate set nothing is
sampled, so the result must equal `ContextualContrastiveLoss`'s exactly (up to float rounding).
With smaller caps it samples with `torch.randperm` (its own draws, so values then differ).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from contextrast.config import LossConfig


def nearest(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def bane_keep_reference(pred: np.ndarray, lab: np.ndarray, cls: int, percent: float, ignore: int = 255) -> np.ndarray:
    """One image, one class: the kept BANE pixels (h, w) bool, and the distances."""
    mask = (pred == cls) & (lab != cls) & (lab != ignore)
    if not mask.any():
        return mask, np.zeros(mask.shape)
    if mask.all():  # no edge inside the image: every error pixel is as far as it gets; keep them all
        return mask, np.full(mask.shape, np.inf)
    dist = distance_transform_edt(mask)
    threshold = np.percentile(dist[mask], percent)
    return mask & (dist <= threshold), dist


def _sample(candidates: torch.Tensor, cap: int, generator: torch.Generator | None) -> torch.Tensor:
    """Rows of `candidates` (M, 3), at most `cap` of them, uniformly without replacement."""
    cap = max(cap, 0)
    if len(candidates) <= cap:
        return candidates
    return candidates[torch.randperm(len(candidates), generator=generator)[:cap]]


def _similarity(emb: torch.Tensor, pixels: torch.Tensor, anchor: torch.Tensor, tau: float) -> torch.Tensor:
    """Cosine similarity / τ of the embeddings at `pixels` (M, 3) rows (image, y, x) to the anchor."""
    b, y, x = pixels.unbind(1)
    return emb[b, :, y, x].float() @ anchor / tau


def reference_ccl(
    logits: torch.Tensor,
    embeddings: list[torch.Tensor],
    target: torch.Tensor,
    cfg: LossConfig,
    num_classes: int,
    negatives: str = "bane+random",
    ignore: int = 255,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_CCL = Σ_i λ_i · mean_{n present at i} L_i(n), with loops over layers, classes and images."""
    prediction = logits.detach().argmax(1)
    layer_labels = [nearest(target, tuple(e.shape[-2:])) for e in embeddings]
    raw = []
    for emb, lab in zip(embeddings, layer_labels):
        means = {}
        for c in range(num_classes):
            vecs = torch.cat([emb[b, :, lab[b] == c].T for b in range(emb.shape[0])])
            if len(vecs):
                means[c] = vecs.float().mean(0)
        raw.append(means)
    deep = raw[-1]
    last = len(embeddings) - 1
    total = torch.zeros(())
    for i, (emb, lab) in enumerate(zip(embeddings, layer_labels)):
        pred = nearest(prediction, tuple(emb.shape[-2:]))
        class_losses = []
        for c, mean in raw[i].items():
            deep_c = deep.get(c)
            if deep_c is not None and cfg.detach_deep_anchor and i < last:
                deep_c = deep_c.detach()
            anchor = (1 - cfg.w_h) * mean + cfg.w_h * deep_c if deep_c is not None else mean
            anchor = anchor / anchor.norm().clamp(min=1e-12)
            keep = torch.zeros(lab.shape, dtype=torch.bool)
            if negatives != "random":
                for b in range(emb.shape[0]):
                    kept, _ = bane_keep_reference(pred[b].numpy(), lab[b].numpy(), c, cfg.bane_percent, ignore)
                    keep[b] = torch.from_numpy(kept)
            other = (lab != c) & (lab != ignore)
            positives = _sample((lab == c).nonzero(), cfg.max_positives, generator)
            if negatives == "random":
                chosen = _sample(other.nonzero(), cfg.max_negatives, generator)
            else:
                chosen = _sample(keep.nonzero(), cfg.max_negatives, generator)
                if negatives == "bane+random":
                    fill = _sample((other & ~keep).nonzero(), cfg.max_negatives - len(chosen), generator)
                    chosen = torch.cat([chosen, fill])
            if cfg.skip_anchors_without_negatives and len(chosen) == 0:
                continue
            s_pos = _similarity(emb, positives, anchor, cfg.tau)
            neg_sum = torch.exp(_similarity(emb, chosen, anchor, cfg.tau)).sum() if len(chosen) else torch.zeros(())
            terms = [-torch.log(torch.exp(s) / (torch.exp(s) + neg_sum)) for s in s_pos]
            class_losses.append(torch.stack(terms).mean())
        if class_losses:
            total = total + cfg.layer_weights[i] * torch.stack(class_losses).mean()
    return total
