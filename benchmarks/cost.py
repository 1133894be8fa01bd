"""Parameters and GMACs at 1024×2048 of every architecture variant (METHOD.md §1 "Cost").

Every `align` × `context` switch on the light backbone, plus the default switches on resnet50, counted by
`contextrast.models.cost.count_cost` (GMACs = conv + matmul multiply-adds / 1e9 of the inference path) on the
meta device, so that no arithmetic runs and the whole table takes seconds. [B]'s light network is quoted at
137.9 G for comparison (METHOD.md §3).

    python -m benchmarks --only cost
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from contextrast.config import ModelConfig
from contextrast.models import ALIGNS, CONTEXTS, build_model
from contextrast.models.cost import count_cost

SIZE = (1024, 2048)
PAPER_B_GMACS = 137.9  # [B]'s light network at 1024×2048 (METHOD.md §1 "Cost", §3)
CITYSCAPES_CLASSES = 19


def configs(num_classes: int = CITYSCAPES_CLASSES) -> list[dict[str, Any]]:
    """align × context on the default (light) backbone, then resnet50 with the default switches."""
    light = [
        {"num_classes": num_classes, "align": a, "context": c} for a in ALIGNS.names() for c in CONTEXTS.names()
    ]
    return light + [{"num_classes": num_classes, "backbone": "resnet50"}]


def run(
    quick: bool = False, size: tuple[int, int] = SIZE, variants: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One row per variant: backbone, align, context, inference / total parameters, GMACs, GMACs / [B]'s."""
    rows = []
    for overrides in variants if variants is not None else configs():
        cfg = ModelConfig(**overrides)
        with torch.device("meta"):  # shapes only: the counter sees every op without computing it
            report = count_cost(build_model(cfg), tuple(size))
        rows.append({
            "backbone": cfg.backbone,
            "align": cfg.align,
            "context": cfg.context,
            "num_classes": cfg.num_classes,
            "params_inference": report.params_inference,
            "params_total": report.params_total,
            "gmacs": report.gmacs,
            "ratio_to_paper_b": report.gmacs / PAPER_B_GMACS,
        })
    return {
        "size": list(size),
        "convention": "GMACs = conv + matmul multiply-adds / 1e9, inference path (no projection/aux heads)",
        "paper_b_gmacs": PAPER_B_GMACS,
        "rows": rows,
    }
