"""Interventions: parts of SCRNet switched off at inference, to measure what each contributes
(`contextrast diagnose`, the lab's Intervene view; METHOD.md §1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Intervention:
    """What to switch off in one forward pass. All False = the model as trained.

    zero_offsets: every SRM warps with Δ = 0 (plain bilinear upsampling through SRM's weights).
    remove_mean_offset: Δ minus its mean over the map (per image and step): what is left is local alignment.
    mean_offset_only: Δ replaced by its per-map mean: only the global translation is kept.
    mask_off: Δ = Δ′ (the neighbour mask is not applied).
    crm_off: CRM's attention contributes nothing (γ_c = γ_s = 0).
    """

    zero_offsets: bool = False
    remove_mean_offset: bool = False
    mean_offset_only: bool = False
    mask_off: bool = False
    crm_off: bool = False

    def apply_to_offsets(self, offset: Tensor) -> Tensor:
        """offset Δ (B, 2, h, w) → the offsets this intervention warps with."""
        if self.zero_offsets:
            return torch.zeros_like(offset)
        mean = offset.mean(dim=(2, 3), keepdim=True)
        if self.mean_offset_only:
            return mean.expand_as(offset)
        if self.remove_mean_offset:
            return offset - mean
        return offset


INTERVENTIONS: dict[str, Intervention] = {
    "as_trained": Intervention(),
    "offsets_zeroed": Intervention(zero_offsets=True),
    "mean_offset_removed": Intervention(remove_mean_offset=True),
    "mean_offset_only": Intervention(mean_offset_only=True),
    "mask_off": Intervention(mask_off=True),
    "crm_off": Intervention(crm_off=True),
}
