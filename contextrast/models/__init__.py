"""Models: backbones registry, SRM, CRM, heads and SCRNet, built by `build_model(config)`."""

from __future__ import annotations

from typing import Any

from contextrast.config import ModelConfig, from_dict
from contextrast.models.backbones import create_backbone
from contextrast.models.crm import ContextualRefinementModule, CRMIntermediates
from contextrast.models.scrnet import SCRNet, SCRNetOutput
from contextrast.models.srm import SemanticRefinementModule, SRMIntermediates


def build_model(config: ModelConfig | dict[str, Any]) -> SCRNet:
    """SCRNet from a `ModelConfig` or a plain dict of its fields (unknown keys are refused)."""
    if isinstance(config, dict):
        config = from_dict(ModelConfig, config)
    return SCRNet(config)


__all__ = [
    "CRMIntermediates",
    "ContextualRefinementModule",
    "SCRNet",
    "SCRNetOutput",
    "SRMIntermediates",
    "SemanticRefinementModule",
    "build_model",
    "create_backbone",
]
