"""Parameter and compute counts (METHOD.md §1 "Cost").

Convention: GMACs = multiply-adds / 1e9 of the *inference* forward (no projection or auxiliary
heads), counted by `torch.utils.flop_counter.FlopCounterMode` over convolutions and matrix
products (so CRM's attention bmm's are included) and halved (one MAC = 2 FLOPs). Element-wise
ops, pooling, interpolation and grid_sample are not counted, as in the papers' fvcore-style counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

TRAIN_ONLY = ("projection_heads", "aux_head")


@dataclass
class CostReport:
    size: tuple[int, int]
    params_total: int  # every parameter, training-only heads included
    params_inference: int  # what prediction runs
    gmacs: float
    modules: dict[str, tuple[int, float]]  # top-level module → (params, GMACs)

    def table(self) -> str:
        lines = [
            f"input {self.size[0]}×{self.size[1]}; GMACs = multiply-adds/1e9 (conv + matmul), inference path",
            f"{'module':<20}{'params':>14}{'GMACs':>12}",
        ]
        for name, (p, g) in self.modules.items():
            lines.append(f"{name:<20}{p:>14,}{g:>12.2f}")
        lines.append(f"{'total (inference)':<20}{self.params_inference:>14,}{self.gmacs:>12.2f}")
        lines.append(f"{'total (+train heads)':<20}{self.params_total:>14,}")
        return "\n".join(lines)


def count_cost(model: nn.Module, size: tuple[int, int], in_channels: int = 3) -> CostReport:
    """Count parameters and GMACs of `model` on a (1, in_channels, *size) input."""
    h, w = size
    if min(h, w) < 32:
        raise ValueError(f"size {size} is below the network's stride 32")
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, in_channels, h, w))
    model.train(was_training)
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    modules: dict[str, tuple[int, float]] = {}
    for name, child in model.named_children():
        params = sum(p.numel() for p in child.parameters())
        # Containers that are never called themselves (ModuleList) have no entry: sum their children.
        keys = [f"{root}.{name}"] if f"{root}.{name}" in per_module else [
            k for k in per_module if k.startswith(f"{root}.{name}.") and k.count(".") == 2
        ]
        flops = sum(sum(per_module[k].values()) for k in keys)
        modules[name] = (params, flops / 2e9)
    total = sum(p.numel() for p in model.parameters())
    train_only = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in TRAIN_ONLY)
    return CostReport((h, w), total, total - train_only, counter.get_total_flops() / 2e9, modules)
