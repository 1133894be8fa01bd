"""CCL (contextual contrastive loss) with BANE negatives: `contextrast`, and `ccl` (random negatives only).

METHOD.md §2. Per layer i (of four), with Y_i the nearest-downsampled ground truth:
- anchors a_i^n = batch mean of class-n embeddings; contextual update â_i^n = w_l·a_i^n + w_h·a_I^n
  where n is present at the deepest layer I; L2-normalised;
- per anchor, ≤ P positives (class-n pixels) and ≤ K negatives, drawn uniformly; how negatives are drawn is the
  `negatives` switch (`NEGATIVES`: BANE's kept error pixels of n first, then random other-class pixels; BANE only;
  random only);
- L_i(n) = −(1/|Z₊|) Σ_{z₊} log( e^{â·z₊/τ} / (e^{â·z₊/τ} + Σ_{z₋} e^{â·z₋/τ}) ),
  L_i = mean over classes present at layer i (that have a negative, `skip_anchors_without_negatives`),
  L_CCL = Σ_i λ_i L_i.
Gradients reach the embeddings both through the sampled pixels and through the anchors (class means); the deepest
layer's anchor enters the shallower layers' updates detached (`detach_deep_anchor`).
Everything is vectorised over images and classes; the only Python loop is over the four layers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses.anchors import class_means, contextual_update
from contextrast.losses.bane import BaneSelection, bane_on_grid, fine_error_distance
from contextrast.losses.base import SegmentationLoss
from contextrast.losses.grid import flat_to_coords, nearest_resize, similarity_to
from contextrast.losses.record import BANE_NEGATIVE, POSITIVE, RANDOM_NEGATIVE, LayerRecord, SampledPixels
from contextrast.losses.registry import LOSSES, NEGATIVES
from contextrast.losses.sampling import top_keys

_FILL = -1e9  # stands in for log 0 on unused negative slots: finite, so no NaN gradient when a row is empty


def info_nce(pos: Tensor, pos_ok: Tensor, neg: Tensor, neg_ok: Tensor) -> Tensor:
    """Pixel-to-anchor InfoNCE per anchor. pos (R, P), neg (R, Q): similarities already divided by τ;
    *_ok mark real samples. Returns (R,): −mean_p log(e^{s_p} / (e^{s_p} + Σ_q e^{s_q})); 0 for a row with
    no positive, and exactly 0 for a row with no negative."""
    lse_neg = torch.logsumexp(torch.where(neg_ok, neg, _FILL), dim=1, keepdim=True)
    per_positive = torch.logaddexp(pos, lse_neg) - pos
    return (per_positive * pos_ok).sum(1) / pos_ok.sum(1).clamp(min=1)


def _bane_first(keys: Tensor, other: Tensor, hard: Tensor | None, neg_inf: Tensor) -> Tensor:
    """bane+random: every BANE candidate (key in [1, 2)) ranks before any random fill (key in [0, 1))."""
    return torch.where(other, keys + hard, neg_inf)


def _bane_only(keys: Tensor, other: Tensor, hard: Tensor | None, neg_inf: Tensor) -> Tensor:
    """bane: BANE's kept error pixels of the anchor's class only (fewer than K when BANE keeps fewer)."""
    return torch.where(hard, keys, neg_inf)


def _random_only(keys: Tensor, other: Tensor, hard: Tensor | None, neg_inf: Tensor) -> Tensor:
    """random: uniformly drawn pixels of other (non-ignored) classes."""
    return torch.where(other, keys, neg_inf)


# A negative strategy maps one i.i.d. key per (anchor, pixel) (K, N), the other-class mask (K, N) and BANE's kept
# error pixels of each anchor's class (K, N) (None when unused) to keys whose K largest are the negatives.
NEGATIVES.register("bane+random", "BANE negatives first, the rest of the K filled at random (default)")(_bane_first)
NEGATIVES.register("bane", "BANE negatives only")(_bane_only)
NEGATIVES.register("random", "random other-class pixels only (the `ccl` baseline)")(_random_only)
for _strategy, _uses_bane in ((_bane_first, True), (_bane_only, True), (_random_only, False)):
    _strategy.uses_bane = _uses_bane  # type: ignore[attr-defined]  (whether BANE must run for it)


class ContextualContrastiveLoss(SegmentationLoss):
    """CE + α·L_CCL with the negatives of `negatives` (a `NEGATIVES` name; METHOD.md §2 "BANE")."""

    contrastive_layers = (0, 1, 2, 3)

    def __init__(self, cfg: LossConfig, num_classes: int, ignore_index: int = IGNORE_INDEX, negatives: str = "",
                 **options) -> None:
        super().__init__(cfg, num_classes, ignore_index, **options)
        self.negatives = negatives or cfg.negatives
        self.draw_negatives = NEGATIVES.get(self.negatives)

    def contrastive(
        self, logits: Tensor, embeddings: list[Tensor], target: Tensor, generator: torch.Generator, record: bool
    ) -> tuple[Tensor, list[LayerRecord]]:
        weights = self.cfg.layer_weights
        if len(embeddings) != len(weights):
            raise ValueError(f"expected {len(weights)} embedding maps (one per λ_i); got {len(embeddings)}")
        k = self.num_classes
        labels = [nearest_resize(target, tuple(e.shape[-2:])) for e in embeddings]
        # One (B, D, h·w) view per layer, shared by the class means and the similarities, so that autograd sums
        # their two full-size gradients in place instead of allocating a third tensor for the sum.
        flat = [e.flatten(2) for e in embeddings]
        raw = [class_means(e, y, k) for e, y in zip(flat, labels)]
        deep, deep_counts = raw[-1]
        if self.cfg.detach_deep_anchor:
            deep = deep.detach()
        use_bane = getattr(self.draw_negatives, "uses_bane", True)
        fine_distance = (fine_error_distance(logits, target, self.cfg.bane_distance_stride, self.ignore_index)
                         if use_bane else None)
        total = logits.new_zeros((), dtype=torch.float32)
        layers: list[LayerRecord] = []
        last = len(embeddings) - 1
        for i, (emb_flat, y, (means, counts)) in enumerate(zip(flat, labels, raw)):
            if i == last:  # the deepest layer's own anchor is its mean (w_l·a + w_h·a = a)
                anchors = torch.nn.functional.normalize(means, dim=1)
            else:
                anchors = contextual_update(means, counts > 0, deep, deep_counts > 0, self.cfg.w_h)
            pred_i, bane = (bane_on_grid(logits, y, self.cfg, generator, fine_distance, self.ignore_index)
                            if use_bane else (None, None))
            layer_loss, class_loss, samples = self._layer(
                emb_flat, y, pred_i, bane, anchors, counts > 0, generator, record
            )
            total = total + weights[i] * layer_loss
            if record:
                layers.append(self._record(i, y, pred_i, bane, means, anchors, counts, class_loss, samples, layer_loss))
        return total, layers

    def _layer(
        self,
        emb: Tensor,
        y: Tensor,
        pred: Tensor | None,
        bane: BaneSelection | None,
        anchors: Tensor,
        present: Tensor,
        generator: torch.Generator,
        record: bool,
    ) -> tuple[Tensor, Tensor, SampledPixels | None]:
        """One layer: sample per anchor, InfoNCE per class, mean over present classes (with a negative, when
        `skip_anchors_without_negatives`). emb (B, D, h·w) (flattened), y (B, h, w).
        Returns (L_i, per-class L_i(n) (K,), the sampled pixels when recording)."""
        k, n = self.num_classes, y.numel()
        flat_y = y.reshape(-1)
        cls = torch.arange(k, device=y.device)[:, None]
        keys = torch.rand(k, n, generator=generator, device=y.device)  # one i.i.d. key per (anchor, pixel)
        is_pos = flat_y[None] == cls  # (K, N); ignored pixels never match
        other = (flat_y[None] != cls) & (flat_y != self.ignore_index)[None]
        neg_inf = torch.tensor(float("-inf"), device=y.device)
        pos_idx, pos_ok = top_keys(torch.where(is_pos, keys, neg_inf), self.cfg.max_positives)
        hard = None
        if bane is not None and pred is not None:
            hard = (pred.reshape(-1)[None] == cls) & bane.keep.reshape(-1)[None]  # kept error pixels of n
        neg_idx, neg_ok = top_keys(self.draw_negatives(keys, other, hard, neg_inf), self.cfg.max_negatives)
        sims = similarity_to(anchors, emb)  # (K, N)
        pos, neg = sims.gather(1, pos_idx) / self.cfg.tau, sims.gather(1, neg_idx) / self.cfg.tau
        class_loss = info_nce(pos, pos_ok, neg, neg_ok)
        counted = present & neg_ok.any(1) if self.cfg.skip_anchors_without_negatives else present
        layer_loss = (class_loss * counted).sum() / counted.sum().clamp(min=1)
        samples = None
        if record:
            neg_hard = hard.gather(1, neg_idx) if hard is not None else torch.zeros_like(neg_ok)
            samples = self._samples(tuple(y.shape[-2:]), pos_idx, pos_ok, neg_idx, neg_ok, neg_hard, bane)
        return layer_loss, class_loss, samples

    @staticmethod
    def _samples(
        grid: tuple[int, int],
        pos_idx: Tensor,
        pos_ok: Tensor,
        neg_idx: Tensor,
        neg_ok: Tensor,
        neg_hard: Tensor,
        bane,
    ) -> SampledPixels:
        k = pos_idx.shape[0]
        cls = torch.arange(k, device=pos_idx.device)[:, None]
        idx = torch.cat([pos_idx[pos_ok], neg_idx[neg_ok]])
        owner = torch.cat([cls.expand_as(pos_idx)[pos_ok], cls.expand_as(neg_idx)[neg_ok]])
        role = torch.cat(
            [
                torch.full((int(pos_ok.sum()),), POSITIVE, device=idx.device),
                torch.where(neg_hard[neg_ok], BANE_NEGATIVE, RANDOM_NEGATIVE),
            ]
        )
        distance = torch.full(idx.shape, float("nan"), device=idx.device)
        if bane is not None:
            is_bane = role == BANE_NEGATIVE
            distance[is_bane] = bane.distance.reshape(-1)[idx[is_bane]]
        image, yy, xx = flat_to_coords(idx, grid)
        return SampledPixels(
            image=image.cpu(),
            y=yy.cpu(),
            x=xx.cpu(),
            cls=owner.cpu(),
            role=role.to(torch.uint8).cpu(),
            distance=distance.cpu(),
        )

    @staticmethod
    def _record(
        layer: int,
        y: Tensor,
        pred: Tensor | None,
        bane: BaneSelection | None,
        means: Tensor,
        anchors: Tensor,
        counts: Tensor,
        class_loss: Tensor,
        samples: SampledPixels | None,
        layer_loss: Tensor,
    ) -> LayerRecord:
        present = counts.nonzero().squeeze(1).tolist()
        losses = class_loss.detach().cpu()
        return LayerRecord(
            layer=layer,
            grid=(int(y.shape[-2]), int(y.shape[-1])),
            labels=y.cpu(),
            prediction=pred.cpu() if pred is not None else None,
            error_distance=bane.distance.cpu() if bane is not None else None,
            anchors_raw={c: means[c].detach().cpu() for c in present},
            anchors={c: anchors[c].detach().cpu() for c in present},
            samples=samples if samples is not None else SampledPixels.empty(),
            class_loss={c: float(losses[c]) for c in present},
            loss=float(layer_loss.detach()),
        )


@LOSSES.register("ccl", "CE + CCL with random negatives (baseline)")
def build_ccl(cfg: LossConfig, num_classes: int, ignore_index: int = IGNORE_INDEX, **options) -> ContextualContrastiveLoss:
    """CE + α·CCL with random negatives only (METHOD.md §2 "Baselines"); `loss.negatives` is Contextrast's switch."""
    if cfg.negatives not in (LossConfig.negatives, "random"):
        raise ValueError(f"loss ccl draws random negatives by definition; negatives={cfg.negatives!r} is the "
                         f"contextrast loss's switch (use loss.name=contextrast)")
    return ContextualContrastiveLoss(cfg, num_classes, ignore_index, negatives="random", **options)


@LOSSES.register("contextrast", "CE + CCL with BANE negatives (loss.negatives): Contextrast (default)")
def build_contextrast(cfg: LossConfig, num_classes: int, ignore_index: int = IGNORE_INDEX,
                      **options) -> ContextualContrastiveLoss:
    """CE + α·CCL with BANE negatives (`cfg.negatives`, default bane+random)."""
    return ContextualContrastiveLoss(cfg, num_classes, ignore_index, **options)
