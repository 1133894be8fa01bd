"""`ce`: cross-entropy only (METHOD.md §2 "Baselines"), plus the auxiliary head's CE when present."""

from __future__ import annotations

from contextrast.losses.base import LOSSES, SegmentationLoss


@LOSSES.register("ce")
class CrossEntropyLoss(SegmentationLoss):
    """L = CE(logits, Y) + aux_weight·CE(aux↑, Y); accepts a plain logits tensor or an SCRNetOutput."""
