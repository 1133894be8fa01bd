"""`ce`: cross-entropy only (METHOD.md §2 "Baselines"), plus the auxiliary head's CE when present."""

from __future__ import annotations

from contextrast.losses.base import SegmentationLoss
from contextrast.losses.registry import LOSSES


@LOSSES.register("ce", "cross-entropy only (+ the auxiliary head), plain or OHEM (loss.ce)")
class CrossEntropyLoss(SegmentationLoss):
    """L = CE(logits, Y) + aux_weight·CE(aux↑, Y) (plain or OHEM CE, `loss.ce`)."""
